"""The review page's charts, as data for the desk's chart script (`static/charts.js`): each moved
series as its dashboard chart (points, baseline band, fired points) over the periods before the
reviewed one and the period itself, shaded; tickets opened and closed per week; export records
per day."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.metrics import dashboards
from dutydesk.metrics.models import MetricPoint
from dutydesk.review import service
from dutydesk.tickets.models import Ticket

# Moved series the page charts at most (the trends section lists up to service.TOP).
TREND_CHARTS = service.TOP


def window_start(period: service.Period) -> dt.datetime:
    """Where the charts start: TREND_PERIODS_BEFORE periods before the reviewed one (as the
    e-mail's charts)."""
    return period.start - (period.end - period.start) * service.TREND_PERIODS_BEFORE


def _epoch(at: dt.datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp())


def _day(at: dt.datetime) -> dt.datetime:
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _monday(at: dt.datetime) -> dt.datetime:
    day = _day(at)
    return day - dt.timedelta(days=day.weekday())


def trend_charts(session: Session, period: service.Period, keys: list[str]) -> list[dict[str, Any]]:
    """The dashboard chart of each of `keys` (at most TREND_CHARTS) from `window_start` to the
    period's end, with `period` (epoch seconds) to shade."""
    since = window_start(period)
    shaded = [_epoch(period.start), _epoch(period.end)]
    return [
        {**dashboards.chart(session, key, since=since, until=period.end), "period": shaded}
        for key in keys[:TREND_CHARTS]
    ]


def ticket_weeks(session: Session, period: service.Period) -> dict[str, Any]:
    """Tickets opened and closed per week (weeks starting Monday, UTC) over the charts' window."""
    first = _monday(window_start(period))
    weeks: list[dt.datetime] = []
    week = first
    while week < period.end:
        weeks.append(week)
        week += dt.timedelta(days=7)
    opened: Counter[dt.datetime] = Counter(
        _monday(at)
        for at in session.scalars(
            select(Ticket.first_seen_at).where(
                Ticket.first_seen_at >= first, Ticket.first_seen_at < period.end
            )
        )
    )
    closed: Counter[dt.datetime] = Counter(
        _monday(at)
        for at in session.scalars(
            select(Ticket.closed_at).where(Ticket.closed_at >= first, Ticket.closed_at < period.end)
        )
        if at is not None
    )
    return {
        "times": [_epoch(week) for week in weeks],
        "series": [
            {"label": "opened", "values": [opened[week] for week in weeks]},
            {"label": "closed", "values": [closed[week] for week in weeks]},
        ],
    }


def records_per_day(session: Session, period: service.Period) -> dict[str, Any]:
    """Export records (every study's `export.numTotal`) per UTC day over the charts' window."""
    since = _day(window_start(period))
    days: dict[dt.datetime, float] = {}
    for at, value in session.execute(
        select(MetricPoint.at, MetricPoint.value).where(
            MetricPoint.name == "export.numTotal",
            MetricPoint.at >= since,
            MetricPoint.at < period.end,
        )
    ):
        day = _day(at)
        days[day] = days.get(day, 0.0) + value
    shown = sorted(days)
    return {
        "times": [_epoch(day) for day in shown],
        "series": [{"label": "records", "values": [days[day] for day in shown]}],
    }


def page_charts(
    session: Session, period: service.Period, sections: list[service.Section]
) -> dict[str, Any]:
    """Every chart of the review page, by the section it belongs to."""
    from dutydesk.review.mail import moved_series

    return {
        "trends": trend_charts(session, period, moved_series(sections)),
        "tickets": ticket_weeks(session, period),
        "export": records_per_day(session, period),
    }
