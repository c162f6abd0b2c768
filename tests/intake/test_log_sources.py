"""Log archive globs scanned on a schedule: each scan counts only what is new."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.intake import log_sources
from dutydesk.intake.jobs import log_scan
from dutydesk.intake.models import LogCount
from dutydesk.people import service as people

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def nginx(count: int, status: int = 200) -> str:
    return "".join(
        f'10.0.0.{n % 250} - - [24/Nov/2026:10:{n % 60:02d}:00 +0000] "GET /v3/items/{n} '
        f'HTTP/1.1" {status} 512 "-" "curl/8"\n'
        for n in range(count)
    )


def total(db: Session, level: str | None = None) -> int:
    statement = select(func.coalesce(func.sum(LogCount.count), 0)).where(LogCount.source == "web")
    if level:
        statement = statement.where(LogCount.level == level)
    return int(db.scalar(statement) or 0)


def test_scans_count_new_files_and_new_lines_once(db: Session, tmp_path: Path) -> None:
    (tmp_path / "access.log.2.gz").write_bytes(gzip.compress(nginx(30, 500).encode()))
    current = tmp_path / "access.log"
    current.write_text(nginx(10) + "10.0.0.1 - - [24/Nov/2026:10:59")  # half a line
    source = log_sources.create_log_source(
        db, name="web", glob=str(tmp_path / "access.log*"), actor="t"
    )
    first = log_sources.scan_source(db, source, NOW)
    assert first == {"source": "web", "files": 2, "events": 40}
    assert total(db, "ERROR") == 30 and total(db, "INFO") == 10
    assert log_sources.scan_source(db, source, NOW)["files"] == 0  # nothing new
    with current.open("a") as handle:
        handle.write(':00 +0000] "GET / HTTP/1.1" 404 1 "-" "x"\n' + nginx(5))
    assert log_sources.scan_source(db, source, NOW)["events"] == 6
    assert total(db) == 46 and total(db, "WARN") == 1


def test_scheduled_scan_job_scans_every_enabled_source(db: Session, tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(nginx(4))
    log_sources.create_log_source(db, name="web", glob=str(tmp_path / "*.log"), actor="t")
    assert log_scan(db, {}) == {"files": 1, "events": 4, "failed": 0}
    assert log_scan(db, {})["files"] == 0


def test_log_source_needs_an_absolute_glob(db: Session) -> None:
    with pytest.raises(log_sources.LogSourceError, match="absolute"):
        log_sources.create_log_source(db, name="web", glob="logs/*.log", actor="t")


def test_admins_add_log_sources_through_the_api(client: TestClient, db: Session) -> None:
    admin = people.create_token(db, "admin", ["admin"]).secret
    db.commit()
    made = client.post(
        "/api/v1/log-sources",
        json={"name": "web", "glob": "/var/log/nginx/access.log*", "format": "nginx"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert made.status_code == 201, made.text
    listed = client.get("/api/v1/log-sources", headers={"Authorization": f"Bearer {admin}"})
    assert [s["name"] for s in listed.json()] == ["web"]


def test_scanned_lines_meet_a_log_deadline_rule(db: Session, tmp_path: Path) -> None:
    from dutydesk.alarms import rules
    from dutydesk.alarms.evaluate import decide

    rule = rules.create_rule(
        db,
        name="exporter-finished",
        kind="deadline",
        actor="t",
        params={
            "event": "log",
            "source": "bridge",
            "regex": "Finished processing request",
            "cron": "0 * * * *",
            "grace_minutes": 10,
        },
    )
    assert decide(db, rule, NOW)[0].firing
    (tmp_path / "exporter.log").write_text(
        "2026-11-24 11:05:12,044 INFO  [main] o.s.b.e.Worker - Starting request\n"
        "2026-11-24 11:05:21,310 INFO  [main] o.s.b.e.Worker - Finished processing request "
        "in 9 seconds, req-7\n"
    )
    source = log_sources.create_log_source(
        db, name="bridge", glob=str(tmp_path / "*.log"), actor="t", fmt="java"
    )
    assert log_sources.scan_source(db, source, NOW)["events"] == 2
    (decision,) = decide(db, rule, NOW.replace(minute=5))
    assert not decision.firing
    assert decision.numbers["last_event_at"].startswith("2026-11-24T11:05:21")
