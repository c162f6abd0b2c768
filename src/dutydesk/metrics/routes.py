"""Dashboards: the pages (saved dashboards, the series browser, one series' chart) and the
JSON API of the chart data."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.db import describe_database_error, transaction, utcnow
from dutydesk.metrics import dashboards
from dutydesk.metrics.models import Dashboard
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.openapi import answers
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def make_default_dashboards(app: FastAPI) -> AsyncIterator[None]:
    """As the web process starts, make the default dashboards that do not exist yet, so no
    request writes them. A database that cannot take them now (unreachable, not migrated) is
    logged and the process starts anyway: the health page says what is wrong."""
    try:
        with transaction(app.state.session_factory, immediate=True, actor="dutydesk") as session:
            made = dashboards.ensure_defaults(session)
    except IntegrityError:
        made = []  # another web process made them at the same moment
    except DBAPIError as error:
        log.warning(
            "default dashboards not made: %s", describe_database_error(error, "the ops database")
        )
    else:
        for board in made:
            log.info("made the default dashboard %r", board.name)
    yield


router = APIRouter(lifespan=make_default_dashboards)
registry.add_nav(registry.NavItem("Dashboards", "/dashboards", order=92))

SeriesName = Annotated[
    str | None, Query(max_length=200, description="Part of the series' name, e.g. export.")
]
SeriesLabel = Annotated[
    str | None,
    Query(max_length=300, description="A label as key=value, or a label value alone."),
]
SeriesKey = Annotated[
    str, Query(min_length=1, max_length=300, description="The series key, as listed.")
]
Days = Annotated[int, Query(ge=1, le=dashboards.MAX_RANGE_DAYS, description="Days back from now.")]
Step = Annotated[
    str,
    Query(max_length=8, description="point (each point), day or week (sums per bucket)."),
]


class PanelIn(BaseModel):
    """One panel: a title and a series pattern (`*` is any text), summed per step."""

    title: str = Field(default="", max_length=200)
    series: str = Field(min_length=1, max_length=300)
    step: str = Field(default="point", max_length=8)


class DashboardIn(BaseModel):
    """A dashboard to make or replace (by name)."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)
    range_days: int = Field(default=30, ge=1, le=dashboards.MAX_RANGE_DAYS)
    panels: list[PanelIn] = Field(min_length=1, max_length=20)


class DashboardOut(BaseModel):
    """A saved dashboard."""

    id: int
    name: str
    description: str
    range_days: int
    panels: list[dict[str, Any]]
    created_by: str

    @classmethod
    def of(cls, board: Dashboard) -> DashboardOut:
        """The API's view of a dashboard."""
        return cls(
            id=board.id,
            name=board.name,
            description=board.description,
            range_days=board.range_days,
            panels=list(board.panels),
            created_by=board.created_by,
        )


def _board_or_404(db: Db, ident: int) -> Dashboard:
    try:
        return dashboards.get_dashboard(db, ident)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None


def _chart(db: Db, series: str, days: int, step: str) -> dict[str, Any]:
    until = utcnow()
    try:
        return dashboards.chart(
            db, series, since=until - dt.timedelta(days=days), until=until, step=step
        )
    except dashboards.DashboardError as error:
        raise HTTPException(422, str(error)) from None


# --- API ---------------------------------------------------------------------------------


@router.get("/api/v1/series")
def list_series(
    _who: Viewer, db: Db, name: SeriesName = None, label: SeriesLabel = None
) -> list[dict[str, Any]]:
    """Every series (key, name, labels), filtered by part of the name and by a label."""
    return dashboards.browse(db, name=name, label=label)


@router.get("/api/v1/series/chart", responses=answers(422))
def series_chart(
    _who: Viewer, db: Db, series: SeriesKey, days: Days = 30, step: Step = "point"
) -> dict[str, Any]:
    """One series' chart data: times (epoch seconds), values, the shift rules' baseline band
    (median, low, high), the points where a rule fired, and annotations (releases, re-drives,
    silences, high-risk changes)."""
    return _chart(db, series, days, step)


