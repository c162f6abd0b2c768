"""The jobs table: the truth about every piece of background work."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class JobState(enum.StrEnum):
    """Where a job is.

    queued: waiting for a worker (a broker message has been or will be sent).
    running: a worker claimed it and heartbeats while it works.
    succeeded: finished; `result` holds what it returned.
    failed: raised on its last allowed attempt; `error` says why. Earlier failures go back
    to queued with a delay.
    """

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Job(Base):
    """One piece of background work and its state."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_after", "state", "run_after"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(100), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=JobState.queued.value)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    run_after: Mapped[dt.datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Any | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class DueMark(Base):
    """When a periodic piece of due work last ran, so beat's tick knows when it is due again."""

    __tablename__ = "due_marks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_at: Mapped[dt.datetime]
