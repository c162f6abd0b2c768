"""SQLite snapshots: taken while the source changes, checksummed, restored and checked by the
drill; a flipped byte or a stale target raises an alarm; the gate takes one when needed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.backups import BackupFailed, ensure_verified_backup, service, verified_backup_within
from dutydesk.backups._store import sha256_of
from dutydesk.backups.alarms import stale_check
from dutydesk.tickets.models import Ticket
from tests.backups.support import add_notes, flip_byte, make_source


def alarm(db: Session, fingerprint: str) -> Alarm | None:
    return db.scalar(select(Alarm).where(Alarm.fingerprint == fingerprint))


def test_snapshot_records_checksum_counts_and_revision_and_the_drill_verifies_it(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite")
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"))
    backup = service.take_backup(db, target)
    assert backup.state == "succeeded", backup.error
    assert backup.schema_revision == "0042"
    assert backup.table_counts == {"alembic_version": 1, "notes": 200}
    assert len(backup.sha256 or "") == 64 and backup.location is not None
    assert Path(backup.location).name.endswith(".sqlite.zst")
    assert 0 < (backup.size_bytes or 0) < (tmp_path / "app.sqlite").stat().st_size

    add_notes(tmp_path / "app.sqlite", 5)  # later writes do not make the backup wrong
    drill = service.verify_backup(db, backup)
    assert drill.state == "passed", drill.error
    assert drill.checks["integrity_check"] == "ok" and drill.checks["sha256"] == "ok"
    assert drill.checks["rows"] == 201
    assert drill.rto_seconds is not None and drill.rpo_seconds is not None
    assert backup.verification == "verified"
    assert verified_backup_within(db, "app", dt.timedelta(hours=1)) is backup


def test_a_flipped_byte_fails_the_drill_and_raises_an_alarm_with_a_ticket(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite")
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"))
    backup = service.take_backup(db, target)
    assert backup.location is not None
    flip_byte(Path(backup.location))

    drill = service.verify_backup(db, backup)
    assert drill.state == "failed"
    assert drill.error is not None and "checksum mismatch" in drill.error
    assert backup.verification == "failed"
    fired = alarm(db, "backups:app:drill")
    assert fired is not None and fired.state == "firing"
    ticket = db.get(Ticket, fired.ticket_id)
    assert ticket is not None and "Backup restore drill failed: app" in ticket.title
    assert verified_backup_within(db, "app", dt.timedelta(hours=1)) is None

    # A good backup and drill afterwards resolve the alarm.
    good = service.take_backup(db, target)
    assert service.verify_backup(db, good).state == "passed"
    db.refresh(fired)
    assert fired.state == "resolved"


def test_a_corrupt_file_stored_with_a_matching_checksum_is_caught_by_the_restore(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite")
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"))
    backup = service.take_backup(db, target)
    assert backup.location is not None
    stored = Path(backup.location)
    flip_byte(stored, offset=len(stored.read_bytes()) // 3)
    backup.sha256 = sha256_of(stored)  # as if it was damaged before hashing
    drill = service.verify_backup(db, backup)
    assert drill.state == "failed" and drill.checks["sha256"] == "ok"
    assert drill.error


def test_a_target_without_a_fresh_verified_backup_raises_the_stale_alarm(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite")
    target = service.add_target(
        db, "app", url, destination=str(tmp_path / "dest"), max_age_minutes=60
    )
    assert stale_check(db, target) is True  # just added: not stale yet
    assert alarm(db, "backups:app:stale") is None
    later = target.created_at + dt.timedelta(minutes=61)
    assert stale_check(db, target, later) is False
    stale = alarm(db, "backups:app:stale")
    assert stale is not None and stale.state == "firing"
    assert "No verified backup of app in the last 1 h" in stale.title

    backup = ensure_verified_backup(db, "app", dt.timedelta(hours=1))
    assert backup.verification == "verified"
    db.refresh(stale)
    assert stale.state == "resolved"
    # Two hours later the same backup is too old.
    assert stale_check(db, target, backup.started_at + dt.timedelta(hours=2)) is False
    db.refresh(stale)
    assert stale.state == "firing"


def test_the_gate_returns_a_fresh_verified_backup_without_taking_another(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite")
    service.add_target(db, "app", url, destination=str(tmp_path / "dest"))
    first = ensure_verified_backup(db, "app", dt.timedelta(hours=1))
    again = ensure_verified_backup(db, "app", dt.timedelta(hours=1))
    assert again.id == first.id
    assert len(service.list_backups(db)) == 1


def test_the_gate_registers_a_database_url_it_does_not_know(db: Session, tmp_path: Path) -> None:
    url = make_source(tmp_path / "study.sqlite")
    backup = ensure_verified_backup(db, url, dt.timedelta(hours=1))
    target = service.find_target(db, url)
    assert target.name == "sqlite-study" and backup.target_id == target.id


def test_the_gate_says_why_when_no_backup_can_be_had(db: Session, tmp_path: Path) -> None:
    with pytest.raises(BackupFailed, match="no backup target named 'nope'"):
        ensure_verified_backup(db, "nope", dt.timedelta(hours=1))
    service.add_target(db, "gone", f"sqlite:///{tmp_path / 'missing.sqlite'}")
    with pytest.raises(BackupFailed, match="backup of gone failed: no SQLite database at"):
        ensure_verified_backup(db, "gone", dt.timedelta(hours=1))


def test_retention_keeps_the_newest_of_each_hour_day_and_week(db: Session, tmp_path: Path) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=5)
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"), keep=(2, 2, 1))
    # Yesterday at 12:30: hours and days fall the same way whenever the test runs.
    now = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(hour=12, minute=30)
    ages = [dt.timedelta(minutes=m) for m in (0, 10, 70, 130, 60 * 25, 60 * 50)]
    made = []
    for age in ages:
        backup = service.take_backup(db, target)
        backup.started_at = now - age
        made.append(backup)
    db.flush()
    gone = service.prune(db, target)
    left = {b.id for b in service.list_backups(db, target)}
    # Hourly: now and 70 min ago; daily: today's newest and yesterday's (25 h); weekly: newest.
    assert left == {made[0].id, made[2].id, made[4].id}
    assert all(not Path(b.location or "").exists() for b in gone)
    assert all(Path(b.location or "").exists() for b in made if b.id in left)


def test_target_input_is_checked(db: Session, tmp_path: Path) -> None:
    with pytest.raises(service.BackupInputError, match="target name"):
        service.add_target(db, "Bad Name", "sqlite:///x.sqlite")
    with pytest.raises(service.BackupInputError, match="cannot back up mysql"):
        service.add_target(db, "m", "mysql://root@localhost/db")
    with pytest.raises(service.BackupInputError, match="not a database URL"):
        service.add_target(db, "m", "nonsense")
    with pytest.raises(service.BackupInputError, match="SQLite targets only"):
        service.add_target(db, "p", "postgresql://x@localhost/db", continuous=True)
