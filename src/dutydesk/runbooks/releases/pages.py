"""The releases console: releases (the page a team watches during a deploy, refreshing
itself), checklist templates edited as YAML, release windows, and broadcasts; plus the
banner every console page shows while a broadcast is active."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.runbooks.releases import _windows, broadcasts, service
from dutydesk.runbooks.releases._actions import (
    RELEASE_ACTIONS,
    STEP_ACTIONS,
    act_on_release,
    act_on_step,
    person,
)
from dutydesk.runbooks.releases.models import Broadcast, BroadcastLevel, Release
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Db, OperatorPage, ViewerPage
from dutydesk.web.params import RowId
from dutydesk.web.templating import render, templates

log = logging.getLogger(__name__)
router = APIRouter()
registry.add_nav(registry.NavItem("Releases", "/releases", order=80))
registry.add_nav(registry.NavItem("Broadcasts", "/broadcasts", order=81))

EXAMPLE_TEMPLATE = """name: deploy
description: The team's deploy
window: weekday mornings   # optional: a release window by name
pipelines: [build-app]     # CI pipelines the release page watches
silence: {service: app}    # alarm labels silenced while a release runs
steps:
  - {name: Change-control form, kind: manual, skip_for_patch: true}
  - name: Notify users by e-mail
    kind: notify
    list: core-users
    subject: "Release {version} at {window}"
    message: "We release {version}; follow it at {release_url}"
  - {name: Broadcast, kind: broadcast, action: start, message: "Release {version} in progress"}
  - {name: Acceptance test, kind: signoff, role: approver, count: 1}
  - {name: Broadcast off, kind: broadcast, action: end}
"""


def banner_broadcasts(request: Request) -> list[Broadcast]:
    """The active broadcasts for the layout's banner (none if the database cannot say)."""
    factory = getattr(request.app.state, "session_factory", None)
    if factory is None:
        return []
    try:
        with factory() as session:
            shown = broadcasts.active_broadcasts(session)
            session.expunge_all()
            return shown
    except SQLAlchemyError as error:
        log.warning("the broadcast banner could not be read: %s", error)
        return []


templates.env.globals["active_broadcasts"] = banner_broadcasts


def _release_or_404(db: Db, release_id: int) -> Release:
    try:
        return service.get_release(db, release_id)
    except service.ReleaseError as error:
        raise HTTPException(404, str(error)) from None


