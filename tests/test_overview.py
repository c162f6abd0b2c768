"""The overview, the live desk: on duty, tickets by severity, firing alarms, the last export
against its baseline, approvals waiting for me, broadcasts and silences, backups, CI, and the
desk's own processes by their heartbeats (red when one is missing, with real processes)."""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.alarms.models import Alarm
from dutydesk.db import utcnow
from dutydesk.export.models import ExportRun
from dutydesk.intake.service import create_integration
from dutydesk.metrics import heartbeats
from dutydesk.metrics.models import ProcessHeartbeat
from dutydesk.people import service as people
from dutydesk.tickets.models import Ticket
from tests.conftest import make_user, sign_in
from tests.test_processes import healthy
from tests.test_processes import sign_in as sign_in_over_http
from tests.test_worker import (
    DATABASES,
    Desk,
    free_port,
    make_desk,  # noqa: F401 (a fixture)
    wait_until,
)

HEARTBEAT_SECONDS = 2.0


def process_cell(page: str, role: str) -> tuple[str, str]:
    """The state cell of `role` in the overview's process table: its class and text."""
    row = re.search(rf'<tr id="process-{role}">(.*?)</tr>', page, re.S)
    assert row, f"no row for {role}"
    cell = re.findall(r'<td class="([^"]*)">([^<]*)</td>', row.group(1))
    assert cell, row.group(1)
    return cell[-1]


def test_overview_shows_tickets_alarms_the_last_export_and_ci(
    client: TestClient, db: Session
) -> None:
    now = utcnow()
    jenkins = create_integration(db, name="jenkins", kind="ci", actor="test").integration
    db.add_all(
        [
            Ticket(title="disk full", severity="critical"),
            Ticket(title="slow page", severity="warning"),
            Ticket(title="closed one", severity="critical", status="closed", closed_at=now),
            Alarm(
                fingerprint="am:disk",
                ticket_key="disk",
                source="alertmanager",
                title="Disk almost full on db-1",
                severity="critical",
            ),
            Alarm(
                fingerprint="jenkins:nightly",
                ticket_key="ci",
                source="jenkins",
                integration_id=jenkins.id,
                title="Pipeline nightly-integration failed",
                severity="warning",
            ),
        ]
    )
    for day, seconds in ((4, 40), (3, 44), (2, 42), (1, 130)):
        start = now - dt.timedelta(days=day)
        db.add(
            ExportRun(
                request={},
                request_text="{}",
                run_key=f"k{day}",
                state="succeeded",
                export_date=start.date().isoformat(),
                created_by="test",
                started_at=start,
                finished_at=start + dt.timedelta(seconds=seconds),
                metrics={"counters": {"numTotal": 1000 + day}},
            )
        )
    db.add(
        ExportRun(
            request={},
            request_text="{}",
            run_key="today",
            state="running",
            export_date=now.date().isoformat(),
            created_by="test",
            started_at=now,
        )
    )
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/").text
    tickets = re.search(r'<section id="open-tickets">(.*?)</section>', page, re.S)
    assert tickets and re.search(
        r"critical</th><td><a [^>]*>1</a></td>\s*<td[^>]*>1</td>", tickets.group(1)
    )
    assert "Disk almost full on db-1" in page and "2 firing." in page
    assert "Pipeline nightly-integration failed: failing since" in page
    export = re.search(r'<section id="last-export">(.*?)</section>', page, re.S)
    assert export is not None
    # Today's run is running; the last finished one took 130 s against a baseline of 42 s (the
    # median of the runs before it): red.
    assert '<span class="state-running ">running</span>' in export.group(1)
    assert "The last finished, <a" in export.group(1)
    assert '<span class="failing">130 s</span> (baseline 42 s)' in export.group(1)
    assert "1001 records" in export.group(1) and 'id="export-sparkline"' in export.group(1)
    assert "uPlot-1.6.32.iife.min.js" in page
    assert "No rotation: nobody is on duty." in page


def test_overview_shows_a_late_process_red_and_a_beating_one_green(
    client: TestClient, db: Session, factory: sessionmaker[Session]
) -> None:
    heartbeats.beat(db, "web")
    db.add(
        ProcessHeartbeat(
            role="worker", host="h", pid=1, beat_at=utcnow() - dt.timedelta(seconds=60)
        )
    )
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/").text
    assert process_cell(page, "web") == ("ok", "alive (1 process)")
    css, text = process_cell(page, "worker")
    assert css == "failing" and text.startswith("missing: no heartbeat since")
    assert process_cell(page, "beat") == ("failing", "no heartbeat recorded")
    # Without Litestream the backup daemon is not run here: grey, not red.
    assert process_cell(page, "backupd") == ("muted", "not run here")


def test_overview_needs_sign_in(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


@pytest.mark.worker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("database", DATABASES)
def test_a_stopped_worker_is_red_on_the_overview_within_two_heartbeats(
    make_desk: Callable[..., Desk],  # noqa: F811 (the fixture imported above)
    database: str,
) -> None:
    desk = make_desk("sqlite", database)
    desk.env["DUTYDESK_PROCESS_HEARTBEAT_SECONDS"] = str(HEARTBEAT_SECONDS)
    desk.migrate()
    with sessionmaker(bind=desk.engine)() as session:
        people.add_user(session, "ada", "viewer", email=None, password="a-long-test-password")
        session.commit()
    port = free_port()
    # All three start at once; their start-ups (imports, mostly) overlap.
    desk.processes.start("web", ["web", "--port", str(port)], desk.env)
    worker = desk.start_worker(wait=False)
    beat = desk.start_beat(wait=False)
    desk.wait_until_ready(worker)
    desk.wait_until_beating(beat)
    base_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(base_url), 60, "the web process to answer")
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=10) as client:
        sign_in_over_http(client, "ada", "a-long-test-password")
        seen: list[dict[str, tuple[str, str]]] = []

        def shown(*roles: str) -> dict[str, tuple[str, str]]:
            page = client.get("/").text
            seen.append({role: process_cell(page, role) for role in roles})
            return seen[-1]

        def green(*roles: str) -> bool:
            return all(css == "ok" for css, _ in shown(*roles).values())

        deadline = time.monotonic() + 30
        while not green("web", "worker", "beat"):
            assert time.monotonic() < deadline, f"not all green: {seen[-1]}"
            time.sleep(0.2)
        worker.popen.send_signal(signal.SIGKILL)
        worker.popen.wait()
        stopped = time.monotonic()
        while shown("worker")["worker"][0] != "failing":
            assert time.monotonic() < stopped + 30, f"the worker is not red: {seen[-1]}"
            time.sleep(0.1)
        waited = time.monotonic() - stopped
        # The others beat on: green again at once if a loaded machine delayed a beat.
        deadline = time.monotonic() + 10
        while not green("web", "beat"):
            assert time.monotonic() < deadline, f"web or beat not green: {seen[-1]}"
            time.sleep(0.2)
    print(f"worker shown red {waited:.2f} s after it was killed")
    assert waited <= 2 * HEARTBEAT_SECONDS
