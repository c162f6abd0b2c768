"""What the hourly clean-ups keep: inbox items for DUTYDESK_INBOX_KEEP_DAYS, and each alarm
occurrence's timeline entry for DUTYDESK_OCCURRENCE_EVENTS_KEEP_DAYS (the tickets' counts and
every other kind of entry stay)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.intake import jobs as intake_jobs
from dutydesk.intake import service
from dutydesk.intake.models import InboxItem
from dutydesk.tickets import jobs as ticket_jobs
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket, TicketEvent
from tests.conftest import clear_caches

NOW = utcnow()


def inbox_item(db: Session, days_ago: float) -> None:
    service.record(
        db,
        source="generic",
        method="POST",
        path="/hooks/generic/x",
        client="t",
        headers={},
        body=b"{}",
        at=NOW - dt.timedelta(days=days_ago),
    )


def test_inbox_items_older_than_the_setting_are_deleted(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    for days_ago in (0, 10, 89, 91, 200, 365):
        inbox_item(db, days_ago)
    db.flush()
    monkeypatch.setenv("DUTYDESK_INBOX_KEEP_DAYS", "90")
    clear_caches()
    assert intake_jobs.prune(db, {})["inbox_deleted"] == 3
    ages = sorted(
        round((NOW - at).total_seconds() / 86_400)
        for at in db.scalars(select(InboxItem.received_at))
    )
    assert ages == [0, 10, 89]


def test_inbox_deletes_in_batches_and_zero_keeps_everything(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(7):
        inbox_item(db, 100)
    inbox_item(db, 1)
    db.flush()
    assert service.prune_inbox(db, before=NOW - dt.timedelta(days=90), batch=3) == 7
    assert db.scalar(select(func.count()).select_from(InboxItem)) == 1
    inbox_item(db, 500)
    db.flush()
    monkeypatch.setenv("DUTYDESK_INBOX_KEEP_DAYS", "0")
    clear_caches()
    assert intake_jobs.prune(db, {})["inbox_deleted"] == 0
    assert db.scalar(select(func.count()).select_from(InboxItem)) == 2


def test_old_occurrence_entries_go_and_the_ticket_keeps_its_counts(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def occur(days_ago: int) -> tickets.AlarmOutcome:
        return tickets.open_or_update_ticket(
            db,
            tickets.Alarm(
                source="prometheus",
                fingerprint="disk",
                title="Disk full",
                occurred_at=NOW - dt.timedelta(days=days_ago),
            ),
        )

    opened = occur(200)
    for days_ago in (150, 120, 95, 30, 1):
        occur(days_ago)
    assert opened.ticket is not None
    tickets.add_note(
        db, opened.ticket, "looked at it", author="ann", at=NOW - dt.timedelta(days=150)
    )
    db.flush()
    monkeypatch.setenv("DUTYDESK_OCCURRENCE_EVENTS_KEEP_DAYS", "90")
    clear_caches()
    assert ticket_jobs.prune(db, {}) == {"occurrence_events_deleted": 3}
    db.expire_all()
    kinds = [
        (event.kind, round((NOW - event.at).total_seconds() / 86_400))
        for event in db.scalars(select(TicketEvent).order_by(TicketEvent.id))
    ]
    assert ("opened", 200) in kinds
    assert [age for kind, age in kinds if kind == "occurrence"] == [30, 1]
    assert any(kind == "note" for kind, _ in kinds)
    ticket = db.get(Ticket, opened.ticket_id)
    assert ticket is not None and ticket.occurrences == 6
    assert round((NOW - ticket.first_seen_at).total_seconds() / 86_400) == 200
