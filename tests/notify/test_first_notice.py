"""A ticket's first notice does not wait for the beat tick: the transaction that opens the
ticket also queues the job that escalates it, steps without a wait run together, and the
notices go out side by side."""

from __future__ import annotations

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.db import build_engine, transaction
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.notify import escalation
from dutydesk.notify import service as notify
from dutydesk.notify.jobs import deliver_due_job
from dutydesk.notify.models import Delivery
from dutydesk.tickets import service as tickets
from tests.conftest import clear_caches, fresh_database_url
from tests.notify.conftest import T0, Receiver, Team, free_port
from tests.test_jobs import broker_messages


def escalation_jobs(db: Session) -> list[Job]:
    db.expire_all()
    return list(db.scalars(select(Job).where(Job.kind == "notify.escalate").order_by(Job.id)))


def slack_policy(db: Session, receiver: Receiver, wait_minutes: int = 0) -> None:
    notify.create_channel(db, name="ops", url=f"{receiver.url}/slack", kind="slack")
    escalation.create_policy(
        db,
        name="critical",
        steps=[{"target": "channel", "name": "ops", "wait_minutes": wait_minutes}],
    )
    db.commit()


def test_opening_a_ticket_queues_its_escalation_at_commit_and_the_job_sends_the_notice(
    db: Session, factory: sessionmaker[Session], receiver: Receiver, home: Path
) -> None:
    slack_policy(db, receiver)
    outcome = tickets.create_ticket(db, title="API down", severity="critical", actor="t")
    assert outcome.ticket is not None
    assert escalation_jobs(db) == []  # nothing before the commit
    assert broker_messages(home) == 0
    db.commit()
    assert broker_messages(home) == 1  # sent right after the commit
    [job] = escalation_jobs(db)
    assert (job.state, job.args["tickets"]) == ("queued", [outcome.ticket.id])
    assert receiver.requests == []
    assert jobs.execute(job.id, "test-worker", factory) == "succeeded"
    [slack] = receiver.bodies("/slack")
    assert f"[{outcome.ticket.key}] API down" in slack["text"]
    db.expire_all()
    [delivery] = db.scalars(select(Delivery)).all()
    assert (delivery.state, delivery.reason) == ("sent", "first notification")
    # The tick finds nothing left to do for it.
    escalation.run_escalations(db)
    assert len(db.scalars(select(Delivery)).all()) == 1


def test_an_alarm_that_opens_a_ticket_queues_one_job_and_a_repeat_none(
    db: Session, receiver: Receiver
) -> None:
    slack_policy(db, receiver)
    alarm = tickets.Alarm(source="prometheus", fingerprint="disk", title="Disk full")
    tickets.open_or_update_ticket(db, alarm)
    db.commit()
    tickets.open_or_update_ticket(db, alarm)
    db.commit()
    assert len(escalation_jobs(db)) == 1


def test_without_any_policy_or_after_a_rollback_no_job_is_queued(
    db: Session, receiver: Receiver
) -> None:
    tickets.create_ticket(db, title="API down", severity="critical", actor="t")
    db.commit()
    assert escalation_jobs(db) == []
    slack_policy(db, receiver)
    tickets.create_ticket(db, title="API down again", severity="critical", actor="t")
    db.rollback()
    db.commit()
    assert escalation_jobs(db) == []


def test_steps_without_a_wait_run_together_and_the_next_waits_its_minutes(
    db: Session, team: Team, receiver: Receiver
) -> None:
    for name in ("a", "b", "c"):
        notify.create_channel(db, name=name, url=f"{receiver.url}/{name}", kind="slack")
    escalation.create_policy(
        db,
        name="critical",
        steps=[
            {"target": "channel", "name": "a", "wait_minutes": 0},
            {"target": "channel", "name": "b", "wait_minutes": 5},
            {"target": "channel", "name": "c", "wait_minutes": 0},
        ],
    )
    tickets.create_ticket(db, title="API down", severity="critical", actor="t")
    escalation.run_escalations(db, now=T0)
    db.flush()
    assert [d.channel for d in db.scalars(select(Delivery).order_by(Delivery.id))] == ["a", "b"]
    escalation.run_escalations(db, now=T0 + dt.timedelta(minutes=4))
    assert len(db.scalars(select(Delivery)).all()) == 2
    escalation.run_escalations(db, now=T0 + dt.timedelta(minutes=5))
    assert [d.channel for d in db.scalars(select(Delivery).order_by(Delivery.id))] == [
        "a",
        "b",
        "c",
    ]


def test_with_a_group_wait_the_job_waits_it_and_the_wait_counts_from_the_opening(
    db: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_NOTIFY_GROUP_WAIT_SECONDS", "30")
    clear_caches()
    slack_policy(db, receiver)
    ticket = tickets.create_ticket(db, title="API down", severity="critical", actor="t").ticket
    assert ticket is not None
    db.commit()
    [job] = escalation_jobs(db)
    assert job.run_after - job.enqueued_at >= dt.timedelta(seconds=30)
    opened = dt.datetime.fromisoformat(job.args["opened_at"])
    # Run late by a few seconds, the first step is due: 30 s after the opening, not the run.
    ran = escalation.escalate_opened(
        db, [ticket.id], opened_at=opened, now=opened + dt.timedelta(seconds=29)
    )
    assert ran == 0
    ran = escalation.escalate_opened(
        db, [ticket.id], opened_at=opened, now=opened + dt.timedelta(seconds=31)
    )
    assert ran == 1
    assert [d.reason for d in db.scalars(select(Delivery))] == ["first notification"]


def test_a_slow_receiver_does_not_hold_up_the_notices_to_other_channels(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database_url(backend, tmp_path, "side_by_side")
    migrations.upgrade(url)
    factory = sessionmaker(bind=build_engine(url), expire_on_commit=False)
    fast_arrived = threading.Event()
    slow_saw_fast: list[bool] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/slow":  # answers once the other notice arrived (or gives up)
                slow_saw_fast.append(fast_arrived.wait(timeout=5))
            else:
                fast_arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with transaction(factory) as session:
            for name in ("slow", "fast"):  # the slow one is first in line
                channel = notify.create_channel(
                    session, name=name, url=f"{base}/{name}", kind="slack"
                )
                notify.send_test(session, channel, actor="t")
        with transaction(factory) as session:
            assert deliver_due_job(session, {}) == {"sent": 2}
    finally:
        server.shutdown()
        server.server_close()
    assert slow_saw_fast == [True]
