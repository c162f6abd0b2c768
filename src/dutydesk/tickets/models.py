"""Tables for tickets, their notes, outside links and timeline events.

The search index (`ticket_search`) is not a model: it is an FTS5 table on SQLite and a
tsvector table on PostgreSQL, created by migration 0003 and kept in step by triggers.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow

KEY_PREFIX = "DD-"


class Severity(enum.StrEnum):
    """How bad an alarm is, most urgent first."""

    critical = "critical"
    high = "high"
    warning = "warning"
    info = "info"

    @property
    def rank(self) -> int:
        """0 for critical up to 3 for info."""
        return list(Severity).index(self)


class Status(enum.StrEnum):
    """Where a ticket is.

    open: something needs a person and nobody has said they are on it.
    acknowledged: someone has seen it and is working on it (new occurrences still count here).
    closed: done; a resolution says why. The same fingerprint afterwards opens a new ticket
    that links back to this one as "seen before".
    """

    open = "open"
    acknowledged = "acknowledged"
    closed = "closed"


OPEN_STATUSES = (Status.open.value, Status.acknowledged.value)


class EventKind(enum.StrEnum):
    """What a timeline entry records."""

    opened = "opened"
    occurrence = "occurrence"
    resolved_signal = "resolved_signal"
    acknowledged = "acknowledged"
    assigned = "assigned"
    note = "note"
    link = "link"
    closed = "closed"
    reopened = "reopened"
    notified = "notified"


class Ticket(Base):
    """Something that needs a person: opened by an alarm (or by hand) and worked until closed."""

    __tablename__ = "tickets"
    __table_args__ = (
        # One open ticket per fingerprint: the database refuses a second one, whoever races.
        Index(
            "uq_tickets_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
        Index("ix_tickets_status_assignee", "status", "assignee_id"),
        Index("ix_tickets_first_seen_at", "first_seen_at"),
        Index("ix_tickets_closed_at", "closed_at"),
        Index("ix_tickets_source", "source"),
        # The last closed ticket of a fingerprint ("seen before"), found without a scan of
        # every closed ticket.
        Index("ix_tickets_fingerprint_id", "fingerprint", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16), default=Severity.warning.value)
    status: Mapped[str] = mapped_column(String(16), default=Status.open.value)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(100), default="manual")
    fingerprint: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    occurrences: Mapped[int] = mapped_column(default=1)
    seen_before_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL")
    )
    resolution: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    assignee = relationship("User", lazy="joined")
    seen_before: Mapped[Ticket | None] = relationship(remote_side=[id], lazy="select")
    notes: Mapped[list[TicketNote]] = relationship(
        back_populates="ticket", order_by="TicketNote.id", cascade="all, delete-orphan"
    )
    links: Mapped[list[TicketLink]] = relationship(
        back_populates="ticket", order_by="TicketLink.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", cascade="all, delete-orphan"
    )

    @property
    def key(self) -> str:
        """The ticket's name people use: `DD-<n>`."""
        return f"{KEY_PREFIX}{self.id}"

    @property
    def is_open(self) -> bool:
        """Whether the ticket still needs someone (open or acknowledged)."""
        return self.status != Status.closed.value

    @property
    def assignee_name(self) -> str | None:
        """The assignee's username, if anyone is assigned."""
        return self.assignee.username if self.assignee is not None else None


class TicketNote(Base):
    """A note on a ticket, in Markdown (rendered with raw HTML escaped)."""

    __tablename__ = "ticket_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="notes")


class TicketLink(Base):
    """A link to an outside tracker's issue (URL plus its key there, such as `PROJ-123`)."""

    __tablename__ = "ticket_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    key: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="links")


class TicketEvent(Base):
    """One entry of a ticket's timeline: occurrences, state changes, notes, links, notices."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_ticket_id_at", "ticket_id", "at"),
        Index("ix_ticket_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")
