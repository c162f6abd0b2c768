"""Exception projects and groups: make projects, take in events, group them, raise alarms.

Functions take a session and never commit; the request, job or command owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.alarms.service import Signal, land_signal
from dutydesk.db import utcnow
from dutydesk.diagnose import _grouping
from dutydesk.diagnose._protocol import ProtocolError, json_object
from dutydesk.diagnose.models import (
    ExceptionEvent,
    ExceptionGroup,
    ExceptionProject,
    ExceptionRateCount,
)
from dutydesk.idents import as_id
from dutydesk.metrics import service as metrics
from dutydesk.metrics.models import MetricPoint, Period
from dutydesk.settings import get_settings

SOURCE = "exceptions"
# Each group's events per clock hour (UTC): `exceptions.events[<project>,<group id>]`.
RATE_SERIES = "exceptions.events"
MAX_ID = 2**31 - 1
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._\-]{0,99}")
EVENT_ID = re.compile(r"[0-9a-f]{32}")
# An SDK's level as the severity of the alarm a new group raises.
SEVERITY_OF_LEVEL = {"fatal": "critical", "error": "high", "warning": "warning"}


class DiagnoseError(Exception):
    """Input the diagnose domain refuses, with a message naming what was wrong."""


def create_project(
    session: Session,
    *,
    name: str,
    actor: str,
    rate_limit: int = 600,
    rate_window_seconds: int = 60,
) -> ExceptionProject:
    """Make an exception project with a new public key (its DSN says where to send)."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise DiagnoseError(
            "a project name is 1 to 100 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if not 1 <= rate_limit <= 1_000_000:
        raise DiagnoseError("rate_limit must be from 1 to 1000000 events per window")
    if not 1 <= rate_window_seconds <= 86_400:
        raise DiagnoseError("rate_window_seconds must be from 1 to 86400")
    if session.scalar(select(ExceptionProject.id).where(ExceptionProject.name == name)):
        raise DiagnoseError(f"an exception project named {name!r} exists already")
    project = ExceptionProject(
        name=name,
        public_key=secrets.token_hex(16),
        rate_limit=rate_limit,
        rate_window_seconds=rate_window_seconds,
        created_by=actor,
    )
    session.add(project)
    session.flush()
    return project


def dsn(project: ExceptionProject, base_url: str | None = None) -> str:
    """The project's DSN: `http://<key>@<desk>/<project id>`, from the desk's base URL."""
    parts = urllib.parse.urlsplit((base_url or get_settings().base_url).rstrip("/"))
    return f"{parts.scheme}://{project.public_key}@{parts.netloc}{parts.path}/{project.id}"


def list_projects(session: Session) -> list[ExceptionProject]:
    """Every exception project, by name."""
    return list(session.scalars(select(ExceptionProject).order_by(ExceptionProject.name)))


def get_project(session: Session, ident: str | int) -> ExceptionProject:
    """A project by id or name."""
    text = str(ident)
    number = as_id(text)
    where = ExceptionProject.id == number if number is not None else ExceptionProject.name == text
    project = session.scalar(select(ExceptionProject).where(where))
    if project is None:
        raise DiagnoseError(f"no exception project {text!r}")
    return project


def authenticated(session: Session, project_id: int, key: str | None) -> ExceptionProject:
    """The enabled project whose id and public key these are, or a 401 naming which is wrong."""
    if not key:
        raise ProtocolError(
            401, "no sentry_key: send it in X-Sentry-Auth or the sentry_key query parameter"
        )
    project = session.get(ExceptionProject, project_id) if project_id <= MAX_ID else None
    if project is None or not secrets.compare_digest(project.public_key, key):
        raise ProtocolError(401, f"unknown project {project_id} or a key that is not its own")
    if not project.enabled:
        raise ProtocolError(403, f"project {project_id} is disabled")
    return project


