"""Processes under a real supervisord (Debian `supervisor`) started by the test on loopback:
listed, stopped and started through the desk with a reason, logs tailed, and a process that
crashes in a loop raising an alarm."""

from __future__ import annotations

import subprocess
import time
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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
from tests.intake.desk_server import free_port

PASSWORD = "s3cret-supervisor"
CONFIG = """
[inet_http_server]
port=127.0.0.1:{port}
username=desk
password={password}

[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:web]
command=/bin/sh -c 'echo serving requests; exec sleep 600'
startsecs=1
stopwaitsecs=2
stdout_logfile={tmp}/web.log

[program:crasher]
command=/bin/sh -c 'echo cannot connect to the database >&2; exit 3'
startsecs=1
startretries=1
autorestart=true
stderr_logfile={tmp}/crasher.err
"""


@dataclass
class Running:
    """A supervisord of the test: its XML-RPC URL and a client that bypasses the desk."""

    url: str
    direct: xmlrpc.client.ServerProxy

    def state(self, process: str) -> str:
        """The process's state name, asked of supervisord directly."""
        info: Any = self.direct.supervisor.getProcessInfo(process)
        return str(info["statename"])


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Running]:
    """A real supervisord on a free loopback port, stopped at teardown."""
    port = free_port()
    config = tmp_path / "supervisord.conf"
    config.write_text(CONFIG.format(port=port, password=PASSWORD, tmp=tmp_path))
    process = subprocess.Popen(
        ["/usr/bin/supervisord", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/RPC2"
    direct = xmlrpc.client.ServerProxy(f"http://desk:{PASSWORD}@127.0.0.1:{port}/RPC2")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if Running(url, direct).state("web:web") == "RUNNING":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "supervisord did not start web"
            time.sleep(0.2)
        yield Running(url, direct)
    finally:
        process.terminate()
        process.wait(timeout=20)


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
    log = client.get(f"/api/v1/supervisors/{server.id}/processes/web:web/log")
    assert log.status_code == 200 and "serving requests" in log.text
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
