"""Backup alarms through the alarms domain: a failed drill, and a target with no verified
backup within its maximum age, each fire an alarm (and so a ticket); a good drill or a fresh
verified backup resolves it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm, AlarmState
from dutydesk.alarms.service import Signal, raise_signal
from dutydesk.backups.models import Backup, BackupState, BackupTarget, DrillState, RestoreDrill
from dutydesk.db import utcnow

SOURCE = "backups"


def drill_fingerprint(target: BackupTarget, drill: RestoreDrill | None = None) -> str:
    """The alarm of the target's failing restore drill (its Litestream replica's drill has
    an alarm of its own)."""
    replica = drill is not None and (drill.checks or {}).get("method") == "litestream"
    return f"backups:{target.name}:{'replica' if replica else 'drill'}"


def stale_fingerprint(target: BackupTarget) -> str:
    """The alarm of the target having no fresh verified backup."""
    return f"backups:{target.name}:stale"


def _send(session: Session, signal: Signal) -> None:
    """Raise a firing signal; a resolving one only when its alarm is firing (no alarm rows
    for targets that never had a problem)."""
    if signal.resolved:
        firing = session.scalar(
            select(Alarm.id).where(
                Alarm.fingerprint == signal.fingerprint, Alarm.state == AlarmState.firing.value
            )
        )
        if firing is None:
            return
    raise_signal(session, signal)


def drill_outcome(session: Session, target: BackupTarget, drill: RestoreDrill) -> None:
    """Fire the drill alarm for a failed drill, resolve it for a passed one (which also
    makes the target fresh, so its stale alarm resolves)."""
    failed = drill.state == DrillState.failed.value
    _send(
        session,
        Signal(
            source=SOURCE,
            fingerprint=drill_fingerprint(target, drill),
            title=f"Backup restore drill failed: {target.name}"
            + (
                " (Litestream replica)"
                if drill_fingerprint(target, drill).endswith("replica")
                else ""
            ),
            severity="critical",
            description=drill.error or "the drill restored the backup and every check held",
            labels={"target": target.name, "check": "drill"},
            resolved=not failed,
            occurred_at=drill.finished_at,
            payload={"drill": drill.id, "backup": drill.backup_id, "error": drill.error},
        ),
    )
    if not failed:
        stale_check(session, target)


def stale_check(session: Session, target: BackupTarget, at: dt.datetime | None = None) -> bool:
    """Fire the stale alarm when the target has no verified backup within its maximum age (and
    has been a target that long), resolve it otherwise; returns whether it is not stale."""
    from dutydesk.backups.service import is_stale

    at = at or utcnow()
    fresh = not is_stale(session, target, at)
    hours = target.max_age_minutes / 60
    _send(
        session,
        Signal(
            source=SOURCE,
            fingerprint=stale_fingerprint(target),
            title=f"No verified backup of {target.name} in the last {hours:g} h",
            severity="critical",
            description=(
                f"{target.name} has no backup verified by a restore drill newer than "
                f"{hours:g} h: run `dutydesk backup run {target.name}` and "
                f"`dutydesk backup verify {target.name}`, and check the backup jobs"
            ),
            labels={"target": target.name, "check": "fresh"},
            resolved=fresh,
            occurred_at=at,
        ),
    )
    return fresh


def backup_outcome(session: Session, target: BackupTarget, backup: Backup) -> None:
    """Fire the target's backup alarm when taking a backup failed, resolve it when one
    succeeds."""
    failed = backup.state == BackupState.failed.value
    _send(
        session,
        Signal(
            source=SOURCE,
            fingerprint=f"backups:{target.name}:backup",
            title=f"Backup failed: {target.name}",
            severity="critical",
            description=backup.error or "the backup was taken and stored",
            labels={"target": target.name, "check": "backup"},
            resolved=not failed,
            occurred_at=backup.finished_at,
            payload={"backup": backup.id, "error": backup.error},
        ),
    )
