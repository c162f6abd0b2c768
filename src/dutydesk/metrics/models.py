"""Metric points: one value of one series at one time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base


class MetricPoint(Base):
    """A value of a named series (e.g. `uniqueHealthCodes[study-a]`) at a time, from a source."""

    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_series_at", "series", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(300))
    at: Mapped[dt.datetime]
    value: Mapped[float]
    source: Mapped[str] = mapped_column(String(100))
