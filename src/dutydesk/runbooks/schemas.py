"""API shapes for change requests and signoff rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.runbooks.models import ChangeEvent, ChangeRequest, ChangeSignoff


class SignoffIn(BaseModel):
    """An approval of what the signer saw. There is no user field: the signer is the caller."""

    model_config = ConfigDict(extra="forbid")

    data_version: int = Field(ge=1, le=2_000_000_000)
    evidence_hash: str = Field(pattern="^[0-9a-f]{64}$")
    comment: str = Field(default="", max_length=10_000)


class RejectIn(BaseModel):
    """Why the request is rejected."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=10_000)


class CancelIn(BaseModel):
    """Why the request is withdrawn (optional)."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=10_000)


class CommentIn(BaseModel):
    """A comment for the timeline."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)


class RuleIn(BaseModel):
    """`count` signoffs from `role` (or higher) on requests of `kind`."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=32)
    role: str = Field(min_length=1, max_length=16)
    count: int = Field(ge=1, le=10)


class RuleOut(BaseModel):
    """A rule in force; `default` when it is the kind's own, not set by an admin."""

    kind: str
    role: str
    count: int
    default: bool


class SignoffOut(BaseModel):
    """One signoff; `active` while it counts (on the current version, not dropped)."""

    model_config = ConfigDict(from_attributes=True)

    user: str
    role: str
    data_version: int
    evidence_hash: str
    comment: str
    at: dt.datetime
    dropped_at: dt.datetime | None
    active: bool

    @classmethod
    def of(cls, signoff: ChangeSignoff, change: ChangeRequest) -> SignoffOut:
        """The API form of a signoff."""
        return cls(
            user=signoff.user.username,
            role=signoff.role,
            data_version=signoff.data_version,
            evidence_hash=signoff.evidence_hash,
            comment=signoff.comment,
            at=signoff.at,
            dropped_at=signoff.dropped_at,
            active=signoff in change.active_signoffs,
        )


class EventOut(BaseModel):
    """One timeline entry."""

    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    actor: str
    kind: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: ChangeEvent) -> EventOut:
        """The API form of a timeline entry."""
        return cls(at=event.at, actor=event.actor, kind=event.kind, detail=event.detail)


class ChangeSummary(BaseModel):
    """A request in a list."""

    id: int
    kind: str
    title: str
    state: str
    data_version: int
    author: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, change: ChangeRequest) -> ChangeSummary:
        """The list form of a request."""
        return cls(
            id=change.id,
            kind=change.kind,
            title=change.title,
            state=change.state,
            data_version=change.data_version,
            author=change.author.username,
            created_at=change.created_at,
            updated_at=change.updated_at,
        )


class ChangeOut(ChangeSummary):
    """A request with its payload, evidence, rules, signoffs and timeline."""

    payload: dict[str, Any]
    evidence: dict[str, Any]
    evidence_hash: str
    tracker_url: str | None
    result: dict[str, Any] | None
    error: str | None
    job_id: int | None
    detail_path: str | None
    rules: list[RuleOut]
    rules_met: bool
    missing: list[str]
    signoffs: list[SignoffOut]
    timeline: list[EventOut]


class RunOut(BaseModel):
    """The job queued to run a request."""

    change_id: int
    job_id: int