def take_rate_slot(session: Session, project: ExceptionProject, now: dt.datetime) -> int | None:
    """Count one request in the project's current window: None when within the limit, else
    the seconds until the window ends (its `Retry-After`)."""
    window = project.rate_window_seconds
    epoch = now.timestamp()
    start = dt.datetime.fromtimestamp(epoch - epoch % window, dt.UTC)
    key = (ExceptionRateCount.project_id == project.id, ExceptionRateCount.window_start == start)
    bump = update(ExceptionRateCount).where(*key).values(count=ExceptionRateCount.count + 1)
    if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(ExceptionRateCount(project_id=project.id, window_start=start, count=1))
        except IntegrityError:
            session.execute(bump)
        else:
            # A new window: the project's earlier ones are done with.
            session.execute(
                delete(ExceptionRateCount).where(
                    ExceptionRateCount.project_id == project.id,
                    ExceptionRateCount.window_start < start,
                )
            )
    count = session.scalar(select(ExceptionRateCount.count).where(*key)) or 0
    if count <= project.rate_limit:
        return None
    return max(1, math.ceil(start.timestamp() + window - epoch))


@dataclass
class Landed:
    """What taking in events did: the events kept, their groups, new groups' tickets."""

    event_ids: list[str] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    new_groups: list[int] = field(default_factory=list)
    ticket_ids: list[int] = field(default_factory=list)


def _event_id(event: dict[str, Any]) -> str:
    given = str(event.get("event_id") or "").replace("-", "").lower()
    return given if EVENT_ID.fullmatch(given) else secrets.token_hex(16)


def _group_for(
    session: Session, project: ExceptionProject, event: dict[str, Any], at: dt.datetime
) -> tuple[ExceptionGroup, bool]:
    """The event's group, made on first sight (True)."""
    fingerprint = _grouping.fingerprint_of(event)
    where = (ExceptionGroup.project_id == project.id, ExceptionGroup.fingerprint == fingerprint)
    group = session.scalar(select(ExceptionGroup).where(*where).with_for_update())
    if group is not None:
        return group, False
    release = _grouping.text(event.get("release"), 200) or None
    group = ExceptionGroup(
        project_id=project.id,
        fingerprint=fingerprint,
        title=_grouping.title_of(event),
        culprit=_grouping.culprit_of(event),
        level=_grouping.text(event.get("level"), 16) or "error",
        count=0,
        first_seen=at,
        last_seen=at,
        first_release=release,
        alarm_fingerprint=f"exception:{project.id}:{fingerprint[:40]}",
    )
    try:
        with session.begin_nested():
            session.add(group)
    except IntegrityError:
        # Another request made it first.
        return session.scalars(select(ExceptionGroup).where(*where)).one(), False
    return group, True


def take_event(
    session: Session, project: ExceptionProject, event: dict[str, Any], landed: Landed
) -> None:
    """Keep one event in its group; every event raises the group's alarm (a new group opens
    a ticket, later events add occurrences to it)."""
    at = utcnow()
    group, is_new = _group_for(session, project, event, at)
    release = _grouping.text(event.get("release"), 200) or None
    environment = _grouping.text(event.get("environment"), 100) or None
    group.count += 1
    group.last_seen = at
    group.last_release = release or group.last_release
    group.environment = environment or group.environment
    event_id = _event_id(event)
    session.add(
        ExceptionEvent(
            group_id=group.id,
            event_id=event_id,
            received_at=at,
            release=release,
            environment=environment,
            message=_grouping.message_of(event),
            data=_grouping.kept_data(event),
        )
    )
    session.flush()
    _prune(session, group)
    count_in_series(session, project, group, at)
    signal = Signal(
        source=SOURCE,
        fingerprint=group.alarm_fingerprint,
        title=f"[{project.name}] {group.title}",
        severity=SEVERITY_OF_LEVEL.get(group.level, "info"),
        description=f"{group.culprit}\n{get_settings().base_url.rstrip('/')}/exceptions/{group.id}",
        labels={
            "project": project.name,
            "release": release or "",
            "environment": environment or "",
        },
        occurred_at=at,
    )
    told = land_signal(session, signal)
    landed.event_ids.append(event_id)
    if group.id not in landed.group_ids:
        landed.group_ids.append(group.id)
    if is_new:
        landed.new_groups.append(group.id)
    if told.told and told.ticket_id is not None and told.ticket_id not in landed.ticket_ids:
        landed.ticket_ids.append(told.ticket_id)


