"""One open ticket per fingerprint, occurrences, seen-before links, resolve signals, triage."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.tickets import service
from dutydesk.tickets.models import Status, Ticket, TicketEvent
from tests.tickets.conftest import T0, add_person, alarm


def kinds(db: Session, ticket: Ticket) -> list[str]:
    return [event.kind for event in service.timeline(db, ticket)]


def test_a_new_fingerprint_opens_a_ticket(db: Session) -> None:
    outcome = service.open_or_update_ticket(db, alarm())
    ticket = outcome.ticket
    assert outcome.is_new and ticket is not None
    assert ticket.key == f"DD-{ticket.id}"
    assert (ticket.status, ticket.severity, ticket.source) == ("open", "high", "alertmanager")
    assert ticket.occurrences == 1
    assert ticket.first_seen_at == ticket.last_seen_at == T0
    assert kinds(db, ticket) == ["opened"]


def test_second_alarm_with_same_fingerprint_adds_occurrence(db: Session) -> None:
    first = service.open_or_update_ticket(db, alarm()).ticket
    later = T0 + dt.timedelta(minutes=5)
    second = service.open_or_update_ticket(
        db, alarm(occurred_at=later, severity="critical", payload={"free": "4%"})
    )
    assert not second.is_new
    assert second.ticket is first
    assert first is not None
    assert first.occurrences == 2
    assert first.last_seen_at == later
    assert first.severity == "critical", "a more urgent occurrence raises the severity"
    assert first.payload == {"free": "4%"}
    assert kinds(db, first) == ["opened", "occurrence"]
    assert db.scalars(select(Ticket)).all() == [first]


def test_same_fingerprint_after_close_opens_a_new_ticket_seen_before(db: Session) -> None:
    old = service.open_or_update_ticket(db, alarm()).ticket
    assert old is not None
    service.close_ticket(db, old, resolution="cleaned up", actor="olga")
    new = service.open_or_update_ticket(db, alarm(occurred_at=T0 + dt.timedelta(days=1)))
    assert new.is_new and new.ticket is not None
    assert new.ticket.id != old.id
    assert new.ticket.seen_before_id == old.id
    opened = service.timeline(db, new.ticket)[0]
    assert opened.detail["seen_before"] == old.key


def test_acknowledged_ticket_still_collects_occurrences(db: Session) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    service.acknowledge(db, ticket, actor="olga")
    again = service.open_or_update_ticket(db, alarm())
    assert again.ticket is ticket and ticket.occurrences == 2


def test_resolve_signal_adds_an_event_and_leaves_the_ticket_open_by_default(db: Session) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    outcome = service.open_or_update_ticket(db, alarm(resolved=True))
    assert outcome.ticket is ticket and not outcome.is_new
    assert ticket.status == "open"
    assert ticket.occurrences == 1
    assert kinds(db, ticket) == ["opened", "resolved_signal"]


def test_resolve_signal_closes_when_the_source_is_configured_to(db: Session) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    service.open_or_update_ticket(db, alarm(resolved=True, close_on_resolve=True))
    assert ticket.status == "closed"
    assert ticket.closed_by == "alertmanager"
    assert ticket.resolution == "resolved by alertmanager"
    assert kinds(db, ticket) == ["opened", "resolved_signal", "closed"]


def test_resolve_signal_for_an_unknown_fingerprint_opens_nothing(db: Session) -> None:
    outcome = service.open_or_update_ticket(db, alarm("never-seen", resolved=True))
    assert outcome.ticket is None and not outcome.is_new
    assert db.scalars(select(Ticket)).all() == []


def test_alarm_without_fingerprint_or_title_is_refused(db: Session) -> None:
    with pytest.raises(service.TicketInputError, match="no fingerprint"):
        service.open_or_update_ticket(db, alarm("  "))
    with pytest.raises(service.TicketInputError, match="title is empty"):
        service.open_or_update_ticket(db, alarm(title=" "))
    with pytest.raises(service.TicketInputError, match="unknown severity 'dire'"):
        service.open_or_update_ticket(db, alarm(severity="dire"))


def test_the_database_refuses_a_second_open_ticket_for_a_fingerprint(db: Session) -> None:
    service.open_or_update_ticket(db, alarm())
    db.flush()
    row = {
        "title": "duplicate",
        "description": "",
        "severity": "high",
        "status": "acknowledged",
        "source": "x",
        "fingerprint": "fp-disk-db1",
        "first_seen_at": T0,
        "last_seen_at": T0,
        "occurrences": 1,
        "created_by": "test",
        "created_at": T0,
    }
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(Ticket), [row])
    # A closed ticket with the same fingerprint is fine: only open ones are unique.
    db.execute(insert(Ticket), [{**row, "status": "closed"}])


def test_manual_ticket_without_fingerprint(db: Session) -> None:
    outcome = service.create_ticket(db, title="Renew the TLS certificate", actor="olga")
    assert outcome.is_new and outcome.ticket is not None
    assert outcome.ticket.source == "manual" and outcome.ticket.fingerprint is None
    second = service.create_ticket(db, title="Renew the TLS certificate", actor="olga")
    assert second.ticket is not None and second.ticket.id != outcome.ticket.id


def test_triage_walk_acknowledge_assign_note_close_reopen(db: Session, olga: User) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    service.acknowledge(db, ticket, actor="olga")
    assert ticket.status == Status.acknowledged.value and ticket.acknowledged_by == "olga"
    service.assign(db, ticket, "olga", actor="olga")
    assert ticket.assignee_name == "olga"
    note = service.add_note(db, ticket, "  Cleaned **WAL** archives.  ", author="olga")
    assert note.body == "Cleaned **WAL** archives."
    service.close_ticket(
        db,
        ticket,
        resolution="Disk cleaned",
        link_url="https://tracker.example/browse/OPS-42",
        actor="olga",
    )
    assert ticket.status == "closed" and ticket.closed_by == "olga"
    assert [(link.key, link.url) for link in ticket.links] == [
        ("OPS-42", "https://tracker.example/browse/OPS-42")
    ]
    with pytest.raises(service.TicketConflict, match="already closed"):
        service.close_ticket(db, ticket, actor="olga")
    with pytest.raises(service.TicketConflict, match="is closed; reopen it first"):
        service.acknowledge(db, ticket, actor="olga")
    service.reopen(db, ticket, actor="olga")
    assert ticket.status == "open" and ticket.closed_at is None and ticket.resolution is None
    assert kinds(db, ticket) == [
        "opened",
        "acknowledged",
        "assigned",
        "note",
        "link",
        "closed",
        "reopened",
    ]


def test_reopen_is_refused_while_the_fingerprint_has_a_newer_open_ticket(db: Session) -> None:
    old = service.open_or_update_ticket(db, alarm()).ticket
    assert old is not None
    service.close_ticket(db, old, actor="olga")
    new = service.open_or_update_ticket(db, alarm()).ticket
    assert new is not None
    with pytest.raises(service.TicketConflict, match=f"{new.key} is open"):
        service.reopen(db, old, actor="olga")


def test_bad_input_names_the_problem(db: Session, olga: User) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    with pytest.raises(service.TicketInputError, match="note text is empty"):
        service.add_note(db, ticket, " \n ", author="olga")
    with pytest.raises(service.TicketInputError, match="unknown user 'nobody'"):
        service.assign(db, ticket, "nobody", actor="olga")
    add_person(db, "vik", "viewer")
    with pytest.raises(service.TicketInputError, match="viewer and cannot work tickets"):
        service.assign(db, ticket, "vik", actor="olga")
    for url in ("javascript:alert(1)", "ftp://x/y", "https://", "tracker/OPS-1", "https://a b"):
        with pytest.raises(service.TicketInputError, match="is not an http"):
            service.close_ticket(db, ticket, link_url=url, actor="olga")
    assert ticket.status == "open", "a refused close changes nothing"
    with pytest.raises(service.TicketNotFound, match="no ticket DD-999999"):
        service.get_ticket(db, "DD-999999")
    with pytest.raises(service.TicketNotFound, match="keys look like DD-12"):
        service.get_ticket(db, "PROJ-1")


def test_keys_are_read_in_any_case_or_as_plain_numbers(db: Session) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    for key in (ticket.key, ticket.key.lower(), str(ticket.id)):
        assert service.get_ticket(db, key) is ticket


def test_link_key_is_taken_from_the_url_when_not_given() -> None:
    assert service.check_link("https://tracker.example/browse/PROJ-123")[1] == "PROJ-123"
    assert service.check_link("https://github.com/o/r/issues/77")[1] == "77"
    assert service.check_link("https://t.example/x", "OPS-9")[1] == "OPS-9"


def test_notification_is_recorded_on_the_timeline(db: Session) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    service.record_notification(
        db, ticket, channel="email", recipient="olga@desk.example", reason="on duty", actor="notify"
    )
    event = db.scalars(select(TicketEvent).where(TicketEvent.kind == "notified")).one()
    assert event.detail == {
        "channel": "email",
        "recipient": "olga@desk.example",
        "reason": "on duty",
    }
