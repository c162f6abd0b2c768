"""Tickets API: list and search, one ticket, and the triage actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy.orm import Session

from dutydesk.settings import get_settings
from dutydesk.tickets import _search, service, stats
from dutydesk.tickets._web import (
    caller_name,
    http_error,
    make_filters,
    resolve_assignee,
    ticket_or_404,
)
from dutydesk.tickets.models import Ticket
from dutydesk.tickets.pages import router as pages_router
from dutydesk.tickets.schemas import (
    AssignIn,
    CloseIn,
    NoteIn,
    SearchHitOut,
    StatsOut,
    TicketIn,
    TicketOut,
    TicketSummary,
)
from dutydesk.web.access import Db, Operator, Viewer
from dutydesk.web.openapi import answers
from dutydesk.web.params import Offset

router = APIRouter()
router.include_router(pages_router)

Text = Annotated[str | None, Query(max_length=200)]


@router.get("/api/v1/tickets")
def list_tickets(
    who: Viewer,
    db: Db,
    status: Text = None,
    assignee: Text = None,
    severity: Text = None,
    source: Text = None,
    since: Text = None,
    until: Text = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[SearchHitOut] | list[TicketSummary]:
    """Tickets, newest first, filtered; with `q`, a search with matches marked in HTML."""
    filters = make_filters(
        who,
        status=status,
        severity=severity,
        assignee=assignee,
        source=source,
        since=since,
        until=until,
    )
    if q and q.strip():
        return [
            SearchHitOut(
                **TicketSummary.of(hit.ticket).model_dump(),
                title_html=str(hit.title),
                snippet_html=str(hit.snippet),
            )
            for hit in _search.search(db, q, filters, limit=limit, offset=offset)
        ]
    return [
        TicketSummary.of(ticket)
        for ticket in service.list_tickets(db, filters, limit=limit, offset=offset)
    ]


@router.get("/api/v1/tickets/stats")
def ticket_stats(_who: Viewer, db: Db, weeks: Annotated[int, Query(ge=1, le=104)] = 4) -> StatsOut:
    """The weekly review's numbers for the last `weeks` weeks."""
    review = stats.weekly_numbers(db, weeks=weeks, stale_days=get_settings().ticket_stale_days)
    return StatsOut.model_validate(
        {
            "weeks": review.weeks,
            "stale_days": review.stale_days,
            "stale_count": review.stale_count,
            "stale": [TicketSummary.of(ticket) for ticket in review.stale],
        },
        from_attributes=True,
    )


@router.post(
    "/api/v1/tickets",
    status_code=201,
    responses={
        **answers(409),
        200: {
            "model": TicketOut,
            "description": "An open ticket with that fingerprint took the occurrence.",
        },
    },
)
def create_ticket(who: Operator, db: Db, body: TicketIn, response: Response) -> TicketOut:
    """Open a ticket (201); with a fingerprint that is open already, add an occurrence to
    that ticket instead (200, `is_new` false)."""
    try:
        outcome = service.create_ticket(
            db,
            title=body.title,
            description=body.description,
            severity=body.severity,
            fingerprint=body.fingerprint,
            actor=caller_name(who),
        )
    except service.TicketError as error:
        raise http_error(error) from None
    assert outcome.ticket is not None
    if not outcome.is_new:
        response.status_code = 200
    db.flush()
    ticket = outcome.ticket
    return TicketOut.full(ticket, service.timeline(db, ticket), is_new=outcome.is_new)


@router.get("/api/v1/tickets/{key}")
def get_ticket(_who: Viewer, db: Db, key: str) -> TicketOut:
    """One ticket with its notes, links and timeline."""
    ticket = ticket_or_404(db, key)
    return TicketOut.full(ticket, service.timeline(db, ticket))


def _answer(db: Session, ticket: Ticket) -> TicketOut:
    db.flush()
    db.refresh(ticket)
    return TicketOut.full(ticket, service.timeline(db, ticket))


@router.post("/api/v1/tickets/{key}/notes", status_code=201, responses=answers(409))
def add_note(who: Operator, db: Db, key: str, body: NoteIn) -> TicketOut:
    """Add a Markdown note."""
    ticket = ticket_or_404(db, key)
    try:
        service.add_note(db, ticket, body.text, author=caller_name(who))
    except service.TicketError as error:
        raise http_error(error) from None
    return _answer(db, ticket)


@router.post("/api/v1/tickets/{key}/assign", responses=answers(409))
def assign(who: Operator, db: Db, key: str, body: AssignIn) -> TicketOut:
    """Give the ticket to a user (`me` for the caller, null for nobody)."""
    ticket = ticket_or_404(db, key)
    user = resolve_assignee(who, body.user)
    try:
        service.assign(db, ticket, user, actor=caller_name(who))
    except service.TicketError as error:
        raise http_error(error) from None
    return _answer(db, ticket)


@router.post("/api/v1/tickets/{key}/acknowledge", responses=answers(409))
def acknowledge(who: Operator, db: Db, key: str) -> TicketOut:
    """Say someone is on it."""
    ticket = ticket_or_404(db, key)
    try:
        service.acknowledge(db, ticket, actor=caller_name(who))
    except service.TicketError as error:
        raise http_error(error) from None
    return _answer(db, ticket)


@router.post("/api/v1/tickets/{key}/close", responses=answers(409))
def close(who: Operator, db: Db, key: str, body: CloseIn) -> TicketOut:
    """Close with a resolution, optionally linking an outside tracker issue."""
    ticket = ticket_or_404(db, key)
    link = body.link
    url, link_key = (
        (link, None) if isinstance(link, str) else ((link.url, link.key) if link else (None, None))
    )
    if url is not None and not url.strip():
        raise HTTPException(422, "link URL is empty")
    try:
        service.close_ticket(
            db,
            ticket,
            resolution=body.resolution,
            link_url=url,
            link_key=link_key,
            actor=caller_name(who),
        )
    except service.TicketError as error:
        raise http_error(error) from None
    return _answer(db, ticket)


@router.post("/api/v1/tickets/{key}/reopen", responses=answers(409))
def reopen(who: Operator, db: Db, key: str) -> TicketOut:
    """Open a closed ticket again."""
    ticket = ticket_or_404(db, key)
    try:
        service.reopen(db, ticket, actor=caller_name(who))
    except service.TicketError as error:
        raise http_error(error) from None
    return _answer(db, ticket)
