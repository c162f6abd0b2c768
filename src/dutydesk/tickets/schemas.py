"""API shapes for tickets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.tickets.models import Ticket, TicketEvent, TicketLink, TicketNote


class TicketIn(BaseModel):
    """A ticket opened by hand; with a fingerprint it lands like an alarm would."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=300)
    description: str = Field(default="", max_length=100_000)
    severity: str = "warning"
    fingerprint: str | None = Field(default=None, max_length=200)


class NoteIn(BaseModel):
    """A note to add."""

    model_config = ConfigDict(extra="forbid")

    text: str


class AssignIn(BaseModel):
    """Who to give the ticket to (null: nobody)."""

    model_config = ConfigDict(extra="forbid")

    user: str | None


class LinkIn(BaseModel):
    """An outside tracker's issue: its URL and, optionally, its key there."""

    model_config = ConfigDict(extra="forbid")

    url: str
    key: str | None = None


class CloseIn(BaseModel):
    """How the ticket ended, and optionally the tracker issue that carries on the work."""

    model_config = ConfigDict(extra="forbid")

    resolution: str = Field(default="", max_length=20_000)
    link: LinkIn | str | None = None


class TicketSummary(BaseModel):
    """A ticket in a list."""

    key: str
    title: str
    status: str
    severity: str
    fingerprint: str | None
    occurrences: int
    assignee: str | None
    source: str
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime

    @classmethod
    def of(cls, ticket: Ticket) -> TicketSummary:
        """The list view of a ticket."""
        return cls(
            key=ticket.key,
            title=ticket.title,
            status=ticket.status,
            severity=ticket.severity,
            fingerprint=ticket.fingerprint,
            occurrences=ticket.occurrences,
            assignee=ticket.assignee_name,
            source=ticket.source,
            first_seen_at=ticket.first_seen_at,
            last_seen_at=ticket.last_seen_at,
        )


class SearchHitOut(TicketSummary):
    """A ticket found by a search, with the matches marked by <mark> in HTML snippets."""

    title_html: str
    snippet_html: str


class NoteOut(BaseModel):
    """A note."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    author: str
    body: str
    created_at: dt.datetime


class LinkOut(BaseModel):
    """An outside link."""

    model_config = ConfigDict(from_attributes=True)

    url: str
    key: str
    created_by: str
    created_at: dt.datetime


class EventOut(BaseModel):
    """A timeline entry."""

    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    actor: str
    kind: str
    detail: dict[str, Any]


class TicketOut(TicketSummary):
    """A ticket with everything known about it."""

    description: str
    payload: dict[str, Any] | None
    resolution: str | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    closed_at: dt.datetime | None
    closed_by: str | None
    seen_before: str | None
    created_at: dt.datetime
    is_new: bool | None = None
    notes: list[NoteOut]
    links: list[LinkOut]
    timeline: list[EventOut]

    @classmethod
    def full(
        cls, ticket: Ticket, events: list[TicketEvent], *, is_new: bool | None = None
    ) -> TicketOut:
        """The detail view of a ticket."""
        notes: list[TicketNote] = list(ticket.notes)
        links: list[TicketLink] = list(ticket.links)
        return cls(
            **TicketSummary.of(ticket).model_dump(),
            description=ticket.description,
            payload=ticket.payload,
            resolution=ticket.resolution,
            acknowledged_at=ticket.acknowledged_at,
            acknowledged_by=ticket.acknowledged_by,
            closed_at=ticket.closed_at,
            closed_by=ticket.closed_by,
            seen_before=f"DD-{ticket.seen_before_id}" if ticket.seen_before_id else None,
            created_at=ticket.created_at,
            is_new=is_new,
            notes=[NoteOut.model_validate(note) for note in notes],
            links=[LinkOut.model_validate(link) for link in links],
            timeline=[EventOut.model_validate(event) for event in events],
        )


class SpreadOut(BaseModel):
    """Median and p90 in seconds."""

    model_config = ConfigDict(from_attributes=True)

    count: int
    median_s: float | None
    p90_s: float | None


class NoisyOut(BaseModel):
    """A noisy fingerprint."""

    model_config = ConfigDict(from_attributes=True)

    fingerprint: str
    title: str
    alarms: int


class WeekOut(BaseModel):
    """One week's numbers."""

    model_config = ConfigDict(from_attributes=True)

    start: dt.date
    opened: int
    closed: int
    time_to_acknowledge: SpreadOut
    time_to_close: SpreadOut
    noisiest: list[NoisyOut]


class StatsOut(BaseModel):
    """The weekly review's ticket numbers."""

    weeks: list[WeekOut]
    stale_days: int
    stale_count: int
    stale: list[TicketSummary]
