"""The audit log table, and how each change is told (change notices and daily digests)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class AuditEvent(Base):
    """One create, update or delete of a configuration object."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(16))
    object_type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChangeNotice(Base):
    """How one audited change is told: at once (high risk), in a daily digest (low risk), or
    not at all (no contact list set when it was recorded).

    `told` is `at_once`, `digest` or `none`; `digest_day` is the day whose digest carried it
    (empty while a low-risk change waits for its digest); `note` says why a change was not
    sent.
    """

    __tablename__ = "change_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One notice per change: two workers recording the same change make one row.
    audit_event_id: Mapped[int] = mapped_column(
        ForeignKey("audit_events.id", ondelete="CASCADE"), unique=True
    )
    risk: Mapped[str] = mapped_column(String(8), index=True)
    told: Mapped[str] = mapped_column(String(8))
    list_name: Mapped[str] = mapped_column(String(100), default="")
    digest_day: Mapped[dt.date | None] = mapped_column(index=True)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChangeDigest(Base):
    """The daily digest of low-risk changes: one row per day, so it is sent once."""

    __tablename__ = "change_digests"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    list_name: Mapped[str] = mapped_column(String(100), default="")
    changes: Mapped[int] = mapped_column(default=0)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
