"""API shapes of database changes. Passwords go in, never out: a target shows whether it has
one, and its URL with the password replaced by `***`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.runbooks.dbchange import service
from dutydesk.runbooks.dbchange.models import DbChangeRun, DbChangeTarget
from dutydesk.runbooks.models import ChangeRequest

TIMEOUT_MS = Field(ge=1, le=service.MAX_TIMEOUT_MS)


class TargetIn(BaseModel):
    """A target to register. A user and password in `url` are the read-write login unless
    `write_user`/`write_password` are given."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=service.NAME.pattern)
    url: str = Field(min_length=1, max_length=1000)
    read_user: str = Field(default="", max_length=200)
    read_password: str = Field(default="", max_length=1000)
    write_user: str = Field(default="", max_length=200)
    write_password: str = Field(default="", max_length=1000)
    statement_timeout_ms: int = Field(default=30_000, ge=1, le=service.MAX_TIMEOUT_MS)
    lock_timeout_ms: int = Field(default=5_000, ge=1, le=service.MAX_TIMEOUT_MS)
    backup_target: str = Field(default="", max_length=100)
    replace: bool = Field(default=False, description="Change the target of this name.")


class TargetOut(BaseModel):
    """A target as pages and the API show it: no password, only whether one is set."""

    name: str
    url: str = Field(description="The URL with the read-write user; a password shows as ***.")
    backend: str
    read_user: str
    read_password_set: bool
    write_user: str
    write_password_set: bool
    statement_timeout_ms: int
    lock_timeout_ms: int
    backup_target: str
    last_tested_at: dt.datetime | None
    last_test: dict[str, Any] | None

    @classmethod
    def of(cls, target: DbChangeTarget) -> TargetOut:
        """The target's public view."""
        return cls(
            name=target.name,
            url=service.shown_url(target),
            backend=target.backend,
            read_user=target.read_user,
            read_password_set=bool(target.read_password),
            write_user=target.write_user,
            write_password_set=bool(target.write_password),
            statement_timeout_ms=target.statement_timeout_ms,
            lock_timeout_ms=target.lock_timeout_ms,
            backup_target=target.backup_target,
            last_tested_at=target.last_tested_at,
            last_test=target.last_test,
        )


class DbChangeIn(BaseModel):
    """A script for a target: its text, or the path of a task script in the tasks folder."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, max_length=100)
    script: str | None = Field(default=None, max_length=service.MAX_SCRIPT_BYTES)
    task: str | None = Field(
        default=None, max_length=500, description="tasks/<date>_<name>/<name>.sql"
    )
    title: str = Field(default="", max_length=300)
    tracker_url: str | None = Field(default=None, max_length=2000)


class ScriptIn(BaseModel):
    """New text of the script (drops every signoff and the dry run)."""

    model_config = ConfigDict(extra="forbid")

    script: str = Field(min_length=1, max_length=service.MAX_SCRIPT_BYTES)


class RunOut(BaseModel):
    """One dry run or apply with its per-statement figures."""

    id: int
    mode: str
    ok: bool
    actor: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    script_sha256: str
    figures: dict[str, Any]

    @classmethod
    def of(cls, run: DbChangeRun) -> RunOut:
        """The run's view."""
        return cls(
            id=run.id,
            mode=run.mode,
            ok=run.ok,
            actor=run.actor,
            started_at=run.started_at,
            finished_at=run.finished_at,
            script_sha256=run.script_sha256,
            figures=run.figures,
        )


class DbChangeOut(BaseModel):
    """A database change: its request's facts, the script, the latest dry run (the evidence a
    signoff names by `evidence_hash`) and the apply."""

    id: int
    title: str
    state: str
    author: str
    target: str
    script: str
    script_sha256: str
    source: str
    data_version: int
    evidence_hash: str
    dry_run: dict[str, Any] | None
    apply: RunOut | None
    error: str | None
    job_id: int | None
    page: str

    @classmethod
    def of(cls, change: ChangeRequest, apply: DbChangeRun | None) -> DbChangeOut:
        """The change's view."""
        payload = change.payload
        return cls(
            id=change.id,
            title=change.title,
            state=change.state,
            author=change.author.username,
            target=str(payload.get("target", "")),
            script=str(payload.get("script", "")),
            script_sha256=str(payload.get("script_sha256", "")),
            source=str(payload.get("source", "")),
            data_version=change.data_version,
            evidence_hash=change.evidence_hash,
            dry_run=(change.evidence or {}).get("dry_run"),
            apply=RunOut.of(apply) if apply is not None else None,
            error=change.error,
            job_id=change.job_id,
            page=f"/dbchanges/{change.id}",
        )


class QueuedOut(BaseModel):
    """A queued job of the change (its dry run or apply); follow it on the change."""

    change_id: int
    job_id: int
