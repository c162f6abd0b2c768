"""Filters shared by the ticket lists and the search, as SQL conditions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select

from dutydesk.people.models import User
from dutydesk.tickets.models import OPEN_STATUSES, Ticket

UNASSIGNED = "none"


@dataclass(frozen=True)
class TicketFilters:
    """What a list or a search is narrowed to; every field left empty means "any".

    `status` is a status or `open_any` (open or acknowledged); `assignee` a username or
    `none` (nobody); `since`/`until` bound when the ticket was first seen (until exclusive).
    """

    status: str | None = None
    severity: str | None = None
    assignee: str | None = None
    source: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def as_query(self) -> dict[str, str]:
        """The filters as query-string values (empty ones left out), for links."""
        values: dict[str, Any] = {
            "status": self.status,
            "severity": self.severity,
            "assignee": self.assignee,
            "source": self.source,
            "since": self.since.date().isoformat() if self.since else None,
            "until": (self.until - dt.timedelta(days=1)).date().isoformat() if self.until else None,
        }
        return {name: str(value) for name, value in values.items() if value}


OPEN_ANY = "open_any"
ANY_STATUS = ("any", "all")  # what a person types for "every status"


def conditions(filters: TicketFilters) -> list[ColumnElement[bool]]:
    """The WHERE conditions for `filters` (ticket columns only, plus a user lookup)."""
    where: list[ColumnElement[bool]] = []
    if filters.status == OPEN_ANY:
        where.append(Ticket.status.in_(OPEN_STATUSES))
    elif filters.status:
        where.append(Ticket.status == filters.status)
    if filters.severity:
        where.append(Ticket.severity == filters.severity)
    if filters.assignee == UNASSIGNED:
        where.append(Ticket.assignee_id.is_(None))
    elif filters.assignee:
        user_id = select(User.id).where(User.username == filters.assignee).scalar_subquery()
        where.append(Ticket.assignee_id == user_id)
    if filters.source:
        where.append(Ticket.source == filters.source)
    if filters.since:
        where.append(Ticket.first_seen_at >= filters.since)
    if filters.until:
        where.append(Ticket.first_seen_at < filters.until)
    return where


def filtered(statement: Select[Any], filters: TicketFilters) -> Select[Any]:
    """`statement` narrowed by `filters`."""
    where = conditions(filters)
    return statement.where(and_(*where)) if where else statement
