"""Metric points (one value of one series at one time), their hourly and daily roll-ups, and
the heartbeats of the desk's own processes."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class MetricPoint(Base):
    """A value of a series at a time, from a source.

    A series is a name and labels (`export.lineCount` of `{"study": "study-a", "table": ...}`);
    `series` is their one-string key (`export.lineCount[study-a,study-a-default]`), which rules
    match by pattern and reads go by.
    """

    __tablename__ = "metric_points"
    # The value is in the index so that reading a series' range never visits the table: its
    # points are scattered across it, written hour by hour with every other series'.
    __table_args__ = (Index("ix_metric_points_series_at_value", "series", "at", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    at: Mapped[dt.datetime]
    value: Mapped[float]
    source: Mapped[str] = mapped_column(String(100))


class MetricSeries(Base):
    """One series the points are of: its key, name and labels, with an integer id.

    `record` adds a series the first time it writes a point of it, so listing the series (the
    dashboards' browser, a panel's pattern) reads this small table instead of the points.
    """

    __tablename__ = "metric_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Period(enum.StrEnum):
    """The span one roll-up row sums up.

    hour: the points of one clock hour (UTC), kept for DUTYDESK_METRICS_HOURLY_DAYS.
    day: the points of one UTC day, kept for DUTYDESK_METRICS_DAILY_DAYS.
    """

    hour = "hour"
    day = "day"


class MetricRollup(Base):
    """The count, sum, minimum, maximum and last value of one series over one hour or day."""

    __tablename__ = "metric_rollups"
    __table_args__ = (
        UniqueConstraint("series", "period", "at", name="uq_metric_rollups_series_period_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    period: Mapped[str] = mapped_column(String(8))
    at: Mapped[dt.datetime]
    count: Mapped[int]
    total: Mapped[float]
    low: Mapped[float]
    high: Mapped[float]
    last: Mapped[float]

    @property
    def mean(self) -> float:
        """The mean of the points rolled up."""
        return self.total / self.count if self.count else 0.0


class ProcessHeartbeat(Base):
    """The last sign of life of one desk process (web, worker, beat, smtp, backupd)."""

    __tablename__ = "process_heartbeats"
    __table_args__ = (UniqueConstraint("role", "host", "pid", name="uq_process_heartbeats"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Dashboard(Base):
    """A saved dashboard: a name, its panels (each a series pattern) and a time range."""

    __tablename__ = "dashboards"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # [{"title": "Rows", "series": "export.lineCount[*", "step": "day"}, ...]: a pattern each
    panels: Mapped[list[Any]] = mapped_column(default=list)
    range_days: Mapped[int] = mapped_column(default=30)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