def _moment(text: str, label: str) -> dt.datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise service.ReleaseError(
            f"{label} {text!r} is not a time such as 2026-12-08T09:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- releases -----------------------------------------------------------------------------------


def _releases_page(request: Request, db: Db, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "releases/releases.html",
        {
            "releases": service.list_releases(db, limit=100),
            "templates": service.list_templates(db),
            "windows": _windows.list_windows(db),
            "describe": _windows.describe,
            "day_names": _windows.DAY_NAMES,
            **extra,
        },
    )


@router.get("/releases", response_class=HTMLResponse)
def releases_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Releases, templates and release windows."""
    return _releases_page(request, db)


@router.post("/releases", response_class=HTMLResponse)
async def create_release_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """Plan a release from the form."""
    form = await request.form()
    try:
        template = service.get_template(db, str(form.get("template") or ""))
        release = service.create_release(
            db,
            template,
            version=str(form.get("version") or ""),
            title=str(form.get("title") or ""),
            window=str(form.get("window") or "") or None,
            planned_start=_moment(str(form.get("planned_start") or ""), "planned start"),
            planned_end=_moment(str(form.get("planned_end") or ""), "planned end"),
            author=person(db, who),
            actor=caller_name(who),
        )
    except service.ReleaseError as error:
        return _releases_page(request, db, error=str(error))
    return RedirectResponse(f"/releases/{release.id}", status_code=303)


@router.post("/releases/windows", response_class=HTMLResponse)
async def create_window_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """Make a release window from the form."""
    form = await request.form()
    try:
        _windows.create_window(
            db,
            name=str(form.get("name") or ""),
            days=[str(day) for day in form.getlist("days")],
            starts=str(form.get("starts") or ""),
            ends=str(form.get("ends") or ""),
            time_zone=str(form.get("time_zone") or "UTC"),
            actor=caller_name(who),
        )
    except _windows.WindowError as error:
        return _releases_page(request, db, error=str(error))
    return RedirectResponse("/releases", status_code=303)


# --- templates ----------------------------------------------------------------------------------


def _template_page(request: Request, text: str, **extra: Any) -> HTMLResponse:
    return render(request, "releases/template.html", {"text": text, **extra})


@router.get("/releases/templates/new", response_class=HTMLResponse)
def new_template_page(request: Request, _who: OperatorPage) -> HTMLResponse:
    """A template to write as YAML, from an example."""
    return _template_page(request, EXAMPLE_TEMPLATE, template=None)


@router.get("/releases/templates/{template_id}", response_class=HTMLResponse)
def template_page(request: Request, _who: ViewerPage, db: Db, template_id: RowId) -> HTMLResponse:
    """A template's steps, and its YAML to edit."""
    try:
        template = service.get_template(db, template_id)
    except service.ReleaseError as error:
        raise HTTPException(404, str(error)) from None
    text = yaml.safe_dump(service.template_spec(template), sort_keys=False, allow_unicode=True)
    return _template_page(request, text, template=template)


@router.post("/releases/templates", response_class=HTMLResponse)
async def save_template_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """Make or replace a template from YAML (every step checked; nothing saved on an error)."""
    form = await request.form()
    text = str(form.get("yaml") or "")
    try:
        with db.begin_nested():
            template = service.load_yaml(db, text, actor=caller_name(who))
    except service.ReleaseError as error:
        return _template_page(request, text, template=None, error=str(error))
    return RedirectResponse(f"/releases/templates/{template.id}", status_code=303)


# --- one release --------------------------------------------------------------------------------


def _release_context(db: Db, release: Release) -> dict[str, Any]:
    return {
        "release": release,
        "timeline": service.timeline(db, release),
        "pipeline_events": service.release_pipeline_events(db, release),
        "describe": _windows.describe,
        "window_open": _windows.is_open(release.window) if release.window else True,
    }


@router.get("/releases/{release_id}", response_class=HTMLResponse)
def release_page(request: Request, _who: ViewerPage, db: Db, release_id: RowId) -> HTMLResponse:
    """The release: its steps with who, when, notes and output, the timeline, the pipelines."""
    release = _release_or_404(db, release_id)
    return render(request, "releases/release.html", _release_context(db, release))


@router.get("/releases/{release_id}/live", response_class=HTMLResponse)
def release_live(request: Request, _who: ViewerPage, db: Db, release_id: RowId) -> HTMLResponse:
    """The part of the release page that refreshes itself."""
    release = _release_or_404(db, release_id)
    return render(request, "releases/_live.html", _release_context(db, release))


@router.post("/releases/{release_id}/steps/{position}/{action}", response_class=HTMLResponse)
async def step_action_form(
    request: Request, who: OperatorPage, db: Db, release_id: RowId, position: RowId, action: str
) -> Response:
    """Tick, sign, retry, skip or override a step (the form's `text` is the note or reason)."""
    release = _release_or_404(db, release_id)
    if action not in STEP_ACTIONS:
        raise HTTPException(404, f"no step action {action!r}")
    text = str((await request.form()).get("text") or "")
    try:
        act_on_step(db, release, position, action, who, text)
    except service.ReleaseError as error:
        context = _release_context(db, release)
        return render(
            request,
            "releases/release.html",
            {**context, "error": str(error)},
            status_code=error.status if error.status in (403, 409) else 422,
        )
    return RedirectResponse(f"/releases/{release.id}", status_code=303)


@router.post("/releases/{release_id}/{action}", response_class=HTMLResponse)
async def release_action_form(
    request: Request, who: OperatorPage, db: Db, release_id: RowId, action: str
) -> Response:
    """Start, roll back or cancel a release."""
    release = _release_or_404(db, release_id)
    if action not in RELEASE_ACTIONS:
        raise HTTPException(404, f"no release action {action!r}")
    text = str((await request.form()).get("text") or "")
    try:
        act_on_release(db, release, action, who, text)
    except service.ReleaseError as error:
        context = _release_context(db, release)
        return render(
            request, "releases/release.html", {**context, "error": str(error)}, status_code=409
        )
    return RedirectResponse(f"/releases/{release.id}", status_code=303)


# --- broadcasts ---------------------------------------------------------------------------------


def _broadcasts_page(request: Request, db: Db, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "releases/broadcasts.html",
        {
            "broadcasts": broadcasts.list_broadcasts(db),
            "is_active": broadcasts.is_active,
            "levels": [level.value for level in BroadcastLevel],
            **extra,
        },
    )


@router.get("/broadcasts", response_class=HTMLResponse)
def broadcasts_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Broadcasts, active and past, and a form to start one."""
    return _broadcasts_page(request, db)


@router.post("/broadcasts", response_class=HTMLResponse)
async def create_broadcast_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """Start a broadcast from the form (for some hours, or until it is ended)."""
    form = await request.form()
    try:
        hours_text = str(form.get("hours") or "").strip()
        hours = float(hours_text) if hours_text else None
        if hours is not None and not 0 < hours <= 24 * 365:
            raise broadcasts.BroadcastError("hours must be more than 0 (at most a year)")
        broadcasts.create_broadcast(
            db,
            message=str(form.get("message") or ""),
            level=str(form.get("level") or "info"),
            ends_at=utcnow() + dt.timedelta(hours=hours) if hours else None,
            actor=caller_name(who),
        )
    except ValueError as error:  # BroadcastError, or hours that are not a number
        return _broadcasts_page(request, db, error=str(error))
    return RedirectResponse("/broadcasts", status_code=303)


@router.post("/broadcasts/{broadcast_id}/end", response_class=HTMLResponse)
def end_broadcast_form(
    request: Request, who: OperatorPage, db: Db, broadcast_id: RowId
) -> Response:
    """End a broadcast now."""
    try:
        found = broadcasts.get_broadcast(db, broadcast_id)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    try:
        broadcasts.end_broadcast(db, found, actor=caller_name(who))
    except broadcasts.BroadcastError as error:
        return _broadcasts_page(request, db, error=str(error))
    return RedirectResponse("/broadcasts", status_code=303)
