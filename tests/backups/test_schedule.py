"""The beat tick's backup work: a backup job for each target whose interval passed, a drill
job once it has a backup, no second job while one waits, the stale check; the job functions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms.models import Alarm
from dutydesk.backups import jobs as backup_jobs
from dutydesk.backups import service
from dutydesk.jobs.models import Job, JobState
from tests.backups.support import make_source


def queued(db: Session) -> list[tuple[str, str]]:
    return [
        (job.kind, job.args["target"])
        for job in db.scalars(
            select(Job).where(Job.kind.like("backups.%"), Job.state == JobState.queued.value)
        )
    ]


def test_tick_queues_backups_then_drills_once_each_and_jobs_do_them(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=20)
    service.add_target(db, "app", url, destination=str(tmp_path / "dest"))
    backup_jobs.enqueue_due_backups(db)
    backup_jobs.enqueue_due_backups(db)  # the waiting job is not queued twice
    assert queued(db) == [("backups.run", "app")]

    result = registry.job_kinds["backups.run"](db, {"target": "app"})
    assert result["backup"] and result["size_bytes"] > 0
    db.execute(Job.__table__.update().values(state=JobState.succeeded.value))
    backup_jobs.enqueue_due_backups(db)
    assert queued(db) == [("backups.verify", "app")]  # backed up just now: no new backup

    outcome = registry.job_kinds["backups.verify"](db, {"target": "app"})
    assert [d["state"] for d in outcome["drills"]] == ["passed"]
    assert service.verified_backup_within(db, "app", dt.timedelta(hours=1)) is not None


def test_the_freshness_check_raises_the_stale_alarm_for_an_old_target(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=5)
    target = service.add_target(
        db, "app", url, destination=str(tmp_path / "dest"), max_age_minutes=60
    )
    target.created_at = target.created_at - dt.timedelta(hours=3)
    db.flush()
    backup_jobs.enqueue_due_backups(db)
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "backups:app:stale"))
    assert alarm is not None and alarm.state == "firing"


def test_a_failed_backup_job_keeps_its_row_and_raises_the_backup_alarm(
    db: Session, tmp_path: Path
) -> None:
    source = tmp_path / "app.sqlite"
    service.add_target(db, "app", f"sqlite:///{source}", destination=str(tmp_path / "dest"))
    result = registry.job_kinds["backups.run"](db, {"target": "app"})
    assert result["state"] == "failed" and "no SQLite database at" in result["error"]
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "backups:app:backup"))
    assert alarm is not None and alarm.state == "firing"
    assert [b.state for b in service.list_backups(db)] == ["failed"]

    make_source(source, rows=5)
    assert registry.job_kinds["backups.run"](db, {"target": "app"})["state"] == "succeeded"
    db.refresh(alarm)
    assert alarm.state == "resolved"
