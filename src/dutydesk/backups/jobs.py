"""Backups' background work: backups and drills as each target's schedule says, retention,
and the freshness check that raises the stale alarm."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.backups import alarms, service
from dutydesk.backups.continuous import drill_replica
from dutydesk.backups.models import Backup, BackupTarget, RestoreDrill
from dutydesk.db import utcnow, write_phase
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job, JobState

FRESHNESS_EVERY = dt.timedelta(minutes=5)


def _pending(session: Session, kind: str, target: str) -> bool:
    """Whether a job of `kind` for the target is queued or running already."""
    for args in session.scalars(
        select(Job.args).where(
            Job.kind == kind, Job.state.in_([JobState.queued.value, JobState.running.value])
        )
    ):
        if args.get("target") == target:
            return True
    return False


@registry.due("backups.schedule")
def enqueue_due_backups(session: Session) -> None:
    """Each tick: a backup job for each enabled target whose newest backup is older than its
    interval, a drill job for each whose newest drill is; the freshness check every 5 min."""
    now = utcnow()
    for target in service.list_targets(session):
        if not target.enabled:
            continue
        last_backup = session.scalar(
            select(Backup.started_at)
            .where(Backup.target_id == target.id)
            .order_by(Backup.started_at.desc())
            .limit(1)
        )
        if (
            last_backup is None or now - last_backup >= dt.timedelta(minutes=target.every_minutes)
        ) and not _pending(session, "backups.run", target.name):
            jobs.enqueue(session, "backups.run", {"target": target.name}, max_attempts=1)
        last_drill = session.scalar(
            select(RestoreDrill.started_at)
            .where(RestoreDrill.target_id == target.id)
            .order_by(RestoreDrill.started_at.desc())
            .limit(1)
        )
        due_drill = last_drill is None or now - last_drill >= dt.timedelta(
            minutes=target.drill_every_minutes
        )
        if (
            due_drill
            and last_backup is not None
            and not _pending(session, "backups.verify", target.name)
        ):
            jobs.enqueue(session, "backups.verify", {"target": target.name}, max_attempts=1)
    if jobs.is_due(session, "backups.freshness", FRESHNESS_EVERY, now=now):
        for target in service.list_targets(session):
            if target.enabled:
                alarms.stale_check(session, target, now)


@registry.job_kind("backups.run")
def run_backup(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Take a backup of `target`, then apply its retention."""
    target = service.find_target(session, str(args["target"]))
    session.commit()  # no transaction (nor SQLite's write lock) held while the backup runs
    backup = service.produce_backup(target)
    write_phase(session)  # then write with a fresh transaction holding the write lock
    target = session.get(BackupTarget, target.id) or target
    session.add(backup)
    session.flush()
    # A failed backup is kept as a row and raises the backup alarm; the job itself succeeds
    # (failing it would roll the row back, and retrying at once rarely helps).
    alarms.backup_outcome(session, target, backup)
    pruned = service.prune(session, target) if backup.state == "succeeded" else []
    return {
        "backup": backup.id,
        "state": backup.state,
        "size_bytes": backup.size_bytes,
        "pruned": len(pruned),
        "error": backup.error,
    }


@registry.job_kind("backups.verify")
def verify_newest(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Restore-test the newest backup of `target` (the drill)."""
    target = service.find_target(session, str(args["target"]))
    backup = service.newest_backup(session, target)
    session.commit()  # nothing held while the restores run
    drills = [service.drill_of(target, backup)] if backup or not target.continuous else []
    if target.continuous:
        with service.scratch() as folder:
            drills.append(drill_replica(target, folder))
    write_phase(session)
    target = session.get(BackupTarget, target.id) or target
    if backup is not None:
        backup = session.get(Backup, backup.id)
    for drill in drills:
        service.record_drill(session, target, backup if drill.backup_id else None, drill)
    return {
        "drills": [
            {
                "drill": drill.id,
                "method": drill.checks.get("method", "backup"),
                "state": drill.state,
                "rpo_seconds": drill.rpo_seconds,
                "rto_seconds": drill.rto_seconds,
                "error": drill.error,
            }
            for drill in drills
        ]
    }