def count_in_series(
    session: Session, project: ExceptionProject, group: ExceptionGroup, at: dt.datetime
) -> None:
    """Add one event to the group's count for the hour of `at` in the series
    `exceptions.events` (labels project and group): a group's rate as a series."""
    hour = metrics.bucket_start(at, Period.hour)
    labels = {"project": project.name, "group": str(group.id)}
    key = metrics.series_key(RATE_SERIES, labels)
    # One indexed update per event; the group's row, locked by `_group_for`, keeps two
    # requests from making the hour's point twice.
    bump = (
        update(MetricPoint)
        .where(MetricPoint.series == key, MetricPoint.at == hour, MetricPoint.source == SOURCE)
        .values(value=MetricPoint.value + 1)
    )
    if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
        metrics.record(session, SOURCE, hour, [metrics.Point(RATE_SERIES, 1.0, labels)])


def _prune(session: Session, group: ExceptionGroup) -> None:
    keep = get_settings().exception_events_per_group
    if group.count <= keep:
        return
    oldest_kept = session.scalar(
        select(ExceptionEvent.id)
        .where(ExceptionEvent.group_id == group.id)
        .order_by(ExceptionEvent.id.desc())
        .offset(keep - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        session.execute(
            delete(ExceptionEvent).where(
                ExceptionEvent.group_id == group.id, ExceptionEvent.id < oldest_kept
            )
        )


def take_event_bytes(
    session: Session, project: ExceptionProject, payload: bytes, what: str, landed: Landed
) -> None:
    """Read one event payload and keep it; a 4xx `ProtocolError` names what was wrong."""
    limit = get_settings().exception_max_event_bytes
    if len(payload) > limit:
        raise ProtocolError(413, f"{what} is {len(payload)} bytes, over the limit of {limit}")
    take_event(session, project, json_object(payload, what), landed)


@dataclass(frozen=True)
class GroupRow:
    """A group as the list shows it, with its project's name."""

    group: ExceptionGroup
    project: str
    new_in_release: bool


def list_groups(
    session: Session, *, project_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[GroupRow]:
    """Exception groups, the most recently seen first, each marked when it is new in its
    project's newest release."""
    query = (
        select(ExceptionGroup, ExceptionProject.name)
        .join(ExceptionProject, ExceptionProject.id == ExceptionGroup.project_id)
        .order_by(ExceptionGroup.last_seen.desc(), ExceptionGroup.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if project_id is not None:
        query = query.where(ExceptionGroup.project_id == project_id)
    rows = session.execute(query).all()
    newest = {pid: newest_release(session, pid) for pid in {g.project_id for g, _ in rows}}
    return [
        GroupRow(
            group,
            name,
            group.first_release is not None and group.first_release == newest[group.project_id],
        )
        for group, name in rows
    ]


def newest_release(session: Session, project_id: int) -> str | None:
    """The release of the project's newest event that names one."""
    return session.scalar(
        select(ExceptionEvent.release)
        .join(ExceptionGroup, ExceptionGroup.id == ExceptionEvent.group_id)
        .where(ExceptionGroup.project_id == project_id, ExceptionEvent.release.is_not(None))
        .order_by(ExceptionEvent.id.desc())
        .limit(1)
    )


def get_group(session: Session, group_id: int) -> ExceptionGroup:
    """One group by id."""
    group = session.get(ExceptionGroup, group_id)
    if group is None:
        raise DiagnoseError(f"no exception group {group_id}")
    return group


def latest_events(session: Session, group_id: int, limit: int = 5) -> list[ExceptionEvent]:
    """A group's newest events, newest first."""
    return list(
        session.scalars(
            select(ExceptionEvent)
            .where(ExceptionEvent.group_id == group_id)
            .order_by(ExceptionEvent.id.desc())
            .limit(limit)
        )
    )


def group_count(session: Session) -> int:
    """How many exception groups there are."""
    return int(session.scalar(select(func.count()).select_from(ExceptionGroup)) or 0)
