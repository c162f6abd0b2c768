"""The audit page and API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.audit._notice_text import field_changes
from dutydesk.audit.notices_routes import router as notices_router
from dutydesk.audit.schemas import AuditEventOut
from dutydesk.audit.service import audit_query, object_types
from dutydesk.web.access import Db, Viewer, ViewerPage
from dutydesk.web.params import FormMoment, Moment, Offset, form_moment
from dutydesk.web.templating import render

router = APIRouter()
router.include_router(notices_router)
registry.add_nav(registry.NavItem("Audit", "/audit", order=850))

Text = Annotated[str | None, Query(max_length=200)]
Action = Annotated[str | None, Query(pattern="^(create|update|delete)$")]
# The page's form sends its blank fields as '': blank is no filter there.
FormAction = Annotated[str | None, Query(pattern="^(create|update|delete)?$")]
When = Annotated[Moment | None, Query(description="UTC when no time zone is given.")]
PAGE_SIZE = 100


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    actor: Text = None,
    object_type: Text = None,
    action: FormAction = None,
    since: FormMoment = None,
    until: FormMoment = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """Every change with who made it, when and the diff, newest first."""
    since_at, until_at = form_moment("since", since), form_moment("until", until)
    query = audit_query(
        actor=actor or None,
        object_type=object_type or None,
        action=action or None,
        since=since_at,
        until=until_at,
    )
    events = db.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return render(
        request,
        "audit/audit.html",
        {
            "events": events[:PAGE_SIZE],
            # Each change as field: before → after lines, secrets hidden, as its notice reads.
            "changes": {event.id: field_changes(event) for event in events[:PAGE_SIZE]},
            "has_more": len(events) > PAGE_SIZE,
            "page": page,
            "object_types": object_types(db),
            "filters": {
                "actor": actor or "",
                "object_type": object_type or "",
                "action": action or "",
                "since": since_at.isoformat() if since_at else "",
                "until": until_at.isoformat() if until_at else "",
            },
        },
    )


@router.get("/api/v1/audit")
def list_audit_events(
    _who: Viewer,
    db: Db,
    actor: Text = None,
    object_type: Text = None,
    action: Action = None,
    since: When = None,
    until: When = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[AuditEventOut]:
    """Audit events matching the filters, newest first."""
    query = audit_query(
        actor=actor,
        object_type=object_type,
        action=action,
        since=_aware(since),
        until=_aware(until),
    )
    return [AuditEventOut.model_validate(e) for e in db.scalars(query.offset(offset).limit(limit))]
