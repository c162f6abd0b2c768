"""Tables of the change-request engine: requests, their signoffs, comments, timeline, and
the signoff rules admins set per kind."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow
from dutydesk.people.models import User


class ChangeState(enum.StrEnum):
    """Where a change request is.

    draft: being prepared by its author; nobody is asked to sign yet.
    pending: submitted; waiting for the signoffs its kind's rules ask for.
    approved: every rule is met by signoffs on the current data_version; nothing runs yet.
    running: the run job has claimed it and is executing it.
    done: the run finished; `result` holds what it produced.
    failed: the run raised; `error` says why.
    rejected: a signer said no; it stays as a record.
    cancelled: withdrawn before it ran.
    """

    draft = "draft"
    pending = "pending"
    approved = "approved"
    running = "running"
    done = "done"
    failed = "failed"
    rejected = "rejected"
    cancelled = "cancelled"


ENDED_STATES = frozenset(
    {ChangeState.done, ChangeState.failed, ChangeState.rejected, ChangeState.cancelled}
)


class ChangeRequest(Base):
    """One approval-gated action: what to do (payload), what the signers look at (evidence)."""

    __tablename__ = "change_requests"
    __audited__ = True
    __audit_quiet__ = ("updated_at",)
    __table_args__ = (
        Index("ix_change_requests_state_kind", "state", "kind"),
        Index("ix_change_requests_author_id", "author_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    data_version: Mapped[int] = mapped_column(default=1)
    state: Mapped[str] = mapped_column(String(16), default=ChangeState.draft.value)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # Who made the current data_version when it was not the author: they may not sign it.
    revised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    tracker_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))

    author: Mapped[User] = relationship(foreign_keys=[author_id], lazy="joined")
    signoffs: Mapped[list[ChangeSignoff]] = relationship(
        back_populates="change", order_by="ChangeSignoff.id", cascade="all, delete-orphan"
    )

    @property
    def active_signoffs(self) -> list[ChangeSignoff]:
        """The signoffs that still count: on the current data_version, not dropped."""
        return [
            s for s in self.signoffs if s.dropped_at is None and s.data_version == self.data_version
        ]


class ChangeSignoff(Base):
    """One person's approval of one data_version and evidence hash of a request."""

    __tablename__ = "change_signoffs"
    __audited__ = True
    __table_args__ = (UniqueConstraint("change_id", "user_id", "data_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(
        ForeignKey("change_requests.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    data_version: Mapped[int]
    evidence_hash: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set when a revision made this signoff stale (Balrog's rule: an edit drops every signoff).
    dropped_at: Mapped[dt.datetime | None]

    change: Mapped[ChangeRequest] = relationship(back_populates="signoffs")
    user: Mapped[User] = relationship(lazy="joined")


class ChangeComment(Base):
    """A comment on a request (also on its timeline)."""

    __tablename__ = "change_comments"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(
        ForeignKey("change_requests.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChangeEvent(Base):
    """One entry of a request's timeline: state changes, signoffs, revisions, comments."""

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_change_id_id", "change_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SignoffRule(Base):
    """Asks for `count` signoffs from people holding at least `role` on requests of `kind`.

    With no rows for a kind, the kind's own default rules apply.
    """

    __tablename__ = "signoff_rules"
    __audited__ = True
    __table_args__ = (UniqueConstraint("kind", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
