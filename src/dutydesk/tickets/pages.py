"""The tickets console: the meeting's "Open, unassigned" list, "Mine", "All", one ticket, and
the weekly numbers. Actions are plain forms that redirect back (bulk ones too)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.settings import get_settings
from dutydesk.tickets import _search, service, stats
from dutydesk.tickets._query import OPEN_ANY, UNASSIGNED
from dutydesk.tickets._web import (
    caller_name,
    http_error,
    make_filters,
    resolve_assignee,
    ticket_or_404,
)
from dutydesk.tickets.models import Severity, Status
from dutydesk.tickets.notes import render_note
from dutydesk.web.access import Db, OperatorPage, Principal, ViewerPage
from dutydesk.web.params import Page
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Tickets", "/tickets", order=50))

PAGE_SIZE = 50
VIEWS = {
    "unassigned": ("Open, unassigned", "/tickets"),
    "mine": ("Mine", "/tickets/mine"),
    "all": ("All", "/tickets/all"),
}
Text = Annotated[str | None, Query(max_length=200)]
BULK_ACTIONS = ("acknowledge", "assign_me", "assign", "close", "reopen")


def _safe_back(value: str | None, fallback: str) -> str:
    if value and value.startswith("/tickets") and "//" not in value and "\\" not in value:
        return value
    return fallback


def _list_page(
    request: Request,
    who: Principal,
    db: Db,
    view: str,
    query: dict[str, Any],
) -> HTMLResponse:
    given = {name: query.get(name) or None for name in ("status", "severity", "assignee")}
    given.update({name: query.get(name) or None for name in ("source", "since", "until")})
    if view == "unassigned":
        given.update(status=given["status"] or OPEN_ANY, assignee=UNASSIGNED)
    elif view == "mine":
        given.update(status=given["status"] or OPEN_ANY, assignee="me")
    filters = make_filters(who, **given)
    q = (query.get("q") or "").strip()
    page = max(1, int(query.get("page") or 1))
    offset = (page - 1) * PAGE_SIZE
    hits: list[_search.Hit] = []
    elsewhere = 0
    if q:
        hits = _search.search(db, q, filters, limit=PAGE_SIZE + 1, offset=offset)
        total = _search.count(db, q, filters)
        if filters.status or filters.assignee:
            # A search is for the text wherever it is: say how many matches the list's own
            # status and assignee leave out, and link to them.
            wider = replace(filters, status=None, assignee=None)
            elsewhere = _search.count(db, q, wider) - total
    else:
        tickets = service.list_tickets(db, filters, limit=PAGE_SIZE + 1, offset=offset)
        hits = [_search.Hit(t, _search.marked(t.title), _search.marked("")) for t in tickets]
        total = service.count_tickets(db, filters)
    more = len(hits) > PAGE_SIZE
    shown = {name: value for name, value in query.items() if value and name != "page"}
    base = VIEWS[view][1]

    def at_page(number: int) -> str:
        return f"{base}?{urlencode({**shown, 'page': number})}"

    return render(
        request,
        "tickets/list.html",
        {
            "view": view,
            "views": VIEWS,
            "hits": hits[:PAGE_SIZE],
            "total": total,
            "page": page,
            "previous_url": at_page(page - 1) if page > 1 else None,
            "next_url": at_page(page + 1) if more else None,
            "here": at_page(page),
            "q": q,
            "elsewhere": elsewhere,
            "elsewhere_url": "/tickets/all?" + urlencode({"q": q, **_shared(query)}),
            "form": {name: query.get(name) or "" for name in ("status", "severity", "assignee")}
            | {name: query.get(name) or "" for name in ("source", "since", "until")},
            "statuses": [s.value for s in Status],
            "severities": [s.value for s in Severity],
            "sources": service.sources(db),
            "operators": service.operators(db),
            "filters": filters,
        },
    )


def _shared(query: dict[str, Any]) -> dict[str, str]:
    """The filters every list offers (not status or assignee), as given, for a link."""
    names = ("severity", "source", "since", "until")
    return {name: query[name] for name in names if query.get(name)}


def _query(request: Request) -> dict[str, Any]:
    return dict(request.query_params)


@router.get("/tickets", response_class=HTMLResponse)
def unassigned_page(
    request: Request, who: ViewerPage, db: Db, q: Text = None, page: Page = 1
) -> HTMLResponse:
    """The meeting's list: open tickets nobody has taken yet, newest first."""
    return _list_page(request, who, db, "unassigned", _query(request))


