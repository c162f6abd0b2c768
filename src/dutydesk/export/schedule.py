"""When and what to export (spec §2): the scheduler's request, the studies, each study's window.

Everything here is pure: callers bring the clock, the scheduler configuration, the study records
and the last export times.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dutydesk.export.request import ExportRequest, InvalidRequest, format_datetime, parse_request

# Any instant will do to check an override: the scheduler overwrites every time-dependent field.
_VALIDATION_NOW = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScheduleType(StrEnum):
    """How often a scheduler runs, and so which window its request asks for."""

    DAILY = "DAILY"  # once a day: everything up to the start of today in the scheduler's zone
    HOURLY = "HOURLY"  # once an hour: everything up to the start of the current hour


def parse_schedule_type(value: str | None) -> tuple[ScheduleType, str | None]:
    """The configured schedule type and a warning; missing or unknown values mean DAILY."""
    if not value:
        return ScheduleType.DAILY, None
    try:
        return ScheduleType(value), None
    except ValueError:
        # As Bridge-EX-Scheduler: names are case-sensitive, and a bad one must not stop the export.
        return ScheduleType.DAILY, f"Invalid schedule type: {value}"


def scheduled_request(
    name: str,
    time_zone: str,
    schedule_type: ScheduleType,
    override: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The request JSON scheduler ``name`` sends at ``now`` (spec §2.1).

    The override is the base; useLastExportTime, endDateTime and tag are set over it. Every other
    override key passes through unchanged, as in Bridge-EX-Scheduler, even an unknown one such as
    ``{"foo": "bar"}``. parse_request refuses unknown fields, so such a request would fail at every
    run: whoever saves a scheduler's override must check it first with validate_override.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    zone = _zone(time_zone)
    local_now = now.astimezone(zone)
    if schedule_type is ScheduleType.HOURLY:
        end = format_datetime(_resolve(local_now.replace(minute=0, second=0, microsecond=0), zone))
        tag = f"[scheduler={name};endDateTime={end}]"
    else:
        end = format_datetime(_resolve(datetime.combine(local_now.date(), time(), zone), zone))
        yesterday = local_now.date() - timedelta(days=1)
        tag = f"[scheduler={name};date={yesterday.isoformat()}]"
    request = copy.deepcopy(dict(override or {}))
    request["useLastExportTime"] = True
    request["endDateTime"] = end
    request["tag"] = tag
    return request


def validate_override(override: Mapping[str, Any]) -> None:
    """Raise InvalidRequest if a scheduler with this request override would send a bad request."""
    if not isinstance(override, Mapping):
        raise InvalidRequest("The request override must be a JSON object.")
    request = scheduled_request("check", "UTC", ScheduleType.DAILY, override, _VALIDATION_NOW)
    try:
        parse_request(request)
    except InvalidRequest as error:
        raise InvalidRequest(f"Invalid request override: {error}") from error


def _zone(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"Unknown time zone {time_zone!r}; use an IANA ID such as America/Los_Angeles."
        ) from error


def _resolve(local: datetime, zone: ZoneInfo) -> datetime:
    # A wall time that doesn't exist (a DST gap, e.g. midnight in São Paulo on 2018-11-04) moves to
    # the first real instant after it, as Joda's withTimeAtStartOfDay does.
    return local.astimezone(UTC).astimezone(zone)


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    """What the exporter knows about a study when choosing what to export (spec §2.2)."""

    study_id: str
    configured: bool = True  # False when the study or its Synapse project or team is missing
    disable_export: bool = False
    uses_custom_export_schedule: bool = False  # exported only by jobs that whitelist it
    study_id_excluded_in_export: bool = False  # table names leave out the study ID


def select_studies(request: ExportRequest, candidates: Iterable[StudyInfo]) -> list[str]:
    """The IDs of the studies a request exports, sorted; empty for a record-list request.

    A request with a studyWhitelist is a custom job: only the whitelisted studies are considered,
    and one without an entry in ``candidates`` counts as unconfigured. Otherwise every candidate
    (the whole study table) is. Bridge-EX keeps them in an unordered map; sorting makes runs
    repeatable.
    """
    if request.end_date_time is None:
        return []
    infos = {info.study_id: info for info in candidates}
    whitelist = request.study_whitelist
    custom_job = whitelist is not None
    selected = []
    for study_id in sorted(infos if whitelist is None else whitelist):
        info = infos.get(study_id)
        if info is None or not info.configured or info.disable_export:
            continue
        if info.uses_custom_export_schedule and not custom_job:
            continue
        selected.append(study_id)
    return selected


def study_start(request: ExportRequest, last_export: datetime | None) -> datetime | None:
    """Where a study's window starts (spec §2.3), or None when the study must be skipped.

    A fixed window (shape B) starts at startDateTime. Otherwise (shape A) it starts at the study's
    last export, given in the end's offset, or with no last export at the start of the day before
    the end, in the end's own fixed offset. A start that is not before the end means nothing to
    export: skip the study and leave its export time alone. A record-list request (shape C) has
    no window.
    """
    end = request.end_date_time
    if end is None:
        return None
    if request.start_date_time is not None:
        return request.start_date_time
    if last_export is None:
        start = (end - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    elif last_export.utcoffset() is None:
        raise ValueError("last_export must be timezone-aware")
    else:
        start = last_export.astimezone(end.tzinfo)
    return start if start < end else None


def uploaded_on_range(start: datetime, end: datetime) -> tuple[int, int]:
    """The inclusive epoch-millisecond bounds that select records uploaded in [start, end)."""
    millisecond = timedelta(milliseconds=1)
    return (start - _EPOCH) // millisecond, (end - _EPOCH) // millisecond - 1
