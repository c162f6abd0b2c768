"""Backup targets, the backups taken of them and the restore drills that prove them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class TargetKind(enum.StrEnum):
    """What a target is: a SQLite file or a PostgreSQL database."""

    sqlite = "sqlite"
    postgresql = "postgresql"


class Method(enum.StrEnum):
    """How a backup was taken.

    snapshot: SQLite's online backup API into one file, zstd-compressed.
    litestream: a restore from Litestream's continuous replica (point in time).
    pg_dump: `pg_dump -Fc` of one PostgreSQL database.
    """

    snapshot = "snapshot"
    litestream = "litestream"
    pg_dump = "pg_dump"


class BackupState(enum.StrEnum):
    """running: being taken. succeeded: stored with its checksum. failed: `error` says why."""

    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Verification(enum.StrEnum):
    """unverified: no drill restored it yet. verified: a drill restored and checked it.
    failed: a drill could not restore it or a check failed (see the drill)."""

    unverified = "unverified"
    verified = "verified"
    failed = "failed"


class BackupTarget(Base):
    """A database the desk backs up, where the backups go and how fresh they must be."""

    __tablename__ = "backup_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # `sqlite:///PATH` or a PostgreSQL URL; never shown with its password.
    source_url: Mapped[str] = mapped_column(Text)
    # A local folder or an fsspec URL (`s3://bucket/prefix`).
    destination: Mapped[str] = mapped_column(Text)
    every_minutes: Mapped[int] = mapped_column(default=24 * 60)
    drill_every_minutes: Mapped[int] = mapped_column(default=24 * 60)
    max_age_minutes: Mapped[int] = mapped_column(default=26 * 60)
    keep_hourly: Mapped[int] = mapped_column(default=24)
    keep_daily: Mapped[int] = mapped_column(default=7)
    keep_weekly: Mapped[int] = mapped_column(default=4)
    # Whether `dutydesk backupd` (and `up`) replicate it continuously with Litestream.
    continuous: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Backup(Base):
    """One backup: where it lies, its checksum, and what the source held when it was taken."""

    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_target_id_started_at", "target_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("backup_targets.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=BackupState.running.value)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    schema_revision: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(Text)
    # Rows per table, and a checksum of sampled rows per table, as the backup holds them.
    table_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    row_checksums: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    verification: Mapped[str] = mapped_column(String(16), default=Verification.unverified.value)
    verified_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class DrillState(enum.StrEnum):
    """passed: restored and every check held. failed: `error` says what did not."""

    passed = "passed"
    failed = "failed"


class RestoreDrill(Base):
    """One restore into scratch space with its checks, recovery point and recovery time."""

    __tablename__ = "backup_drills"
    __table_args__ = (Index("ix_backup_drills_target_id_started_at", "target_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("backup_targets.id", ondelete="CASCADE"))
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("backups.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    # The point restored to when it was a point in time (else None: the newest backup).
    restored_to: Mapped[dt.datetime | None]
    # Age of the newest restorable change at the drill, and how long the restore took.
    rpo_seconds: Mapped[float | None]
    rto_seconds: Mapped[float | None]
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
