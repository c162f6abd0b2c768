"""Writing and reading metric points, rolling them up by hour and day, and keeping them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.metrics.models import MetricPoint, MetricRollup, MetricSeries, Period
from dutydesk.settings import get_settings

PERIODS = {Period.hour: dt.timedelta(hours=1), Period.day: dt.timedelta(days=1)}


@dataclass(frozen=True)
class Point:
    """One value of the series `name` with `labels` (in the order the key lists them)."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def series(self) -> str:
        """The series' one-string key: `name` alone, or `name[value1,value2]`."""
        return series_key(self.name, self.labels)


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """`name`, or `name[v1,v2,...]` with the label values in their order."""
    return f"{name}[{','.join(labels.values())}]" if labels else name


def parse_series(series: str) -> tuple[str, dict[str, str]]:
    """The name and labels of a key written without them: `a[b]` is `a` labelled key=b; any
    other key (`a[b].c`) is a name alone."""
    name, _, rest = series.partition("[")
    if not rest or not rest.endswith("]") or "]" in rest[:-1]:
        return series, {}
    return name, {"key": rest.removesuffix("]")}


def record(session: Session, source: str, at: dt.datetime, points: Iterable[Point]) -> int:
    """Write `points` for `source` at `at`, replacing what `source` wrote there before for the
    same series (a re-run of the same work leaves one point, not two). Returns how many."""
    by_series = {point.series: point for point in points}
    if not by_series:
        return 0
    session.execute(
        delete(MetricPoint).where(
            MetricPoint.source == source,
            MetricPoint.at == at,
            MetricPoint.series.in_(list(by_series)),
        )
    )
    ensure_series(session, by_series)
    session.add_all(
        MetricPoint(
            series=key,
            name=point.name,
            labels=dict(point.labels),
            at=at,
            value=float(point.value),
            source=source,
        )
        for key, point in by_series.items()
    )
    return len(by_series)


def ensure_series(session: Session, points: Mapping[str, Point]) -> None:
    """Add the series of `points` (by key) that the series table does not hold yet."""
    known = set(session.scalars(select(MetricSeries.key).where(MetricSeries.key.in_(list(points)))))
    missing = [
        MetricSeries(key=key, name=point.name, labels=dict(point.labels))
        for key, point in points.items()
        if key not in known
    ]
    if not missing:
        return
    # Another process may add one of the same new series at the same time; its row is as good
    # as ours, so on a clash each is added alone and a clashing one is left to the other.
    try:
        with session.begin_nested():
            session.add_all(missing)
    except IntegrityError:
        for row in missing:
            try:
                with session.begin_nested():
                    session.add(MetricSeries(key=row.key, name=row.name, labels=row.labels))
            except IntegrityError:
                continue


def record_points(
    session: Session, source: str, at: dt.datetime, values: Mapping[str, float]
) -> None:
    """Write one point per series key for `source` at `at` (see `record`); a key `a[b]` is the
    name `a` with the label key=b."""
    points = []
    for key, value in values.items():
        name, labels = parse_series(key)
        points.append(Point(name, float(value), labels))
    # Keys are kept as given: `Point.series` would rebuild `a[b]` the same way.
    record(session, source, at, points)


def series(
    session: Session, name: str, *, since: dt.datetime | None = None
) -> list[tuple[dt.datetime, float]]:
    """The points of one series (by key), oldest first."""
    query = select(MetricPoint.at, MetricPoint.value).where(MetricPoint.series == name)
    if since is not None:
        query = query.where(MetricPoint.at >= since)
    return [(at, value) for at, value in session.execute(query.order_by(MetricPoint.at))]


def series_names(session: Session, name: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """Every series key with its labels, optionally of one name, sorted by key."""
    query = select(MetricSeries.key, MetricSeries.labels).order_by(MetricSeries.key)
    if name is not None:
        query = query.where(MetricSeries.name == name)
    return [(key, dict(labels or {})) for key, labels in session.execute(query)]


def series_keys(session: Session) -> list[str]:
    """Every series key, sorted."""
    return list(session.scalars(select(MetricSeries.key).order_by(MetricSeries.key)))


def bucket_start(at: dt.datetime, period: Period) -> dt.datetime:
    """The start (UTC) of the hour or day `at` falls in."""
    at = at.astimezone(dt.UTC)
    if period is Period.hour:
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def roll_up(session: Session, period: Period, since: dt.datetime, until: dt.datetime) -> int:
    """Write the roll-ups of every whole `period` between `since` and `until` from the raw
    points, replacing the ones there (running it twice gives the same rows). Returns how many."""
    start = bucket_start(since, period)
    end = bucket_start(until, period)
    if end <= start:
        return 0
    session.execute(
        delete(MetricRollup).where(
            MetricRollup.period == period.value, MetricRollup.at >= start, MetricRollup.at < end
        )
    )
    rows: dict[tuple[str, dt.datetime], MetricRollup] = {}
    points = session.execute(
        select(
            MetricPoint.series,
            MetricPoint.name,
            MetricPoint.labels,
            MetricPoint.at,
            MetricPoint.value,
        )
        .where(MetricPoint.at >= start, MetricPoint.at < end)
        .order_by(MetricPoint.at, MetricPoint.id)
    )
    for key, name, labels, at, value in points:
        bucket = bucket_start(at, period)
        row = rows.get((key, bucket))
        if row is None:
            rows[(key, bucket)] = MetricRollup(
                series=key,
                name=name or parse_series(key)[0],
                labels=dict(labels or {}),
                period=period.value,
                at=bucket,
                count=1,
                total=value,
                low=value,
                high=value,
                last=value,
            )
        else:
            row.count += 1
            row.total += value
            row.low = min(row.low, value)
            row.high = max(row.high, value)
            row.last = value
    session.add_all(rows.values())
    return len(rows)


def rollups(
    session: Session, key: str, period: Period, *, since: dt.datetime | None = None
) -> list[MetricRollup]:
    """The roll-ups of one series (by key) for `period`, oldest first."""
    query = select(MetricRollup).where(
        MetricRollup.series == key, MetricRollup.period == period.value
    )
    if since is not None:
        query = query.where(MetricRollup.at >= since)
    return list(session.scalars(query.order_by(MetricRollup.at)))


def prune(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete raw points and roll-ups older than their retention (DUTYDESK_METRICS_*_DAYS)."""
    now = now or utcnow()
    settings = get_settings()
    raw = session.execute(
        delete(MetricPoint).where(
            MetricPoint.at < now - dt.timedelta(days=settings.metrics_raw_days)
        )
    )
    counts = {"points": int(getattr(raw, "rowcount", 0))}
    for period, days in (
        (Period.hour, settings.metrics_hourly_days),
        (Period.day, settings.metrics_daily_days),
    ):
        gone = session.execute(
            delete(MetricRollup).where(
                MetricRollup.period == period.value,
                MetricRollup.at < now - dt.timedelta(days=days),
            )
        )
        counts[period.value] = int(getattr(gone, "rowcount", 0))
    # A series with neither points nor roll-ups left is no longer listed.
    session.execute(
        delete(MetricSeries).where(
            ~select(MetricPoint.id).where(MetricPoint.series == MetricSeries.key).exists(),
            ~select(MetricRollup.id).where(MetricRollup.series == MetricSeries.key).exists(),
        )
    )
    return counts
