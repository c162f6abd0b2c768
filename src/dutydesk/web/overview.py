"""What the overview shows, one function per section; a section whose source is not built
says so instead of hiding."""

from __future__ import annotations

import datetime as dt
import importlib
import statistics
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm, AlarmState
from dutydesk.db import utcnow
from dutydesk.export.models import ExportRun
from dutydesk.intake.models import Integration
from dutydesk.metrics import heartbeats
from dutydesk.people.models import User
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Severity, Ticket

# How many finished runs make the export's duration baseline and its sparkline.
EXPORT_HISTORY = 30
CI_SOURCES = ("github", "gitlab", "ci")
SECTION_LIMIT = 10


@dataclass
class Missing:
    """A section whose source is not part of this installation (its package is missing)."""

    source: str


@dataclass
class OnDuty:
    """One rotation's person now and the next one."""

    rotation: str
    now: str | None
    until: dt.datetime | None
    next: str | None


@dataclass
class LastExport:
    """The newest export run; the newest finished one (the same unless one is running) with its
    duration against the baseline and its records; a sparkline of records per run."""

    run: ExportRun
    measured: ExportRun | None
    seconds: float | None
    baseline: float | None
    records: int | None
    spark: dict[str, list[float]] = field(default_factory=dict)

    @property
    def slow(self) -> bool:
        """Took more than one and a half times its baseline."""
        return bool(self.seconds and self.baseline and self.seconds > 1.5 * self.baseline)


def _optional(module: str) -> Any | None:
    """The module when this installation has it, else None."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):
            return None
        raise


def on_duty(session: Session, now: dt.datetime) -> list[OnDuty]:
    """Who is on duty now in each rotation, until when, and who comes next."""
    from dutydesk.duty import service as duty

    rows = []
    for rotation in duty.list_rotations(session):
        shift = duty.current_shift(rotation, now)
        following = duty.current_shift(rotation, shift.ends_at) if shift else None
        rows.append(
            OnDuty(
                rotation.name,
                shift.user.username if shift else None,
                shift.ends_at if shift else None,
                following.user.username if following else None,
            )
        )
    return rows


def open_tickets(session: Session) -> dict[str, dict[str, int]]:
    """Open tickets by severity (most urgent first): all of them, and the unassigned."""
    counts = {s.value: {"open": 0, "unassigned": 0} for s in Severity}
    rows = session.execute(
        select(Ticket.severity, Ticket.assignee_id.is_(None), func.count())
        .where(Ticket.status != "closed")
        .group_by(Ticket.severity, Ticket.assignee_id.is_(None))
    )
    for severity, unassigned, count in rows:
        entry = counts.setdefault(severity, {"open": 0, "unassigned": 0})
        entry["open"] += count
        if unassigned:
            entry["unassigned"] += count
    return counts


def firing_alarms(session: Session) -> tuple[int, list[Alarm]]:
    """How many alarms fire, and the most recent ones."""
    firing = Alarm.state == AlarmState.firing.value
    total = session.scalar(select(func.count()).select_from(Alarm).where(firing)) or 0
    recent = session.scalars(
        select(Alarm).where(firing).order_by(Alarm.last_fired_at.desc()).limit(SECTION_LIMIT)
    )
    return total, list(recent)


def last_export(session: Session) -> LastExport | None:
    """The newest run; its duration against the median of the finished runs before it."""
    runs = list(
        session.scalars(select(ExportRun).order_by(ExportRun.id.desc()).limit(EXPORT_HISTORY + 1))
    )
    if not runs:
        return None

    def seconds(run: ExportRun) -> float | None:
        if run.started_at is None or run.finished_at is None:
            return None
        return (run.finished_at - run.started_at).total_seconds()

    def records(run: ExportRun) -> int | None:
        total = (run.metrics or {}).get("counters", {}).get("numTotal")
        return int(total) if total is not None else None

    finished = [r for r in runs if r.finished_at is not None]
    measured = finished[0] if finished else None
    durations = [s for s in map(seconds, finished[1:]) if s is not None]
    spark = {
        "x": [r.finished_at.timestamp() for r in reversed(finished) if r.finished_at],
        "records": [float(records(r) or 0) for r in reversed(finished)],
        "seconds": [seconds(r) or 0.0 for r in reversed(finished)],
    }
    return LastExport(
        runs[0],
        measured,
        seconds(measured) if measured else None,
        statistics.median(durations) if durations else None,
        records(measured) if measured else None,
        spark,
    )


def pending_approvals(session: Session, user_id: int | None) -> list[Any] | Missing:
    """Change requests waiting for this person's signoff (from the change requests)."""
    pages = _optional("dutydesk.runbooks._pages")
    if pages is None:
        return Missing("change requests")
    user = session.get(User, user_id) if user_id is not None else None
    return list(pages.waiting_for(session, user))[:SECTION_LIMIT]


def broadcasts(session: Session, now: dt.datetime) -> list[Any] | Missing:
    """The broadcasts shown to users now (from releases)."""
    module = _optional("dutydesk.runbooks.releases.broadcasts")
    if module is None:
        return Missing("releases and broadcasts")
    return list(module.active_broadcasts(session, now))


def silences(session: Session, now: dt.datetime) -> list[Any]:
    """The silences and maintenance windows in force now."""
    from dutydesk.alarms import silences as alarm_silences

    return list(alarm_silences.active(session, now))


def backups(session: Session) -> list[Any] | Missing:
    """Each enabled backup target's state: last verified backup, stale or failed drill."""
    module = _optional("dutydesk.backups.service")
    if module is None:
        return Missing("backups")
    return [module.status_of(session, t) for t in module.list_targets(session) if t.enabled]


def is_pipeline() -> ColumnElement[bool]:
    """An alarm raised by a CI pipeline event (a GitHub, GitLab or plain CI integration)."""
    ci = select(Integration.id).where(Integration.kind.in_(CI_SOURCES))
    return or_(Alarm.source.in_(CI_SOURCES), Alarm.integration_id.in_(ci))


def pipelines(session: Session) -> list[Alarm]:
    """The CI pipelines' newest state as their events left it: firing is failing."""
    return list(
        session.scalars(
            select(Alarm)
            .where(is_pipeline())
            .order_by(Alarm.last_fired_at.desc())
            .limit(SECTION_LIMIT)
        )
    )


def processes(session: Session, now: dt.datetime) -> list[tuple[heartbeats.ProcessState, str]]:
    """Each desk process with its last heartbeat and a class: ok, failing, or muted for the
    backup daemon where it does not run (no Litestream on a SQLite ops database)."""
    from dutydesk.processes import wants_backupd

    optional = {"backupd": wants_backupd(get_settings())}
    rows = []
    for state in heartbeats.states(session, now=now):
        if state.alive:
            css = "ok"
        elif state.last_at is None and not optional.get(state.role, True):
            css = "muted"
        else:
            css = "failing"
        rows.append((state, css))
    return rows


def gather(session: Session, user_id: int | None) -> dict[str, Any]:
    """Everything the overview shows, read now."""
    now = utcnow()
    firing_count, firing = firing_alarms(session)
    return {
        "now": now,
        "on_duty": on_duty(session, now),
        "tickets": open_tickets(session),
        "firing_count": firing_count,
        "firing": firing,
        "last_export": last_export(session),
        "approvals": pending_approvals(session, user_id),
        "broadcasts": broadcasts(session, now),
        "silences": silences(session, now),
        "backups": backups(session),
        "pipelines": pipelines(session),
        "processes": processes(session, now),
        "heartbeat_seconds": get_settings().process_heartbeat_seconds,
    }
