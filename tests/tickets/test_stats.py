"""The weekly review's numbers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.tickets import service, stats
from tests.tickets.conftest import alarm

# A Wednesday; its week starts on Monday 2026-11-16.
NOW = dt.datetime(2026, 11, 18, 12, 0, tzinfo=dt.UTC)
MONDAY = dt.date(2026, 11, 16)


def test_weekly_numbers_count_time_and_noise(db: Session, olga: User) -> None:
    hours = dt.timedelta(hours=1)
    quick = service.open_or_update_ticket(db, alarm("quick", occurred_at=NOW - 30 * hours))
    slow = service.open_or_update_ticket(db, alarm("slow", occurred_at=NOW - 40 * hours))
    last_week = service.open_or_update_ticket(
        db, alarm("old", occurred_at=NOW - dt.timedelta(days=8))
    )
    for _ in range(3):
        service.open_or_update_ticket(db, alarm("slow", occurred_at=NOW - 2 * hours))
    assert quick.ticket and slow.ticket and last_week.ticket
    service.acknowledge(db, quick.ticket, actor="olga", at=NOW - 29 * hours)
    service.acknowledge(db, slow.ticket, actor="olga", at=NOW - 30 * hours)
    service.close_ticket(db, quick.ticket, actor="olga", at=NOW - 28 * hours)
    service.close_ticket(db, last_week.ticket, actor="olga", at=NOW - 20 * hours)
    db.flush()

    review = stats.weekly_numbers(db, weeks=2, stale_days=7, now=NOW)
    this, before = review.weeks
    assert (this.start, before.start) == (MONDAY, MONDAY - dt.timedelta(weeks=1))
    assert (this.opened, this.closed) == (2, 2)
    assert (before.opened, before.closed) == (1, 0)
    assert this.time_to_acknowledge == stats.Spread(2, 5.5 * 3600, 10 * 3600)
    assert this.time_to_close.count == 2
    assert this.time_to_close.median_s == (2 * 3600 + (8 * 24 - 20) * 3600) / 2
    assert this.noisiest[0] == stats.Noisy("slow", "Disk usage above 90% on db-1", 4)
    assert [n.fingerprint for n in before.noisiest] == ["old"]
    assert review.stale_count == 0
    later = stats.weekly_numbers(db, weeks=1, stale_days=1, now=NOW + dt.timedelta(days=1))
    assert [ticket.fingerprint for ticket in later.stale] == ["slow"]
    assert later.stale_count == 1


def test_spread_of_nothing_is_empty() -> None:
    assert stats.Spread.of([]) == stats.Spread(0, None, None)
    assert stats.Spread.of([1.0, 2.0, 3.0, 4.0, 100.0]).p90_s == 100.0
