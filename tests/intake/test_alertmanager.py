"""Alertmanager webhook v4: parsed from a recorded body, and end to end with Debian's real
`prometheus-alertmanager` posting to a running desk."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.db import transaction
from dutydesk.intake import service
from dutydesk.intake.models import InboxItem
from dutydesk.tickets.models import Ticket
from tests.intake.conftest import make_integration
from tests.intake.desk_server import free_port, serving_desk

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
T = TypeVar("T")


def webhook(status: str, *alerts: dict[str, object]) -> dict[str, object]:
    """A webhook v4 body as Alertmanager 0.2x sends it."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "desk",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {},
        "externalURL": "http://am.example:9093",
        "alerts": list(alerts),
    }


def alert(instance: str, fingerprint: str, status: str = "firing") -> dict[str, object]:
    """One alert of a webhook body."""
    return {
        "status": status,
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"Disk full on {instance}"},
        "startsAt": "2026-11-24T10:00:00Z",
        "endsAt": "2026-11-24T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    }


def test_each_alert_is_an_alarm_and_the_group_shares_one_ticket(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager", close_on_resolve=True)
    body = webhook("firing", alert("db-1", "aaaa000000000001"), alert("db-2", "aaaa000000000002"))
    answer = client.post(made.path or "", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2
    assert len(set(answer.json()["ticket_ids"])) == 1
    (ticket_id,) = answer.json()["ticket_ids"]

    client.post(
        made.path or "", json=webhook("firing", alert("db-1", "aaaa000000000001", "resolved"))
    )
    db.expire_all()
    ticket = db.get(Ticket, ticket_id)
    assert ticket is not None and ticket.status == "open", "db-2 is still firing"

    client.post(
        made.path or "", json=webhook("resolved", alert("db-2", "aaaa000000000002", "resolved"))
    )
    db.expire_all()
    states = {a.labels["instance"]: a.state for a in db.scalars(select(Alarm))}
    assert states == {"db-1": "resolved", "db-2": "resolved"}
    ticket = db.get(Ticket, ticket_id)
    assert ticket is not None and ticket.status == "closed"
    assert ticket.severity == "critical"


def wait_for(condition: Callable[[], T | None], seconds: float, what: str) -> T:
    """Poll until `condition` gives a value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value is not None:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="Debian's prometheus-alertmanager is not installed (apt-get install -y "
    "prometheus-alertmanager)",
)
def test_real_alertmanager_opens_a_ticket_and_resolving_resolves_the_alarm(
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
            f"      - url: {base}{path}\n"
            "        send_resolved: true\n",
        )
        try:
            now = dt.datetime.now(dt.UTC)
            labels = {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"}
            fired = {
                "labels": labels,
                "annotations": {"summary": "Disk full on db-1"},
                "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
                "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
            }
            assert httpx.post(f"{am_url}/api/v2/alerts", json=[fired]).status_code == 200

            def ticket_opened() -> tuple[int, int] | None:
                with transaction(factory) as session:
                    found = session.scalar(select(Alarm).where(Alarm.state == "firing"))
                    if found is None or found.ticket_id is None:
                        return None
                    ticket = session.get(Ticket, found.ticket_id)
                    assert ticket is not None and ticket.title == "DiskFull (1)"
                    return found.id, ticket.id

            alarm_id, _ticket_id = wait_for(ticket_opened, 30, "the ticket to open")
            ended = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            resolved = {**fired, "endsAt": ended.isoformat()}
            assert httpx.post(f"{am_url}/api/v2/alerts", json=[resolved]).status_code == 200

            def alarm_resolved() -> bool | None:
                with transaction(factory) as session:
                    found = session.get(Alarm, alarm_id)
                    return True if found is not None and found.state == "resolved" else None

            wait_for(alarm_resolved, 30, "the alarm to resolve")
        finally:
            am.terminate()
            am.wait(timeout=10)


def start_alertmanager(tmp_path: Path, config: str) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's Alertmanager on a free port with `config`; (process, its URL) once ready."""
    assert ALERTMANAGER is not None
    am_port = free_port()
    (tmp_path / "alertmanager.yml").write_text(config)
    log = (tmp_path / "alertmanager.log").open("wb")
    am = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    am_url = f"http://127.0.0.1:{am_port}"

    def am_ready() -> bool | None:
        try:
            return httpx.get(f"{am_url}/-/ready", timeout=1).status_code == 200 or None
        except httpx.TransportError:
            return None

    try:
        wait_for(am_ready, 30, "Alertmanager to be ready")
    except AssertionError:
        am.terminate()
        raise
    return am, am_url


@pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="Debian's prometheus-alertmanager is not installed (apt-get install -y "
    "prometheus-alertmanager)",
)
def test_real_alertmanager_group_with_a_bearer_token_is_one_ticket_and_resends_add_nothing(
    tmp_path: Path, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the end-to-end desk runs on SQLite; PostgreSQL is covered by the unit tests")
    with serving_desk(tmp_path) as (base, factory):
        with transaction(factory) as session:
            token = service.create_integration(
                session, name="prometheus", kind="alertmanager", actor="test"
            ).token
        am, am_url = start_alertmanager(
            tmp_path,
            "route:\n"
            "  receiver: desk\n"
            "  group_by: [alertname, cluster]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 2s\n"
            "receivers:\n"
            "  - name: desk\n"
            "    webhook_configs:\n"
            f"      - url: {base}/hooks/alertmanager\n"
            "        send_resolved: true\n"
            "        http_config:\n"
            "          authorization:\n"
            f"            credentials: {token}\n",
        )
        try:
            now = dt.datetime.now(dt.UTC)

            def node_down(instance: str, cluster: str) -> dict[str, object]:
                return {
                    "labels": {
                        "alertname": "NodeDown",
                        "cluster": cluster,
                        "instance": instance,
                        "severity": "critical",
                    },
                    "annotations": {"summary": f"{instance} is down"},
                    "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
                    "endsAt": (now + dt.timedelta(hours=1)).isoformat(),
                }

            alerts = [node_down(f"node-{n}", "eu1") for n in (1, 2, 3)]
            alerts.append(node_down("node-9", "eu2"))
            assert httpx.post(f"{am_url}/api/v2/alerts", json=alerts).status_code == 200

            def grouped() -> dict[str, tuple[int, int]] | None:
                with transaction(factory) as session:
                    found = {
                        t.title: (t.id, t.occurrences) for t in session.scalars(select(Ticket))
                    }
                    wanted = {"NodeDown (3) cluster=eu1", "NodeDown (1) cluster=eu2"}
                    return found if set(found) == wanted else None

            found = wait_for(grouped, 30, "one ticket per group, titled from its labels")
            eu1_id, occurrences = found["NodeDown (3) cluster=eu1"]
            assert occurrences == 3

            def sent() -> int:
                with transaction(factory) as session:
                    return len(list(session.scalars(select(InboxItem.id))))

            seen = sent()
            wait_for(lambda: True if sent() >= seen + 4 else None, 30, "Alertmanager to re-send")
            with transaction(factory) as session:
                ticket = session.get(Ticket, eu1_id)
                assert ticket is not None and ticket.occurrences == 3
                assert ticket.payload is not None
                listed = {a["labels"]["instance"]: a["status"] for a in ticket.payload["alerts"]}
                assert listed == {"node-1": "firing", "node-2": "firing", "node-3": "firing"}
                assert ticket.payload["commonLabels"]["cluster"] == "eu1"
                assert {a.occurrences for a in session.scalars(select(Alarm))} == {1}
                kept = list(session.scalars(select(InboxItem)))
                assert {item.status_code for item in kept} == {200}
                assert all(token not in item.path for item in kept)
        finally:
            am.terminate()
            am.wait(timeout=10)
