"""API shapes for jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobOut(BaseModel):
    """A job and its state."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    args: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    run_after: dt.datetime
    heartbeat_at: dt.datetime | None
    worker: str | None
    error: str | None
    result: Any | None
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobIn(BaseModel):
    """A request to run a job."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=100)
    args: dict[str, Any] = Field(default_factory=dict)
