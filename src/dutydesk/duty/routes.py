"""Duty pages: rotations with who is on duty and an 8-week calendar, overrides, and each
rotation's iCal feed at a secret URL."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.duty import service
from dutydesk.duty.models import Rotation
from dutydesk.web.access import AdminPage, Db, OperatorPage, Principal, TokenInUrl, ViewerPage
from dutydesk.web.params import RowId, form_int
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Duty", "/duty", order=55))
Feed = Annotated[Principal, Depends(TokenInUrl())]
WEEKS = 8
# A shift of up to a year.
MAX_SHIFT_HOURS = 24 * 366


def _actor(who: Principal) -> str:
    return who.user.username if who.user is not None else "api"


def _rotation_or_404(db: Db, rotation_id: int) -> Rotation:
    rotation = db.get(Rotation, rotation_id)
    if rotation is None:
        raise HTTPException(404, f"no rotation {rotation_id}")
    return rotation


def _week_start(at: dt.datetime) -> dt.datetime:
    start = at - dt.timedelta(days=at.weekday())
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


@router.get("/duty", response_class=HTMLResponse)
def duty_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Every rotation: who is on duty now, the next 8 weeks, overrides."""
    now = utcnow()
    start = _week_start(now)
    rotations = [
        {
            "rotation": rotation,
            "now": service.current_shift(rotation, now),
            "shifts": service.shifts(rotation, start, start + dt.timedelta(weeks=WEEKS)),
        }
        for rotation in service.list_rotations(db)
    ]
    return render(
        request,
        "duty/rotations.html",
        {
            "rotations": rotations,
            "weekdays": service.WEEKDAYS,
            "now": now,
            "feed_url": request.query_params.get("feed"),
        },
    )


@router.post("/duty")
async def add_rotation(request: Request, _who: AdminPage, db: Db) -> Response:
    """Add a rotation from the form."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.create_rotation(
            db,
            name=form.get("name", ""),
            members=form.get("members", "").replace(",", " ").split(),
            time_zone=form.get("time_zone", "UTC"),
            handoff_weekday=form.get("weekday", "monday"),
            handoff_time=form.get("time", "09:00"),
            shift_hours=form_int(form, "shift_hours", 168, low=1, high=MAX_SHIFT_HOURS),
            lead=form.get("lead") or None,
        )
    except (service.DutyError, ValueError) as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/duty", status_code=303)


def _when(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise service.DutyError(f"{value!r} is not a date and time") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@router.post("/duty/{rotation_id}/overrides")
async def add_override(request: Request, who: OperatorPage, db: Db, rotation_id: RowId) -> Response:
    """Add an override (times in UTC unless they carry a zone); the lead is told."""
    rotation = _rotation_or_404(db, rotation_id)
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.add_override(
            db,
            rotation,
            username=form.get("user", ""),
            starts_at=_when(form.get("from", "")),
            ends_at=_when(form.get("to", "")),
            reason=form.get("reason", ""),
            actor=_actor(who),
        )
    except service.DutyError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/duty", status_code=303)


@router.post("/duty/{rotation_id}/feed")
def new_feed(request: Request, _who: AdminPage, db: Db, rotation_id: RowId) -> Response:
    """Make a new secret iCal URL for the rotation (the old one stops working)."""
    rotation = _rotation_or_404(db, rotation_id)
    token = service.new_ical_token(rotation)
    db.flush()
    url = f"{request.base_url}duty/feed/{token}.ics"
    return render(request, "duty/feed.html", {"rotation": rotation, "url": url})


@router.get("/duty/feed/{token}.ics")
def ical_feed(_who: Feed, db: Db, token: str) -> Response:
    """The rotation's next 8 weeks as iCalendar; the token in the URL is the credential."""
    rotation = service.rotation_for_token(db, token)
    if rotation is None:
        return Response("unknown feed token", status_code=401)
    return Response(service.ical_feed(rotation, weeks=WEEKS), media_type="text/calendar")
