"""What the tickets API and pages share: errors as HTTP answers, the caller, filters."""

from __future__ import annotations

import datetime as dt

from fastapi import HTTPException
from sqlalchemy.orm import Session

from dutydesk.tickets import service
from dutydesk.tickets._query import ANY_STATUS, TicketFilters
from dutydesk.tickets.models import Ticket
from dutydesk.web.access import Principal


def http_error(error: service.TicketError) -> HTTPException:
    """The HTTP answer for a refused ticket request: 404, 409 or 422, naming the problem."""
    if isinstance(error, service.TicketNotFound):
        return HTTPException(404, str(error))
    if isinstance(error, service.TicketConflict):
        return HTTPException(409, str(error))
    return HTTPException(422, str(error))


def ticket_or_404(db: Session, key: str) -> Ticket:
    """The ticket named in the path, or a 404 naming the key."""
    try:
        return service.get_ticket(db, key)
    except service.TicketError as error:
        raise http_error(error) from None


def caller_name(who: Principal) -> str:
    """The username of a signed-in caller or a user's token, else the token's name."""
    return who.user.username if who.user else who.name


def resolve_assignee(who: Principal, value: str | None) -> str | None:
    """`me` is the caller; a token without a user has no "me"."""
    if value != "me":
        return value
    if who.user is None:
        raise HTTPException(422, "'me' needs a signed-in user or a user's token")
    return who.user.username


def parse_day(value: str | None, name: str) -> dt.datetime | None:
    """An ISO date (or date-time) as the start of that day in UTC."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value[:10])
    except ValueError:
        raise HTTPException(422, f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def make_filters(
    who: Principal,
    *,
    status: str | None,
    severity: str | None,
    assignee: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
) -> TicketFilters:
    """Checked filters from query values; empty values mean any."""
    if status in ANY_STATUS:
        status = None
    try:
        if status and status != "open_any":
            service.parse_status(status)
        if severity:
            severity = service.parse_severity(severity)
    except service.TicketError as error:
        raise http_error(error) from None
    end = parse_day(until, "until")
    return TicketFilters(
        status=status or None,
        severity=severity or None,
        assignee=resolve_assignee(who, assignee or None),
        source=source or None,
        since=parse_day(since, "since"),
        until=end + dt.timedelta(days=1) if end else None,
    )