@router.get("/tickets/mine", response_class=HTMLResponse)
def mine_page(
    request: Request, who: ViewerPage, db: Db, q: Text = None, page: Page = 1
) -> HTMLResponse:
    """Open tickets assigned to the signed-in user."""
    return _list_page(request, who, db, "mine", _query(request))


@router.get("/tickets/all", response_class=HTMLResponse)
def all_page(
    request: Request,
    who: ViewerPage,
    db: Db,
    status: Text = None,
    severity: Text = None,
    assignee: Text = None,
    source: Text = None,
    since: Text = None,
    until: Text = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    page: Page = 1,
) -> HTMLResponse:
    """Every ticket, filtered by status, severity, assignee, source and dates; or searched."""
    return _list_page(request, who, db, "all", _query(request))


@router.get("/tickets/review", response_class=HTMLResponse)
def review_page(
    request: Request, _who: ViewerPage, db: Db, weeks: Annotated[int, Query(ge=1, le=52)] = 6
) -> HTMLResponse:
    """The weekly numbers: opened, closed, time to acknowledge and close, noisy fingerprints."""
    review = stats.weekly_numbers(db, weeks=weeks, stale_days=get_settings().ticket_stale_days)
    return render(request, "tickets/review.html", {"review": review, "views": VIEWS})


@router.get("/tickets/{key}", response_class=HTMLResponse)
def ticket_page(request: Request, _who: ViewerPage, db: Db, key: str) -> HTMLResponse:
    """One ticket: facts, notes, links, timeline, and the actions."""
    ticket = ticket_or_404(db, key)
    extra: dict[str, Any] = {}
    for add in registry.ticket_page_context.values():
        extra.update(add(db, ticket))
    return render(
        request,
        "tickets/ticket.html",
        {
            "ticket": ticket,
            "events": service.timeline(db, ticket),
            "notes": [(note, render_note(note.body)) for note in ticket.notes],
            "operators": service.operators(db),
            "views": VIEWS,
            "diagnose_services": [],
            "diagnose_guess": None,
            **extra,
        },
    )


def _act(db: Db, who: Principal, key: str, action: str, form: dict[str, str]) -> None:
    """Do one triage action on one ticket (shared by the ticket page and bulk actions)."""
    ticket = ticket_or_404(db, key)
    actor = caller_name(who)
    try:
        if action == "acknowledge":
            service.acknowledge(db, ticket, actor=actor)
        elif action == "assign_me":
            service.assign(db, ticket, resolve_assignee(who, "me"), actor=actor)
        elif action == "assign":
            user = form.get("user", "").strip()
            service.assign(db, ticket, resolve_assignee(who, user) or None, actor=actor)
        elif action == "note":
            service.add_note(db, ticket, form.get("text", ""), author=actor)
        elif action == "close":
            service.close_ticket(
                db,
                ticket,
                resolution=form.get("resolution", ""),
                link_url=form.get("link_url", "").strip() or None,
                link_key=form.get("link_key", "").strip() or None,
                actor=actor,
            )
        elif action == "reopen":
            service.reopen(db, ticket, actor=actor)
        else:
            raise HTTPException(422, f"unknown action {action!r}")
    except service.TicketError as error:
        raise http_error(error) from None


@router.post("/tickets/bulk")
async def bulk_action(request: Request, who: OperatorPage, db: Db) -> Response:
    """Apply one action to every ticket ticked on a list."""
    form = await request.form()
    keys = [str(value) for value in form.getlist("keys")]
    action = str(form.get("action", ""))
    if not keys:
        raise HTTPException(422, "tick at least one ticket")
    if action not in BULK_ACTIONS:
        raise HTTPException(422, f"unknown action {action!r}; choose {', '.join(BULK_ACTIONS)}")
    values = {name: str(form.get(name, "")) for name in ("user", "resolution")}
    for key in keys:
        _act(db, who, key, action, values)
    return RedirectResponse(_safe_back(str(form.get("back", "")), "/tickets"), status_code=303)


@router.post("/tickets/{key}/{action}")
async def ticket_action(
    request: Request,
    who: OperatorPage,
    db: Db,
    key: str,
    action: str,
) -> Response:
    """acknowledge, assign, assign_me, note, close or reopen, from the ticket page or a list."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    _act(db, who, key, action, form)
    ticket = service.get_ticket(db, key)
    target = f"/tickets/{ticket.key}"
    return RedirectResponse(_safe_back(form.get("back"), target), status_code=303)
