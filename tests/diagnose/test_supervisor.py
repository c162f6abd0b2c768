"""Processes under a real supervisord (Debian `supervisor`) started by the test on loopback:
listed, stopped and started through the desk with a reason, logs tailed, and a process that
crashes in a loop raising an alarm."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.audit.models import AuditEvent
from dutydesk.diagnose import supervisors
from dutydesk.diagnose.models import SupervisorServer
from dutydesk.people.models import Role
from dutydesk.tickets.models import Ticket
from tests.conftest import make_user, sign_in
from tests.diagnose.conftest import PASSWORD, Running


def register(db: Session, running: Running, password: str = PASSWORD) -> SupervisorServer:
    server = supervisors.create_server(
        db, name="app-1", url=running.url, username="desk", password=password, actor="test"
    )
    db.commit()
    return server


def test_a_process_stopped_through_the_desk_is_stopped_in_supervisor(
    client: TestClient, db: Session, supervisord: Running
) -> None:
    server = register(db, supervisord)
    csrf = sign_in(client, db, make_user(db, Role.viewer))
    listed = client.get(f"/api/v1/supervisors/{server.id}/processes").json()
    web = next(p for p in listed if p["name"] == "web:web")
    assert web["state"] == "RUNNING" and web["pid"] > 0 and web["uptime_seconds"] >= 0
    url = f"/api/v1/supervisors/{server.id}/processes/web:web/stop"
    denied = client.post(url, json={"reason": "x"}, headers={"X-CSRF-Token": csrf})
    assert denied.status_code == 403

    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.operator))
    assert client.post(url, json={"reason": ""}).status_code == 422
    stopped = client.post(url, json={"reason": "failover to app-2"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["outcome"] == "done"
    assert supervisord.state("web:web") == "STOPPED"
    again = client.post(url, json={"reason": "twice"}).json()
    assert again["outcome"].startswith("refused: NOT_RUNNING")

    page = client.get(f"/supervisors/{server.id}")
    assert page.status_code == 200
    assert "STOPPED" in page.text and "failover to app-2" in page.text
    assert PASSWORD not in page.text and PASSWORD not in client.get("/supervisors").text
    assert PASSWORD not in client.get("/api/v1/supervisors").text

    started = client.post(
        f"/supervisors/{server.id}/processes/web:web/start",
        data={"reason": "failback", "csrf_token": client.headers["X-CSRF-Token"]},
    )
    assert started.status_code == 303
    assert supervisord.state("web:web") == "RUNNING"
    log = client.get(f"/api/v1/supervisors/{server.id}/logs/web:web")
    assert log.status_code == 200 and "serving requests" in log.text
    log_page = client.get(f"/supervisors/{server.id}/logs/web:web")
    assert log_page.status_code == 200 and "serving requests" in log_page.text
    db.expire_all()
    audited = db.scalars(
        select(AuditEvent.after).where(AuditEvent.object_type == "supervisor_actions")
    ).all()
    assert [(a["action"], a["reason"], a["actor"]) for a in audited if a] == [
        ("stop", "failover to app-2", "operator-user"),
        ("stop", "twice", "operator-user"),
        ("start", "failback", "operator-user"),
    ]


def test_a_process_crashing_in_a_loop_raises_an_alarm_and_a_ticket(
    db: Session, supervisord: Running
) -> None:
    server = register(db, supervisord)
    fingerprint = "supervisor:app-1:crasher:crasher"
    deadline = time.monotonic() + 30
    states: list[str] = []
    while time.monotonic() < deadline:
        supervisors.poll(db, server)
        db.commit()
        states.append(supervisord.state("crasher:crasher"))
        if states[-1] == "FATAL":
            supervisors.poll(db, server)
            db.commit()
            break
        time.sleep(0.3)
    assert "FATAL" in states, states
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == fingerprint))
    assert alarm is not None and alarm.state == "firing"
    assert alarm.title.startswith("crasher:crasher is FATAL")
    ticket = db.get(Ticket, alarm.ticket_id)
    assert ticket is not None and ticket.status == "open" and ticket.source == "supervisor"
    # The healthy process raised nothing.
    assert db.scalar(select(Alarm).where(Alarm.fingerprint == "supervisor:app-1:web:web")) is None


def test_wrong_credentials_or_a_stopped_supervisor_are_named_without_the_password(
    client: TestClient, db: Session, supervisord: Running
) -> None:
    server = register(db, supervisord, password="not-" + PASSWORD)
    result = supervisors.poll(db, server)
    db.commit()
    assert result.error is not None and "wrong username or password" in result.error
    assert PASSWORD not in result.error
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "supervisor:app-1"))
    assert alarm is not None and alarm.title == "Supervisor app-1 is unreachable"
    sign_in(client, db, make_user(db, Role.viewer))
    answer = client.get(f"/api/v1/supervisors/{server.id}/processes")
    assert answer.status_code == 503 and "wrong username or password" in answer.json()["detail"]


def test_the_unreachable_alarm_resolves_once_supervisor_answers_again(
    db: Session, supervisord: Running
) -> None:
    server = register(db, supervisord, password="wrong")
    assert supervisors.poll(db, server).error is not None
    server.password = PASSWORD
    result = supervisors.poll(db, server)
    db.commit()
    assert result.error is None and result.processes == 2
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "supervisor:app-1"))
    assert alarm is not None and alarm.state == "resolved"


def test_the_beat_enqueues_a_poll_only_while_a_server_is_enabled(db: Session) -> None:
    from dutydesk.diagnose.jobs import POLL, enqueue_supervisor_poll
    from dutydesk.jobs.models import Job

    enqueue_supervisor_poll(db)
    assert db.scalar(select(Job).where(Job.kind == POLL)) is None
    supervisors.create_server(
        db, name="app-1", url="http://127.0.0.1:9/RPC2", username="", password="", actor="test"
    )
    enqueue_supervisor_poll(db)
    enqueue_supervisor_poll(db)  # one is queued already: not due again
    assert len(db.scalars(select(Job).where(Job.kind == POLL)).all()) == 1


def test_the_instances_line_flags_a_process_running_on_both_supervisors_and_not_on_one(
    db: Session, supervisord: Running, failover_supervisord: Running
) -> None:
    from dutydesk.diagnose import checks, services
    from dutydesk.diagnose.checks import Verdict

    primary = register(db, supervisord)
    failover = supervisors.create_server(
        db,
        name="app-2",
        url=failover_supervisord.url,
        username="desk",
        password=PASSWORD,
        actor="test",
    )
    shop = services.create_service(
        db,
        {
            "name": "shop",
            "supervisors": [
                {"server": "app-1", "processes": ["web:web"]},
                {"server": "app-2", "processes": ["web:web"]},
            ],
            "checklist": ["instances"],
        },
        actor="test",
    )
    db.commit()

    (both,) = checks.run_checklist(db, shop)
    evidence = [item.text for item in both.evidence]
    assert both.verdict is Verdict.unusual, evidence
    assert "web:web runs on 2 servers: app-1, app-2" in evidence
    assert any(text.startswith("app-1 web:web: RUNNING pid") for text in evidence), evidence
    assert any(text.startswith("app-2 web:web: RUNNING pid") for text in evidence), evidence
    assert {item.link for item in both.evidence if item.link} == {
        f"/supervisors/{primary.id}",
        f"/supervisors/{failover.id}",
    }

    # Stopped on the failover, as the failover checklist says: one instance is fine.
    stopped = supervisors.act(db, failover, "web:web", "stop", reason="failback", actor="test")
    db.commit()
    assert stopped.outcome == "done" and failover_supervisord.state("web:web") == "STOPPED"
    (one,) = checks.run_checklist(db, shop)
    evidence = [item.text for item in one.evidence]
    assert one.verdict is Verdict.ok, evidence
    assert any(text.startswith("app-1 web:web: RUNNING") for text in evidence), evidence
    assert any(text.startswith("app-2 web:web: STOPPED") for text in evidence), evidence
    assert not any("runs on" in text for text in evidence)


def test_the_instances_line_fails_while_a_process_of_the_service_crashes(
    db: Session, supervisord: Running
) -> None:
    from dutydesk.diagnose import checks, services
    from dutydesk.diagnose.checks import Verdict

    register(db, supervisord)
    shop = services.create_service(
        db,
        {
            "name": "shop",
            "supervisors": [{"server": "app-1", "processes": ["web:web", "crasher:crasher"]}],
            "checklist": ["instances"],
        },
        actor="test",
    )
    db.commit()
    deadline = time.monotonic() + 30
    while supervisord.state("crasher:crasher") not in ("BACKOFF", "FATAL"):
        assert time.monotonic() < deadline, supervisord.state("crasher:crasher")
        time.sleep(0.2)
    (line,) = checks.run_checklist(db, shop)
    evidence = [item.text for item in line.evidence]
    assert line.verdict is Verdict.failing, evidence
    assert any(
        text.startswith(("app-1 crasher:crasher: BACKOFF", "app-1 crasher:crasher: FATAL"))
        for text in evidence
    ), evidence
    assert any(text.startswith("app-1 web:web: RUNNING") for text in evidence), evidence
