"""Re-drive batches: the month's record IDs to export again, and what their export did."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class BatchState(enum.StrEnum):
    """Where a re-drive batch is.

    open: collecting IDs (at most one open batch per month). pending: submitted, waiting for
    its signoffs. approved: signed off, waiting to be run. running: its export is running.
    done: exported and verified (every ID present or excused with a reason). failed: the run
    failed, or verification found IDs missing without a reason (a ticket is opened).
    rejected, cancelled: the change request was turned down or withdrawn.
    """

    open = "open"
    pending = "pending"
    approved = "approved"
    running = "running"
    done = "done"
    failed = "failed"
    rejected = "rejected"
    cancelled = "cancelled"


# States in which the batch's IDs may still change (a change after submission revises the
# change request and drops its signoffs).
EDITABLE = (BatchState.open.value, BatchState.pending.value, BatchState.approved.value)


class ItemSource(enum.StrEnum):
    """How an ID came into the batch."""

    form = "form"  # pasted on the batch page
    file = "file"  # a text file uploaded on the batch page
    api = "api"
    cli = "cli"
    export = "export"  # a failed record or exhausted table of an export run


class RedriveBatch(Base):
    """One month's batch of record IDs to export again, approved as one change request."""

    __tablename__ = "redrive_batches"
    __audited__ = True
    __audit_quiet__ = ("verification", "updated_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM
    # The month while the batch is open, else NULL: its unique index allows one open batch a
    # month on SQLite and PostgreSQL alike.
    open_month: Mapped[str | None] = mapped_column(String(7), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=BatchState.open.value)
    change_id: Mapped[int | None] = mapped_column(index=True)  # change_requests.id
    export_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("export_runs.id", ondelete="SET NULL")
    )
    ticket_id: Mapped[int | None]  # the ticket opened when verification found IDs missing
    verification: Mapped[dict[str, Any] | None]
    verified_at: Mapped[dt.datetime | None]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RedriveItem(Base):
    """One record ID of a batch, with its study and why it is re-driven."""

    __tablename__ = "redrive_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "record_id"),
        Index("ix_redrive_items_batch_id_study_id", "batch_id", "study_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("redrive_batches.id", ondelete="CASCADE"))
    record_id: Mapped[str] = mapped_column(String(100))
    study_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    times_added: Mapped[int] = mapped_column(default=1)  # duplicates are merged into one item
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
