"""Scheduler configs (spec §2.1): saved with their checks, fired by beat's tick once per period.

A DAILY schedule fires once per local day, on the first tick after local midnight in its time
zone; its `last_fired_for` is that local date (`2016-02-01`). An HOURLY schedule fires once per
local hour; its `last_fired_for` is the hour's endDateTime (`2016-02-01T16:00:00.000+09:00`).
A schedule is due when the period it is in now differs from the one it last fired for.

A schedule never fires for a period that began before it was created, re-enabled, or given a
new time zone or type: those set `last_fired_for` to the current period, so the first run comes
at the next boundary. Nothing is lost by waiting, and nothing by a tick missed while beat was
down (a schedule then fires once, not once per missed period): every scheduled request has
useLastExportTime, so each run exports everything since its studies' last export.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.export.models import ExportRun, ExportSchedule
from dutydesk.export.request import InvalidRequest
from dutydesk.export.schedule import (
    ScheduleType,
    parse_schedule_type,
    scheduled_request,
    validate_override,
)
from dutydesk.export.service import start_run

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")
TIME_ZONE_MAX_LENGTH = 64  # the column's width
# The scheduler sets these over the override at every firing, so a saved value would be ignored.
SET_BY_SCHEDULER = ("useLastExportTime", "endDateTime", "tag")


class ScheduleError(ValueError):
    """A schedule that cannot be saved as given; the message says what to change."""


class ScheduleNotFound(LookupError):
    """No schedule has the asked-for id."""


class _Keep(enum.Enum):
    """Marks an update argument that was not given, so the value stays as it is."""

    KEEP = "keep"


KEEP = _Keep.KEEP


def check_name(name: str) -> str:
    """The name if it is 1 to 100 letters, digits, '_', '.' or '-'; else ScheduleError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ScheduleError(
            f"Schedule name {name!r} is not allowed; use 1 to 100 letters, digits, '_', '.' or '-'."
        )
    return name


def check_time_zone(time_zone: str) -> str:
    """The time zone if it is a known IANA ID such as Asia/Tokyo; else ScheduleError."""
    problem = f"Unknown time zone {time_zone!r}; use an IANA ID such as America/Los_Angeles."
    if not isinstance(time_zone, str) or not time_zone or len(time_zone) > TIME_ZONE_MAX_LENGTH:
        raise ScheduleError(problem)
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(problem) from None
    return time_zone


def check_schedule_type(schedule_type: str) -> ScheduleType:
    """DAILY or HOURLY (case-sensitive, as the scheduler reads it); else ScheduleError.

    Bridge-EX-Scheduler fell back to DAILY on an unknown type; a config saved here is refused
    instead, so nobody gets a daily export while believing they asked for something else.
    """
    try:
        return ScheduleType(schedule_type)
    except ValueError:
        raise ScheduleError(
            f"Invalid schedule type: {schedule_type!r}; use "
            f"{' or '.join(kind.value for kind in ScheduleType)}."
        ) from None


def check_override(override: object) -> dict[str, Any] | None:
    """The request override if a scheduler could send it at every firing; else ScheduleError.

    None means no override. Otherwise it must be a JSON object that `validate_override`
    accepts (so an unknown key is refused now, not at every run), without the keys the
    scheduler sets itself.
    """
    if override is None:
        return None
    if not isinstance(override, dict):
        raise ScheduleError("The request override must be a JSON object.")
    overwritten = [key for key in SET_BY_SCHEDULER if key in override]
    if overwritten:
        raise ScheduleError(
            f"The request override may not set {', '.join(overwritten)}: the scheduler sets "
            f"{', '.join(SET_BY_SCHEDULER)} itself at every firing."
        )
    try:
        validate_override(override)
    except InvalidRequest as error:
        raise ScheduleError(str(error)) from None
    return dict(override)


def parse_override_text(text: str) -> dict[str, Any] | None:
    """The override typed into a form: blank means none; otherwise JSON, checked."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScheduleError(
            f"The request override is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}."
        ) from None
    return check_override(value)


def current_period(time_zone: str, schedule_type: ScheduleType, now: datetime) -> str:
    """The period `now` falls in: the local date (DAILY) or the hour's endDateTime (HOURLY)."""
    if schedule_type is ScheduleType.HOURLY:
        request = scheduled_request("period", time_zone, schedule_type, None, now)
        return str(request["endDateTime"])
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(check_time_zone(time_zone))).date().isoformat()


def next_boundary(time_zone: str, schedule_type: ScheduleType, now: datetime) -> datetime:
    """When the period after the one `now` falls in begins, in the schedule's time zone."""
    zone = ZoneInfo(check_time_zone(time_zone))
    local = now.astimezone(zone)
    if schedule_type is ScheduleType.HOURLY:
        hour = local.replace(minute=0, second=0, microsecond=0)
        return (hour.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), zone)
    # A midnight that doesn't exist (a DST gap) means the first real instant after it.
    return midnight.astimezone(UTC).astimezone(zone)


def is_due(schedule: ExportSchedule, now: datetime) -> bool:
    """Whether the tick at `now` fires this schedule."""
    if not schedule.enabled:
        return False
    kind, _ = parse_schedule_type(schedule.schedule_type)
    return schedule.last_fired_for != current_period(schedule.time_zone, kind, now)


def next_fire_text(schedule: ExportSchedule, now: datetime) -> str:
    """When the schedule fires next, in words (as the page and `schedules list` say it)."""
    if not schedule.enabled:
        return "never (disabled)"
    try:
        if is_due(schedule, now):
            return "at the next tick"
        kind, _ = parse_schedule_type(schedule.schedule_type)
        at = next_boundary(schedule.time_zone, kind, now)
    except ScheduleError as error:
        return str(error)
    return at.isoformat(sep=" ", timespec="minutes")


