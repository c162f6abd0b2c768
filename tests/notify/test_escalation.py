"""Escalation with a controlled clock: step 1 at once, step 2 after its wait, frozen against
a policy edit, stopped by acknowledgement; the same notice is never sent twice."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.db import build_engine, transaction
from dutydesk.notify import escalation
from dutydesk.notify import service as notify
from dutydesk.notify.models import Delivery, Escalation
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket, TicketEvent
from tests.conftest import clear_caches, fresh_database_url
from tests.notify.conftest import T0, Receiver, Team
from tests.tickets.conftest import add_person

MINUTE = dt.timedelta(minutes=1)


def notices(db: Session) -> list[tuple[str, str]]:
    db.flush()
    return [(d.target, d.reason) for d in db.scalars(select(Delivery).order_by(Delivery.id))]


def test_steps_run_on_time_frozen_against_an_edit_and_stop_on_acknowledgement(
    db: Session, team: Team
) -> None:
    add_person(db, "carl", "operator", "carl@desk.example")
    policy = escalation.create_policy(
        db,
        name="critical",
        steps=[
            {"target": "rotation", "name": "primary", "wait_minutes": 5},
            {"target": "user", "name": "lea", "wait_minutes": 10},
        ],
        repeat=3,
    )
    ticket = tickets.create_ticket(db, title="API down", severity="critical", actor="t").ticket
    assert ticket is not None
    escalation.run_escalations(db, now=T0)
    assert notices(db) == [("user:ana", "first notification")]
    escalation.update_policy(
        db, policy, steps=[{"target": "user", "name": "carl", "wait_minutes": 1}]
    )
    escalation.run_escalations(db, now=T0 + 4 * MINUTE)
    assert len(notices(db)) == 1
    escalation.run_escalations(db, now=T0 + 5 * MINUTE)
    assert notices(db)[1:] == [("user:lea", "escalation step 2 of 2")]
    escalation.run_escalations(db, now=T0 + 15 * MINUTE)
    assert notices(db)[2:] == [("user:ana", "repeat interval elapsed")]
    tickets.acknowledge(db, ticket, actor="ana")
    escalation.run_escalations(db, now=T0 + 60 * MINUTE)
    assert len(notices(db)) == 3
    running = db.scalars(select(Escalation)).one()
    assert (running.state, running.end_reason) == ("stopped", "acknowledged")
    steps = [
        e.detail["reason"]
        for e in db.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
        if e.kind == "notified"
    ]
    assert steps == [
        "critical: first notification",
        "critical: escalation step 2 of 2",
        "critical: repeat interval elapsed",
    ]


def test_policy_is_chosen_by_source_and_severity_rules(db: Session, team: Team) -> None:
    step = [{"target": "user", "name": "ana", "wait_minutes": 5}]
    escalation.create_policy(
        db,
        name="backups",
        steps=step,
        sources=["backup"],
        severities=["critical", "high"],
        position=1,
    )
    escalation.create_policy(db, name="default", steps=step, position=2)
    warning = tickets.create_ticket(db, title="slow", severity="warning", actor="t").ticket
    critical = tickets.create_ticket(db, title="down", severity="critical", actor="t").ticket
    assert warning is not None and critical is not None
    assert escalation.policy_for(db, warning) is None
    found = escalation.policy_for(db, critical)
    assert found is not None and found.name == "default"
    critical.source = "backup"
    found = escalation.policy_for(db, critical)
    assert found is not None and found.name == "backups"


def test_policy_with_unknown_targets_is_refused(db: Session, team: Team) -> None:
    with pytest.raises(notify.NotifyError, match="step 1: no rotation named 'nope'"):
        escalation.create_policy(
            db, name="p", steps=[{"target": "rotation", "name": "nope", "wait_minutes": 1}]
        )
    with pytest.raises(notify.NotifyError, match="target must be one of"):
        escalation.create_policy(db, name="p", steps=[{"target": "moon", "name": "x"}])


@pytest.fixture
def own_database(backend: str, tmp_path: Path) -> sessionmaker[Session]:
    """A migrated database of its own, for workers that commit for real at the same time."""
    url = fresh_database_url(backend, tmp_path, "race")
    migrations.upgrade(url)
    return sessionmaker(bind=build_engine(url), expire_on_commit=False)


def test_two_workers_never_send_the_same_notice_twice(
    own_database: sessionmaker[Session], receiver: Receiver
) -> None:
    factory = own_database
    with transaction(factory) as session:
        add_person(session, "ana", "operator", None)
        notify.create_channel(session, name="ops", url=f"{receiver.url}/slack", kind="slack")
        escalation.create_policy(
            session, name="p", steps=[{"target": "channel", "name": "ops", "wait_minutes": 5}]
        )
        for n in range(5):
            tickets.create_ticket(session, title=f"down {n}", severity="critical", actor="t")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                with transaction(factory, immediate=True) as session:
                    escalation.run_escalations(session, now=T0)
                with transaction(factory) as session:
                    due = notify.due_deliveries(session, now=T0)
                for delivery_id in due:
                    notify.deliver(factory, delivery_id, now=T0)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with transaction(factory) as session:
        rows = session.scalars(select(Delivery)).all()
        keys = sorted(t.key for t in session.scalars(select(Ticket)))
        assert sorted(d.subject for d in rows) == keys
        assert {d.state for d in rows} == {"sent"}
    assert len(receiver.requests) == 5
    factory.kw["bind"].dispose()


def test_group_wait_delays_the_first_notice_and_repeat_interval_reminds_until_acknowledged(
    db: Session, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_NOTIFY_GROUP_WAIT_SECONDS", "30")
    monkeypatch.setenv("DUTYDESK_NOTIFY_REPEAT_INTERVAL_MINUTES", "60")
    clear_caches()
    escalation.create_policy(
        db, name="p", steps=[{"target": "user", "name": "ben", "wait_minutes": 5}]
    )
    ticket = tickets.create_ticket(db, title="API down", severity="critical", actor="t").ticket
    assert ticket is not None
    escalation.run_escalations(db, now=T0)
    assert notices(db) == []
    escalation.run_escalations(db, now=T0 + dt.timedelta(seconds=30))
    assert notices(db) == [("user:ben", "first notification")]
    escalation.run_escalations(db, now=T0 + 59 * MINUTE)
    assert len(notices(db)) == 1
    escalation.run_escalations(db, now=T0 + 61 * MINUTE)
    escalation.run_escalations(db, now=T0 + 122 * MINUTE)
    assert notices(db)[1:] == [("user:ben", "repeat interval elapsed")] * 2
    tickets.acknowledge(db, ticket, actor="ben")
    escalation.run_escalations(db, now=T0 + 600 * MINUTE)
    assert len(notices(db)) == 3
    assert db.scalars(select(Escalation)).one().state == "stopped"


def test_new_occurrences_are_told_at_most_once_per_group_interval(
    db: Session, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_NOTIFY_GROUP_INTERVAL_MINUTES", "10")
    monkeypatch.setenv("DUTYDESK_NOTIFY_REPEAT_INTERVAL_MINUTES", "1000")
    clear_caches()
    escalation.create_policy(
        db, name="p", steps=[{"target": "user", "name": "ben", "wait_minutes": 500}]
    )
    alarm = tickets.Alarm(
        source="prometheus", fingerprint="api-down", title="API down", severity="critical"
    )
    tickets.open_or_update_ticket(db, alarm)
    escalation.run_escalations(db, now=T0)
    assert notices(db) == [("user:ben", "first notification")]
    for delivery in db.scalars(select(Delivery)):
        delivery.state = "sent"  # as the sender would have marked it
    escalation.run_escalations(db, now=T0 + 11 * MINUTE)
    assert len(notices(db)) == 1  # nothing new to tell
    for _ in range(3):
        tickets.open_or_update_ticket(db, alarm)
    escalation.run_escalations(db, now=T0 + 12 * MINUTE)
    assert notices(db)[1:] == [("user:ben", "new occurrences")]
    tickets.open_or_update_ticket(db, alarm)
    escalation.run_escalations(db, now=T0 + 15 * MINUTE)
    assert len(notices(db)) == 2  # within the interval of the last notice
    escalation.run_escalations(db, now=T0 + 22 * MINUTE)
    assert notices(db)[2:] == [("user:ben", "new occurrences")]
    told = db.scalars(select(Escalation)).one()
    assert (told.occurrences_told, told.occurrences_told_at) == (5, T0 + 22 * MINUTE)
    bodies = [d.body for d in db.scalars(select(Delivery).order_by(Delivery.id))]
    assert "occurred 3 more times (4 in all)" in bodies[1]
    assert "occurred 1 more time (5 in all)" in bodies[2]