@router.get("/api/v1/dashboards")
def list_dashboards(_who: Viewer, db: Db) -> list[DashboardOut]:
    """The saved dashboards (the export and the intake-and-tickets ones among them)."""
    return [DashboardOut.of(board) for board in dashboards.list_dashboards(db)]


@router.get("/api/v1/dashboards/{ident}", responses=answers(404))
def dashboard_charts(_who: Viewer, db: Db, ident: RowId) -> dict[str, Any]:
    """A dashboard with each panel's charts over its time range."""
    board = _board_or_404(db, ident)
    return {**DashboardOut.of(board).model_dump(), "data": dashboards.dashboard_data(db, board)}


@router.post("/api/v1/dashboards", status_code=201, responses=answers(422))
def save_dashboard(who: Operator, db: Db, body: DashboardIn) -> DashboardOut:
    """Make a dashboard, or replace the one of the same name; 422 names what is wrong."""
    try:
        board = dashboards.save_dashboard(
            db,
            name=body.name,
            description=body.description,
            range_days=body.range_days,
            panels=[panel.model_dump() for panel in body.panels],
            actor=caller_name(who),
        )
    except dashboards.DashboardError as error:
        raise HTTPException(422, str(error)) from None
    return DashboardOut.of(board)


# --- pages -------------------------------------------------------------------------------


@router.get("/dashboards", response_class=HTMLResponse)
def dashboards_page(
    request: Request, _who: ViewerPage, db: Db, name: SeriesName = None, label: SeriesLabel = None
) -> HTMLResponse:
    """The saved dashboards and every series, browsable by name and label."""
    return render(
        request,
        "metrics/dashboards.html",
        {
            "boards": dashboards.list_dashboards(db),
            "series": dashboards.browse(db, name=name, label=label),
            "name": name or "",
            "label": label or "",
        },
    )


@router.get("/dashboards/series", response_class=HTMLResponse, responses=answers(422))
def series_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    series: SeriesKey,
    days: Days = 30,
    step: Step = "point",
) -> HTMLResponse:
    """One series' chart with its band, fired points and annotations."""
    chart = _chart(db, series, days, step)
    panel = {"title": series, "series": series, "step": step, "charts": [chart]}
    return render(
        request,
        "metrics/dashboard.html",
        {"title": series, "description": "", "days": days, "panels": [panel], "board": None},
    )


@router.get("/dashboards/{ident}", response_class=HTMLResponse, responses=answers(404))
def dashboard_page(request: Request, _who: ViewerPage, db: Db, ident: RowId) -> HTMLResponse:
    """A saved dashboard: each panel's charts over its time range."""
    board = _board_or_404(db, ident)
    return render(
        request,
        "metrics/dashboard.html",
        {
            "title": board.name,
            "description": board.description,
            "days": board.range_days,
            "panels": dashboards.dashboard_data(db, board),
            "board": board,
        },
    )


@router.post("/dashboards", responses=answers(422))
def save_dashboard_form(
    who: OperatorPage,
    db: Db,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    series: Annotated[str, Form(min_length=1, max_length=2000)],
    range_days: Annotated[int, Form(ge=1, le=dashboards.MAX_RANGE_DAYS)] = 30,
    step: Annotated[str, Form(max_length=8)] = "point",
) -> Response:
    """Save a dashboard from the form: one panel per series pattern (one a line)."""
    panels = [
        {"title": line.strip(), "series": line.strip(), "step": step}
        for line in series.splitlines()
        if line.strip()
    ]
    try:
        board = dashboards.save_dashboard(
            db, name=name, panels=panels, range_days=range_days, actor=caller_name(who)
        )
    except dashboards.DashboardError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse(f"/dashboards/{board.id}", status_code=303)
