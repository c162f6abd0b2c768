"""The export's tables in the ops database: schedules, runs, per-study parts, tables, times."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class RunState(enum.StrEnum):
    """Where an export run is.

    queued: accepted, waiting for a worker. running: its studies are being exported.
    finishing: every study is done; status rows, export times and metrics are being written.
    succeeded: every study and table finished. partial: finished, but some tables or records
    failed (they may be re-driven). failed: the run could not be done at all.
    """

    queued = "queued"
    running = "running"
    finishing = "finishing"
    succeeded = "succeeded"
    partial = "partial"
    failed = "failed"


class ExportSchedule(Base):
    """A scheduler config (the Bridge-EX-Scheduler's DynamoDB row), fired by beat's tick."""

    __tablename__ = "export_schedules"
    __audited__ = True
    __audit_quiet__ = ("last_fired_for",)  # firing is bookkeeping, not a change of the schedule

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    schedule_type: Mapped[str] = mapped_column(String(16), default="DAILY")
    request_override: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    last_fired_for: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExportRun(Base):
    """One export request and what became of it."""

    __tablename__ = "export_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_text: Mapped[str] = mapped_column(Text)
    run_key: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), default=RunState.queued.value)
    export_date: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    studies: Mapped[list[str]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log: Mapped[str] = mapped_column(Text, default="")
    final_line: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("export_runs.id"))


class StudyPart(Base):
    """The part of a run that exports one study, or one slice of it (one job each; the run
    ends when all have). `slice_no` is 0 for a study exported whole. A study split in slices
    has its record-level work (counters, summary and default tables) in slice 0 and each of
    its schema tables in one slice: `slice_tables` lists a slice's [schema id, revision]
    pairs (slice 0 also writes any table no other slice lists), NULL for a whole study."""

    __tablename__ = "export_study_parts"
    __table_args__ = (UniqueConstraint("run_id", "study_id", "slice_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("export_runs.id", ondelete="CASCADE"))
    study_id: Mapped[str] = mapped_column(String(100))
    slice_no: Mapped[int] = mapped_column(default=0, server_default="0")
    slice_tables: Mapped[list[list[Any]] | None] = mapped_column(JSON)
    start_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=RunState.queued.value)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failed_tables: Mapped[list[str]] = mapped_column(JSON, default=list)
    failed_records: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None]


class WarehouseTable(Base):
    """The table registry (the exporter's meta tables): each table's key, kind and columns."""

    __tablename__ = "export_tables"
    __table_args__ = (Index("ix_export_tables_study", "study_id"),)

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    study_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    columns: Mapped[list[Any]] = mapped_column(JSON)
    row_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExportTime(Base):
    """When a study was last exported up to (the exporter's ExportTime table)."""

    __tablename__ = "export_times"

    study_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_export_ms: Mapped[int] = mapped_column(BigInteger)
