"""The drill of a Litestream replica: restore its newest change, check it, RPO from the newest
replicated change; an empty replica fails the drill and raises the replica alarm."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.backups import _litestream, service
from dutydesk.backups.continuous import drill_replica, replicated
from dutydesk.backups.restore import restore_target
from tests.backups.support import add_notes, make_source
from tests.test_worker import wait_until


def test_replica_drill_restores_the_newest_change_and_records_rpo_and_rto(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=30)
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"), continuous=True)
    config = _litestream.write_config([replicated(target)], tmp_path / "litestream.yml")
    replicator = _litestream.Replicator(config)
    replicator.start()
    try:
        wait_until(lambda: _litestream.newest_change(replicated(target)), 30, "a replica")
        add_notes(tmp_path / "app.sqlite", 7)
        wait_until(
            lambda: len(list((tmp_path / "dest" / "litestream").rglob("*.ltx"))) >= 2,
            30,
            "the new notes to be replicated",
        )
    finally:
        replicator.stop()
    with service.scratch() as folder:
        drill = drill_replica(target, folder)
    assert drill.state == "passed", drill.error
    assert drill.checks["integrity_check"] == "ok" and drill.checks["schema_revision"] == "0042"
    assert drill.checks["rows"] == 38  # 37 notes and the revision
    assert "not restorable 10 minutes back" in drill.checks["point_in_time"]
    assert drill.rpo_seconds is not None and drill.rpo_seconds < 60
    assert drill.rto_seconds is not None

    restored = tmp_path / "restored.sqlite"
    line = restore_target(db, target, to=f"sqlite:///{restored}")
    assert "Litestream replica of app" in line and restored.exists()


def test_an_empty_replica_fails_its_drill_and_raises_the_replica_alarm(
    db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=3)
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"), continuous=True)
    with service.scratch() as folder:
        drill = drill_replica(target, folder)
    service.record_drill(db, target, None, drill)
    assert drill.state == "failed" and drill.error
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "backups:app:replica"))
    assert alarm is not None and alarm.state == "firing"
    assert "(Litestream replica)" in alarm.title