def list_schedules(session: Session) -> list[ExportSchedule]:
    """Every schedule, by name."""
    return list(session.scalars(select(ExportSchedule).order_by(ExportSchedule.name)))


def get_schedule(session: Session, schedule_id: int) -> ExportSchedule:
    """The schedule with this id; ScheduleNotFound if there is none."""
    schedule = session.get(ExportSchedule, schedule_id)
    if schedule is None:
        raise ScheduleNotFound(f"no export schedule with id {schedule_id}")
    return schedule


def last_runs(session: Session) -> dict[str, ExportRun]:
    """The newest run each schedule started, by schedule name."""
    newest = (
        select(func.max(ExportRun.id))
        .where(ExportRun.created_by.like("schedule:%"))
        .group_by(ExportRun.created_by)
    )
    runs = session.scalars(select(ExportRun).where(ExportRun.id.in_(newest)))
    return {run.created_by.removeprefix("schedule:"): run for run in runs}


def create_schedule(
    session: Session,
    *,
    name: str,
    time_zone: str,
    schedule_type: str,
    request_override: object = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> ExportSchedule:
    """Save a new schedule; it first fires at the next boundary of its period (see above)."""
    check_name(name)
    check_time_zone(time_zone)
    kind = check_schedule_type(schedule_type)
    override = check_override(request_override)
    if session.scalar(select(ExportSchedule.id).where(ExportSchedule.name == name)) is not None:
        raise ScheduleError(f"A schedule named {name!r} already exists; choose another name.")
    schedule = ExportSchedule(
        name=name,
        time_zone=time_zone,
        schedule_type=kind.value,
        request_override=override,
        enabled=enabled,
        last_fired_for=current_period(time_zone, kind, now or utcnow()),
    )
    try:
        with session.begin_nested():
            session.add(schedule)
    except IntegrityError:
        # Someone saved the same name between the check above and this insert.
        raise ScheduleError(
            f"A schedule named {name!r} already exists; choose another name."
        ) from None
    return schedule


def update_schedule(
    session: Session,
    schedule: ExportSchedule,
    *,
    time_zone: str | _Keep = KEEP,
    schedule_type: str | _Keep = KEEP,
    request_override: object = KEEP,
    enabled: bool | _Keep = KEEP,
    now: datetime | None = None,
) -> ExportSchedule:
    """Change what was given (the name stays); everything is checked before anything changes.

    A new time zone or type, or switching a disabled schedule on, waits for the next boundary.
    """
    new_zone = schedule.time_zone if time_zone is KEEP else check_time_zone(time_zone)
    if schedule_type is KEEP:
        new_kind, _ = parse_schedule_type(schedule.schedule_type)
    else:
        new_kind = check_schedule_type(schedule_type)
    new_override = (
        schedule.request_override if request_override is KEEP else check_override(request_override)
    )
    new_enabled = schedule.enabled if enabled is KEEP else enabled
    restarts = (
        new_zone != schedule.time_zone
        or new_kind.value != schedule.schedule_type
        or (new_enabled and not schedule.enabled)
    )
    schedule.time_zone = new_zone
    schedule.schedule_type = new_kind.value
    if new_override != schedule.request_override:
        schedule.request_override = new_override
    schedule.enabled = new_enabled
    if restarts:
        schedule.last_fired_for = current_period(new_zone, new_kind, now or utcnow())
    session.flush()
    return schedule


def delete_schedule(session: Session, schedule: ExportSchedule) -> None:
    """Delete a schedule; the runs it started stay."""
    session.delete(schedule)
    session.flush()


def fire_due_schedules(session: Session, now: datetime) -> list[int]:
    """Start a run for every enabled schedule due at `now`; returns the new runs' ids.

    The period is marked fired before the run is made, in the same transaction, so a firing
    can neither be lost nor repeated. A schedule whose request cannot be made (its row was
    edited outside the desk) is logged and skipped for that period; the others still fire.
    """
    run_ids: list[int] = []
    enabled = select(ExportSchedule).where(ExportSchedule.enabled.is_(True))
    for schedule in list(session.scalars(enabled.order_by(ExportSchedule.id))):
        kind, warning = parse_schedule_type(schedule.schedule_type)
        try:
            period = current_period(schedule.time_zone, kind, now)
        except ValueError as error:
            log.error("export schedule %s cannot fire: %s Fix its time zone.", schedule.name, error)
            continue
        if schedule.last_fired_for == period:
            continue
        if warning:
            log.warning("export schedule %s: %s; firing as DAILY", schedule.name, warning)
        schedule.last_fired_for = period
        session.flush()
        body = scheduled_request(
            schedule.name, schedule.time_zone, kind, schedule.request_override, now
        )
        try:
            with session.begin_nested():
                run = start_run(session, body, created_by=f"schedule:{schedule.name}")
        except InvalidRequest as error:
            log.error(
                "export schedule %s did not fire for %s: %s Fix its request override.",
                schedule.name,
                period,
                error,
            )
            continue
        log.info("export schedule %s fired for %s: run %s", schedule.name, period, run.id)
        run_ids.append(run.id)
    return run_ids


@registry.due("export.schedules")
def fire_schedules(session: Session) -> None:
    """Every tick: start the runs of the schedules whose period has begun."""
    fire_due_schedules(session, utcnow())
