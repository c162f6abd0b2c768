"""The review page for a week (or since the last review), its Markdown, and marking it held."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.review import charts, service
from dutydesk.web.access import Db, OperatorPage, ViewerPage
from dutydesk.web.openapi import answers
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Review", "/review", order=95))

Week = Annotated[
    str | None,
    Query(max_length=10, description="An ISO week such as 2026-W49; none: since the last review."),
]


def _period(db: Db, week: str | None) -> service.Period:
    try:
        return service.period_for(db, week or None)
    except service.ReviewError as error:
        raise HTTPException(422, str(error)) from None


@router.get("/review", response_class=HTMLResponse, responses=answers(422))
def review_page(request: Request, _who: ViewerPage, db: Db, week: Week = None) -> HTMLResponse:
    """The review: every agenda section with the pages behind it and its charts, and the
    reviews held."""
    period = _period(db, week)
    sections = service.agenda(db, period)
    return render(
        request,
        "review/review.html",
        {
            "period": period,
            "week": week or "",
            "sections": sections,
            "charts": charts.page_charts(db, period, sections),
            "marks": service.last_marks(db),
        },
    )


@router.get("/review.md", response_class=PlainTextResponse, responses=answers(422))
def review_markdown(_who: ViewerPage, db: Db, week: Week = None) -> PlainTextResponse:
    """The same review as Markdown."""
    period = _period(db, week)
    return PlainTextResponse(
        service.to_markdown(period, service.agenda(db, period)),
        media_type="text/markdown; charset=utf-8",
    )


@router.post("/review/mark", responses=answers(422))
def mark_reviewed(
    who: OperatorPage,
    db: Db,
    attendees: Annotated[str, Form(max_length=2000)] = "",
    notes: Annotated[str, Form(max_length=20_000)] = "",
    actions: Annotated[str, Form(max_length=20_000)] = "",
    week: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Mark the review held: attendees (separated by commas), notes, and action items (one a
    line), each of which becomes a ticket."""
    period = _period(db, week)
    try:
        service.mark_reviewed(
            db,
            period,
            attendees=attendees.split(","),
            notes=notes,
            actions=actions.splitlines(),
            actor=who.user.username if who.user else who.name,
        )
    except service.ReviewError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/review", status_code=303)
