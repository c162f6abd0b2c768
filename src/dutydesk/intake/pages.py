"""The intake console: the Inbox (list, search by date and text, one item), the
integrations (make, rotate, enable or disable, delete) and the log sources (add, delete, scan
now)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.intake import log_sources, service
from dutydesk.intake.api import inbox_filters
from dutydesk.intake.models import Kind, Outcome
from dutydesk.jobs import service as jobs
from dutydesk.logs.formats import FORMAT_NAMES
from dutydesk.settings import get_settings
from dutydesk.tickets._web import caller_name
from dutydesk.tickets.service import TicketInputError
from dutydesk.web.access import AdminPage, Db, ViewerPage
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Inbox", "/inbox", order=55))
registry.add_nav(registry.NavItem("Integrations", "/integrations", order=56))
registry.add_nav(registry.NavItem("Log sources", "/log-sources", order=56))

PAGE_SIZE = 50
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    since: Text = None,
    until: Text = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    source: Text = None,
    outcome: Text = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Everything that came in, newest first: the fallback when the ticket tool is down."""
    filters = inbox_filters(since, until, q, source, outcome)
    items = service.list_inbox(db, filters, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    form = {"since": since or "", "until": until or "", "q": q or "", "source": source or ""}
    form["outcome"] = outcome or ""
    return render(
        request,
        "intake/inbox.html",
        {
            "items": items[:PAGE_SIZE],
            "more": len(items) > PAGE_SIZE,
            "page": page,
            "form": form,
            "outcomes": [o.value for o in Outcome],
            "sources": sorted({*(k.value for k in Kind), "smtp", "imap"} - {"email"}),
        },
    )


@router.get("/inbox/{item_id}", response_class=HTMLResponse)
def inbox_item_page(request: Request, _who: ViewerPage, db: Db, item_id: RowId) -> HTMLResponse:
    """One inbound request or message as it came, with what became of it."""
    try:
        item = service.get_inbox_item(db, item_id)
    except service.IntakeError as error:
        raise HTTPException(404, str(error)) from None
    return render(request, "intake/inbox_item.html", {"item": item})


def _integrations_page(request: Request, db: Db, **extra: Any) -> HTMLResponse:
    from dutydesk.db import utcnow
    from dutydesk.intake._heartbeat import state_of

    integrations = service.list_integrations(db)
    now = utcnow()
    return render(
        request,
        "intake/integrations.html",
        {
            "integrations": integrations,
            "beats": {i.id: state_of(i.check, now) for i in integrations if i.check is not None},
            "kinds": [kind.value for kind in Kind],
            "base_url": get_settings().base_url.rstrip("/"),
            **extra,
        },
    )


@router.get("/integrations", response_class=HTMLResponse)
def integrations_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The integrations and, for admins, a form to make one."""
    return _integrations_page(request, db)


@router.post("/integrations", response_class=HTMLResponse)
async def create_integration_form(request: Request, who: AdminPage, db: Db) -> HTMLResponse:
    """Make an integration from the form; its URL with the token is shown once."""
    form = await request.form()
    group_by = [part for part in str(form.get("group_by") or "").split(",") if part.strip()]
    try:
        made = service.create_integration(
            db,
            name=str(form.get("name") or ""),
            kind=str(form.get("kind") or ""),
            actor=caller_name(who),
            group_by=group_by,
            close_on_resolve=form.get("close_on_resolve") == "on",
            default_severity=str(form.get("default_severity") or "warning"),
        )
    except (service.IntakeError, TicketInputError) as error:
        return _integrations_page(request, db, error=str(error))
    return _integrations_page(request, db, made=made)


@router.post("/integrations/{ident}/{action}", response_class=HTMLResponse)
def integration_action(
    request: Request, _who: AdminPage, db: Db, ident: str, action: str
) -> Response:
    """Rotate the token, enable, disable or delete an integration."""
    try:
        integration = service.get_integration(db, ident)
    except service.IntakeError as error:
        raise HTTPException(404, str(error)) from None
    if action == "rotate":
        return _integrations_page(request, db, made=service.rotate_token(db, integration))
    if action in ("enable", "disable"):
        service.update_integration(db, integration, {"enabled": action == "enable"})
    elif action == "delete":
        service.delete_integration(db, integration)
    else:
        raise HTTPException(404, f"unknown action {action!r}")
    return RedirectResponse("/integrations", status_code=303)


def _log_sources_page(
    request: Request, db: Db, *, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    return render(
        request,
        "intake/log_sources.html",
        {
            "sources": log_sources.list_log_sources(db),
            "formats": [name for name in FORMAT_NAMES if name != "auto"],
            **extra,
        },
        status_code=status_code,
    )


@router.get("/log-sources", response_class=HTMLResponse)
def log_sources_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The log archive globs scanned on a schedule and, for admins, a form to add one."""
    return _log_sources_page(request, db)


@router.post("/log-sources", response_class=HTMLResponse)
async def create_log_source_form(request: Request, who: AdminPage, db: Db) -> Response:
    """Add a scanned log source from the form; a wrong one is shown with 400."""
    form = await request.form()
    fields = {key: str(form.get(key) or "").strip() for key in ("name", "glob", "format")}
    try:
        log_sources.create_log_source(
            db,
            name=fields["name"],
            glob=fields["glob"],
            fmt=fields["format"] or "auto",
            actor=caller_name(who),
        )
    except log_sources.LogSourceError as error:
        return _log_sources_page(request, db, status_code=400, error=str(error), form=fields)
    return RedirectResponse("/log-sources", status_code=303)


@router.post("/log-sources/scan", response_class=HTMLResponse)
def scan_log_sources_form(request: Request, _who: AdminPage, db: Db) -> HTMLResponse:
    """Queue the job `intake.log_scan` now: a worker scans every enabled source."""
    job = jobs.enqueue(db, "intake.log_scan")
    return _log_sources_page(request, db, queued=job.id)


@router.post("/log-sources/{ident}/delete", response_class=HTMLResponse)
def delete_log_source_form(_who: AdminPage, db: Db, ident: str) -> Response:
    """Stop scanning a source (the lines it counted stay)."""
    try:
        source = log_sources.get_log_source(db, ident)
    except log_sources.LogSourceError as error:
        raise HTTPException(404, str(error)) from None
    log_sources.delete_log_source(db, source)
    return RedirectResponse("/log-sources", status_code=303)
