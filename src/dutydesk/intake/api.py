"""Intake API: integrations (CRUD, rotate) and the inbox (list, search, one item)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from dutydesk.intake import service
from dutydesk.intake.models import Integration
from dutydesk.intake.schemas import (
    InboxItemOut,
    InboxSummary,
    IntegrationIn,
    IntegrationOut,
    IntegrationPatch,
    NewIntegrationOut,
)
from dutydesk.tickets._web import caller_name, parse_day
from dutydesk.tickets.service import TicketInputError
from dutydesk.web.access import Admin, Db, Viewer
from dutydesk.web.params import Offset, RowId

router = APIRouter()
Text = Annotated[str | None, Query(max_length=200)]


def _error(error: Exception) -> HTTPException:
    if isinstance(error, service.IntegrationNotFound):
        return HTTPException(404, str(error))
    return HTTPException(422, str(error))


def _get(db: Db, ident: str) -> Integration:
    try:
        return service.get_integration(db, ident)
    except service.IntakeError as error:
        raise _error(error) from None


def _new(made: service.NewToken) -> NewIntegrationOut:
    return NewIntegrationOut(
        **IntegrationOut.of(made.integration).model_dump(),
        token=made.token,
        path=made.path,
        signing_secret=made.integration.signing_secret,
    )


@router.get("/api/v1/integrations")
def list_integrations(_who: Viewer, db: Db) -> list[IntegrationOut]:
    """Every integration, without secrets."""
    return [IntegrationOut.of(item) for item in service.list_integrations(db)]


@router.post("/api/v1/integrations", status_code=201)
def create_integration(who: Admin, db: Db, body: IntegrationIn) -> NewIntegrationOut:
    """Make an integration; the answer holds its token, shown only this once."""
    try:
        made = service.create_integration(db, actor=caller_name(who), **body.model_dump())
    except (service.IntakeError, TicketInputError) as error:
        raise _error(error) from None
    return _new(made)


@router.get("/api/v1/integrations/{ident}")
def get_integration(_who: Viewer, db: Db, ident: str) -> IntegrationOut:
    """One integration by id or name."""
    return IntegrationOut.of(_get(db, ident))


@router.patch("/api/v1/integrations/{ident}")
def update_integration(_who: Admin, db: Db, ident: str, body: IntegrationPatch) -> IntegrationOut:
    """Change grouping, resolve rule, severity, limits or the enabled flag."""
    integration = _get(db, ident)
    try:
        service.update_integration(db, integration, body.model_dump(exclude_none=True))
    except (service.IntakeError, TicketInputError) as error:
        raise _error(error) from None
    return IntegrationOut.of(integration)


@router.post("/api/v1/integrations/{ident}/rotate")
def rotate_token(_who: Admin, db: Db, ident: str) -> NewIntegrationOut:
    """Give the integration a new token (the old one stops working); shown only this once."""
    return _new(service.rotate_token(db, _get(db, ident)))


@router.delete("/api/v1/integrations/{ident}")
def delete_integration(_who: Admin, db: Db, ident: str) -> IntegrationOut:
    """Remove an integration (its inbox items and alarms stay)."""
    integration = _get(db, ident)
    shown = IntegrationOut.of(integration)
    service.delete_integration(db, integration)
    return shown


@router.get("/api/v1/inbox")
def list_inbox(
    _who: Viewer,
    db: Db,
    since: Text = None,
    until: Text = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    source: Text = None,
    outcome: Text = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[InboxSummary]:
    """Inbox items, newest first, by date range (days, inclusive), text, source and outcome."""
    filters = inbox_filters(since, until, q, source, outcome)
    items = service.list_inbox(db, filters, limit=limit, offset=offset)
    return [InboxSummary.model_validate(item) for item in items]


@router.get("/api/v1/inbox/{item_id}")
def get_inbox_item(_who: Viewer, db: Db, item_id: RowId) -> InboxItemOut:
    """One inbox item with its headers and raw body."""
    try:
        return InboxItemOut.of(service.get_inbox_item(db, item_id))
    except service.IntakeError as error:
        raise HTTPException(404, str(error)) from None


def inbox_filters(
    since: str | None,
    until: str | None,
    q: str | None,
    source: str | None,
    outcome: str | None,
) -> service.InboxFilters:
    """Checked inbox filters from query values (`until` is a day, included)."""
    import datetime as dt

    end = parse_day(until, "until")
    return service.InboxFilters(
        since=parse_day(since, "since"),
        until=end + dt.timedelta(days=1) if end else None,
        text=q or None,
        source=source or None,
        outcome=outcome or None,
    )
