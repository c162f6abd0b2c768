"""Generic JSON reads severity, times and labels one documented way and refuses the rest (422
naming the field); Alertmanager's severity labels, sent by the real Debian Alertmanager, read
through the same table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.db import transaction
from dutydesk.intake import service
from dutydesk.tickets.models import Ticket
from tests.intake.conftest import make_integration
from tests.intake.desk_server import serving_desk
from tests.intake.test_alertmanager import ALERTMANAGER, start_alertmanager, wait_for


def alarm_of(db: Session, answer: httpx.Response) -> Alarm:
    assert answer.status_code == 202, answer.text
    db.expire_all()
    alarm = db.get(Alarm, answer.json()["alert_id"])
    assert alarm is not None
    return alarm


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("P1", "critical"),
        ("p2", "high"),
        ("P3", "warning"),
        ("P4", "info"),
        ("P5", "info"),
        ("CRITICAL", "critical"),
        ("Warning", "warning"),
        ("info", "info"),
        ("high", "high"),
    ],
)
def test_priorities_and_alertmanager_words_map_to_the_desk_severity(
    client: TestClient, db: Session, word: str, severity: str
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(made.path or "", json={"title": f"sev {word}", "severity": word})
    assert alarm_of(db, answer).severity == severity
    ticket = db.get(Ticket, answer.json()["ticket_id"])
    assert ticket is not None and ticket.severity == severity


def test_a_missing_severity_takes_the_integration_default(client: TestClient, db: Session) -> None:
    made = make_integration(db, "generic", default_severity="high")
    assert alarm_of(db, client.post(made.path or "", json={"title": "x"})).severity == "high"


@pytest.mark.parametrize("word", ["urgent", "P6", 3, True, ["critical"]])
def test_an_unknown_severity_is_refused_naming_the_accepted_values(
    client: TestClient, db: Session, word: object
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(made.path or "", json={"title": "x", "severity": word})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "severity" in detail
    for accepted in ("critical", "high", "warning", "info", "p1", "p5"):
        assert accepted in detail
    assert db.scalar(select(Alarm)) is None


@pytest.mark.parametrize(
    "starts_at",
    [
        "2026-11-24T10:00:00Z",
        "2026-11-24T11:00:00+01:00",
        "2026-11-24T10:00:00.000Z",
        1795514400,
        1795514400.0,
        1795514400000,
    ],
)
def test_starts_at_reads_iso_8601_and_epoch_seconds_or_milliseconds(
    client: TestClient, db: Session, starts_at: object
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(made.path or "", json={"title": "t", "starts_at": starts_at})
    first = alarm_of(db, answer).first_fired_at
    first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    assert first == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "starts_at",
    [
        "2026-11-24T10:00:00",  # no zone: which clock?
        "yesterday",
        "1795514400",  # epoch as text
        True,
        -5,
        {"at": 1},
        1e300,
    ],
)
def test_starts_at_that_is_not_a_time_is_refused_naming_the_field(
    client: TestClient, db: Session, starts_at: object
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(made.path or "", json={"title": "t", "starts_at": starts_at})
    assert answer.status_code == 422, answer.text
    assert "starts_at" in answer.json()["detail"]
    assert db.scalar(select(Alarm)) is None


def test_nan_as_a_time_is_refused(client: TestClient, db: Session) -> None:
    made = make_integration(db, "generic")
    answer = client.post(
        made.path or "",
        content=b'{"title": "t", "status": "resolved", "ends_at": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert "ends_at" in answer.json()["detail"]


def test_labels_keep_strings_and_write_numbers_and_booleans_as_json(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic")
    labels = {"host": "db-1", "shard": 3, "ratio": 0.5, "primary": True}
    answer = client.post(made.path or "", json={"title": "t", "labels": labels})
    assert alarm_of(db, answer).labels == {
        "host": "db-1",
        "shard": "3",
        "ratio": "0.5",
        "primary": "true",
    }


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        (["host", "db-1"], "labels"),
        ("host=db-1", "labels"),
        ({"host": {"name": "db-1"}}, "labels.host"),
        ({"host": None}, "labels.host"),
        ({"hosts": ["a", "b"]}, "labels.hosts"),
    ],
)
def test_labels_that_are_not_an_object_of_strings_are_refused(
    client: TestClient, db: Session, labels: object, named: str
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(made.path or "", json={"title": "t", "labels": labels})
    assert answer.status_code == 422
    assert f"`{named}`" in answer.json()["detail"]
    assert db.scalar(select(Alarm)) is None


@pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="Debian's prometheus-alertmanager is not installed (apt-get install -y "
    "prometheus-alertmanager)",
)
def test_real_alertmanager_severity_labels_reach_the_desk_severity(
    tmp_path: Path, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the end-to-end desk runs on SQLite; PostgreSQL is covered by the unit tests")
    assert ALERTMANAGER is not None
    with serving_desk(tmp_path) as (base, factory):
        with transaction(factory) as session:
            made = service.create_integration(
                session, name="prometheus", kind="alertmanager", actor="test"
            )
            path = made.path
        am, am_url = start_alertmanager(
            tmp_path,
            "route:\n"
            "  receiver: desk\n"
            "  group_by: [alertname]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: desk\n"
            "    webhook_configs:\n"
            f"      - url: {base}{path}\n",
        )
        try:
            now = dt.datetime.now(dt.UTC)
            sent = {"db-1": "critical", "db-2": "warning", "db-3": "info", "db-4": "P2"}
            alerts = [
                {
                    "labels": {"alertname": "DiskFull", "instance": host, "severity": word},
                    "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
                    "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
                }
                for host, word in sent.items()
            ]
            assert httpx.post(f"{am_url}/api/v2/alerts", json=alerts).status_code == 200

            def severities() -> dict[str, str] | None:
                with transaction(factory) as session:
                    found = {
                        alarm.labels["instance"]: alarm.severity
                        for alarm in session.scalars(select(Alarm))
                    }
                return found if len(found) == len(sent) else None

            assert wait_for(severities, 30, "the four alarms") == {
                "db-1": "critical",
                "db-2": "warning",
                "db-3": "info",
                "db-4": "high",
            }
        finally:
            am.terminate()
            am.wait(timeout=10)
