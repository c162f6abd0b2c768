"""`raise_signal`: one alarm per fingerprint, fired and resolved, landed on tickets."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.alarms.service import Signal, raise_signal
from dutydesk.tickets.models import Ticket, TicketEvent

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def signal(**changes: object) -> Signal:
    values: dict[str, object] = {
        "source": "prometheus",
        "fingerprint": "prometheus:disk-db-1",
        "title": "Disk full on db-1",
        "severity": "high",
        "labels": {"instance": "db-1"},
        "occurred_at": T0,
    }
    values.update(changes)
    return Signal(**values)  # type: ignore[arg-type]


def test_first_signal_makes_the_alarm_and_opens_a_ticket(db: Session) -> None:
    outcome = raise_signal(db, signal())
    assert outcome.is_new and outcome.ticket is not None
    alarm = outcome.alarm
    assert (alarm.state, alarm.occurrences, alarm.ticket_id) == ("firing", 1, outcome.ticket.id)
    assert alarm.first_fired_at == alarm.last_fired_at == T0


def test_second_signal_with_same_fingerprint_adds_an_occurrence(db: Session) -> None:
    first = raise_signal(db, signal())
    later = T0 + dt.timedelta(minutes=5)
    second = raise_signal(db, signal(occurred_at=later, title="Disk full on db-1 (95%)"))
    assert second.alarm.id == first.alarm.id and not second.is_new
    assert second.alarm.occurrences == 2 and second.alarm.last_fired_at == later
    assert second.alarm.title == "Disk full on db-1 (95%)"
    assert second.ticket is not None and second.ticket.occurrences == 2


def test_resolve_resolves_the_alarm_and_closes_only_when_asked(db: Session) -> None:
    fired = raise_signal(db, signal())
    done = raise_signal(db, signal(resolved=True, occurred_at=T0 + dt.timedelta(hours=1)))
    assert done.alarm.state == "resolved" and done.alarm.resolved_at == T0 + dt.timedelta(hours=1)
    assert fired.ticket is not None and fired.ticket.status == "open"
    kinds = [e.kind for e in db.scalars(select(TicketEvent).order_by(TicketEvent.id))]
    assert kinds == ["opened", "resolved_signal"]
    again = raise_signal(db, signal(occurred_at=T0 + dt.timedelta(hours=2)))
    assert again.alarm.state == "firing" and again.alarm.resolved_at is None
    raise_signal(db, signal(resolved=True, close_on_resolve=True))
    assert fired.ticket.status == "closed"


def test_repeated_or_unknown_resolves_touch_no_ticket(db: Session) -> None:
    outcome = raise_signal(db, signal(fingerprint="x:never-fired", resolved=True))
    assert outcome.ticket is None and outcome.alarm.state == "resolved"
    assert outcome.alarm.occurrences == 0
    raise_signal(db, signal())
    raise_signal(db, signal(resolved=True))
    events = len(list(db.scalars(select(TicketEvent))))
    raise_signal(db, signal(resolved=True))
    assert len(list(db.scalars(select(TicketEvent)))) == events


def test_alarms_sharing_a_ticket_resolve_it_when_the_last_one_resolves(db: Session) -> None:
    one = raise_signal(db, signal(fingerprint="am:1", ticket_key="am:group", close_on_resolve=True))
    raise_signal(db, signal(fingerprint="am:2", ticket_key="am:group", close_on_resolve=True))
    assert len(list(db.scalars(select(Ticket)))) == 1
    raise_signal(
        db, signal(fingerprint="am:1", ticket_key="am:group", resolved=True, close_on_resolve=True)
    )
    assert one.ticket is not None and one.ticket.status == "open"
    raise_signal(
        db, signal(fingerprint="am:2", ticket_key="am:group", resolved=True, close_on_resolve=True)
    )
    assert one.ticket.status == "closed"
    states = sorted(a.state for a in db.scalars(select(Alarm)))
    assert states == ["resolved", "resolved"]
