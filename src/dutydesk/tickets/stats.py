"""Numbers for the weekly review: per week opened, closed, time to acknowledge and to close,
the noisiest fingerprints; and the tickets open past the configured age."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.tickets.models import OPEN_STATUSES, EventKind, Ticket, TicketEvent

NOISIEST = 5
STALE_LIST = 50


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile of some durations, in seconds (None when there were none)."""

    count: int
    median_s: float | None
    p90_s: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> Spread:
        """The spread of `seconds` (nearest-rank p90)."""
        if not seconds:
            return cls(0, None, None)
        ordered = sorted(seconds)
        p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
        return cls(len(ordered), float(statistics.median(ordered)), float(p90))


@dataclass(frozen=True)
class Noisy:
    """A fingerprint and how many alarms it sent in the week."""

    fingerprint: str
    title: str
    alarms: int


@dataclass(frozen=True)
class Week:
    """One week's numbers (weeks start on Monday, UTC)."""

    start: dt.date
    opened: int
    closed: int
    time_to_acknowledge: Spread
    time_to_close: Spread
    noisiest: list[Noisy] = field(default_factory=list)


@dataclass(frozen=True)
class Review:
    """The weekly numbers, newest week first, and what has been open too long."""

    weeks: list[Week]
    stale_days: int
    stale: list[Ticket]
    stale_count: int


def week_start(day: dt.date) -> dt.date:
    """The Monday of `day`'s week."""
    return day - dt.timedelta(days=day.weekday())


def _noisiest(session: Session, start: dt.datetime, end: dt.datetime) -> list[Noisy]:
    alarms = func.count(TicketEvent.id)
    rows = session.execute(
        select(Ticket.fingerprint, func.max(Ticket.title), alarms)
        .join(TicketEvent, TicketEvent.ticket_id == Ticket.id)
        .where(
            Ticket.fingerprint.is_not(None),
            TicketEvent.kind.in_((EventKind.opened.value, EventKind.occurrence.value)),
            TicketEvent.at >= start,
            TicketEvent.at < end,
        )
        .group_by(Ticket.fingerprint)
        .order_by(alarms.desc(), Ticket.fingerprint)
        .limit(NOISIEST)
    )
    return [Noisy(str(fingerprint), str(title), int(count)) for fingerprint, title, count in rows]


def weekly_numbers(
    session: Session, *, weeks: int, stale_days: int, now: dt.datetime | None = None
) -> Review:
    """The last `weeks` weeks (this one included) and the tickets open over `stale_days`."""
    now = now or utcnow()
    first = week_start(now.date()) - dt.timedelta(weeks=weeks - 1)
    since = dt.datetime.combine(first, dt.time(), dt.UTC)
    opened_rows = session.execute(
        select(Ticket.first_seen_at, Ticket.acknowledged_at).where(Ticket.first_seen_at >= since)
    ).all()
    closed_rows = session.execute(
        select(Ticket.first_seen_at, Ticket.closed_at).where(Ticket.closed_at >= since)
    ).all()
    result = []
    for number in range(weeks):
        start_day = first + dt.timedelta(weeks=number)
        start = dt.datetime.combine(start_day, dt.time(), dt.UTC)
        end = start + dt.timedelta(weeks=1)
        opened = [row for row in opened_rows if start <= row[0] < end]
        closed = [row for row in closed_rows if row[1] is not None and start <= row[1] < end]
        acknowledged = [(ack - seen).total_seconds() for seen, ack in opened if ack is not None]
        closing = [(done - seen).total_seconds() for seen, done in closed if done is not None]
        result.append(
            Week(
                start=start_day,
                opened=len(opened),
                closed=len(closed),
                time_to_acknowledge=Spread.of(acknowledged),
                time_to_close=Spread.of(closing),
                noisiest=_noisiest(session, start, end),
            )
        )
    cutoff = now - dt.timedelta(days=stale_days)
    stale_filter = (Ticket.status.in_(OPEN_STATUSES), Ticket.first_seen_at < cutoff)
    stale = list(
        session.scalars(
            select(Ticket).where(*stale_filter).order_by(Ticket.first_seen_at).limit(STALE_LIST)
        )
    )
    stale_count = int(session.scalar(select(func.count()).where(*stale_filter)) or 0)
    return Review(
        weeks=list(reversed(result)), stale_days=stale_days, stale=stale, stale_count=stale_count
    )
