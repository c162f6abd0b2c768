"""Scrape targets in the API and the console: register (admin), list with their last error
(viewer), scrape now (admin). A target that does not answer is shown with why, never a 5xx."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from dutydesk import registry
from dutydesk.diagnose import scrape
from dutydesk.diagnose.service import DiagnoseError
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Admin, AdminPage, Db, Viewer, ViewerPage
from dutydesk.web.openapi import answers
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Scrapes", "/scrape-targets", order=59))


class TargetIn(BaseModel):
    """An exposition endpoint to scrape."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=300, description="http://host:9100/metrics")
    interval_seconds: int = Field(default=60, ge=5, le=86_400)
    keep: list[str] | None = Field(
        default=None,
        max_length=200,
        description="Metric names kept; omitted: load, memory, file systems, CPU and network "
        "of a node exporter; empty: every metric.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Added to every series.")


class TargetOut(BaseModel):
    """A scrape target and how its last scrape went."""

    id: int
    name: str
    url: str
    interval_seconds: int
    keep: list[str]
    labels: dict[str, str]
    enabled: bool
    last_scraped_at: dt.datetime | None
    last_error: str | None
    last_series: int

    @classmethod
    def of(cls, target: scrape.ScrapeTarget) -> TargetOut:
        """The API's view of a target."""
        return cls(
            id=target.id,
            name=target.name,
            url=target.url,
            interval_seconds=target.interval_seconds,
            keep=list(target.keep or []),
            labels=dict(target.labels or {}),
            enabled=target.enabled,
            last_scraped_at=target.last_scraped_at,
            last_error=target.last_error,
            last_series=target.last_series,
        )


def _target(db: Db, target_id: int) -> scrape.ScrapeTarget:
    try:
        return scrape.get_target(db, target_id)
    except DiagnoseError as error:
        raise HTTPException(404, str(error)) from None


@router.get("/api/v1/scrape-targets")
def list_targets(_who: Viewer, db: Db) -> list[TargetOut]:
    """Every scrape target with its last scrape and error."""
    return [TargetOut.of(target) for target in scrape.list_targets(db)]


@router.post("/api/v1/scrape-targets", status_code=201, responses=answers(409))
def create_target(who: Admin, db: Db, body: TargetIn) -> TargetOut:
    """Register a Prometheus exposition endpoint to scrape into the metric series."""
    try:
        target = scrape.create_target(db, actor=caller_name(who), **body.model_dump())
    except DiagnoseError as error:
        status = 409 if "exists already" in str(error) else 422
        raise HTTPException(status, str(error)) from None
    return TargetOut.of(target)


@router.post("/api/v1/scrape-targets/{target_id}/scrape", responses=answers(404))
def scrape_now(_who: Admin, db: Db, target_id: RowId) -> TargetOut:
    """Scrape the target now; one that does not answer says why in `last_error`."""
    target = _target(db, target_id)
    scrape.scrape(db, target)
    return TargetOut.of(target)


@router.get("/scrape-targets", response_class=HTMLResponse)
def targets_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The scrape targets with their last scrape and error and, for admins, a form to add one."""
    return _targets_page(request, db)


def _targets_page(
    request: Request, db: Db, status_code: int = 200, error: str = ""
) -> HTMLResponse:
    return render(
        request,
        "diagnose/scrape_targets.html",
        {"targets": scrape.list_targets(db), "error": error},
        status_code=status_code,
    )


@router.post("/scrape-targets", response_class=HTMLResponse)
async def create_target_form(request: Request, who: AdminPage, db: Db) -> Response:
    """Register a target from the form; a wrong one is shown with 400."""
    form = await request.form()
    text = {key: str(form.get(key) or "").strip() for key in ("name", "url", "interval", "keep")}
    try:
        interval = int(text["interval"] or "60")
    except ValueError:
        return _targets_page(request, db, 400, "the interval is a whole number of seconds")
    keep = [name for name in text["keep"].replace(",", " ").split() if name] or None
    labels: dict[str, str] = {}
    for pair in str(form.get("labels") or "").replace(",", " ").split():
        key, sep, value = pair.partition("=")
        if not sep:
            return _targets_page(request, db, 400, f"a label is name=value, not {pair!r}")
        labels[key] = value
    try:
        scrape.create_target(
            db,
            name=text["name"],
            url=text["url"],
            actor=caller_name(who),
            interval_seconds=interval,
            keep=keep,
            labels=labels,
        )
    except DiagnoseError as error:
        return _targets_page(request, db, 400, str(error))
    return RedirectResponse("/scrape-targets", status_code=303)
