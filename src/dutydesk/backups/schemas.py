"""API shapes for backups."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TargetOut(BaseModel):
    """A backup target, its source URL without password, and whether it is fresh."""

    name: str
    kind: str
    source: str
    destination: str
    every_minutes: int
    drill_every_minutes: int
    max_age_minutes: int
    keep_hourly: int
    keep_daily: int
    keep_weekly: int
    continuous: bool
    enabled: bool
    fresh: bool
    next_backup_due: dt.datetime | None
    next_drill_due: dt.datetime | None


class TargetIn(BaseModel):
    """A database to back up."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    source_url: str = Field(min_length=1, max_length=2000)
    destination: str = Field(default="", max_length=2000)
    every_minutes: int = Field(default=24 * 60, ge=1, le=525_600)
    drill_every_minutes: int = Field(default=24 * 60, ge=1, le=525_600)
    max_age_minutes: int = Field(default=26 * 60, ge=1, le=525_600)
    keep_hourly: int = Field(default=24, ge=0, le=10_000)
    keep_daily: int = Field(default=7, ge=0, le=10_000)
    keep_weekly: int = Field(default=4, ge=0, le=10_000)
    continuous: bool = False


class BackupOut(BaseModel):
    """One backup and its verification."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    target_id: int
    method: str
    state: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    size_bytes: int | None
    sha256: str | None
    schema_revision: str | None
    location: str | None
    table_counts: dict[str, Any]
    verification: str
    verified_at: dt.datetime | None
    error: str | None


class DrillOut(BaseModel):
    """One restore drill: its checks, RPO and RTO."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    target_id: int
    backup_id: int | None
    state: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    restored_to: dt.datetime | None
    rpo_seconds: float | None
    rto_seconds: float | None
    checks: dict[str, Any]
    error: str | None


class QueuedOut(BaseModel):
    """A job queued to do what was asked; poll /api/v1/jobs/{job}."""

    job: int
    kind: str
    target: str
