"""Writing and reading metric points."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dutydesk.metrics.models import MetricPoint


def record_points(
    session: Session, source: str, at: dt.datetime, values: Mapping[str, float]
) -> None:
    """Write one point per series for `source` at `at`, replacing points it wrote there before.

    Replacing makes a re-run of the same work (an export run re-done) leave one point, not two.
    """
    session.execute(
        delete(MetricPoint).where(
            MetricPoint.source == source,
            MetricPoint.at == at,
            MetricPoint.series.in_(list(values)),
        )
    )
    session.add_all(
        MetricPoint(series=series, at=at, value=float(value), source=source)
        for series, value in values.items()
    )


def series(
    session: Session, name: str, *, since: dt.datetime | None = None
) -> list[tuple[dt.datetime, float]]:
    """The points of one series, oldest first."""
    query = select(MetricPoint.at, MetricPoint.value).where(MetricPoint.series == name)
    if since is not None:
        query = query.where(MetricPoint.at >= since)
    return [(at, value) for at, value in session.execute(query.order_by(MetricPoint.at))]
