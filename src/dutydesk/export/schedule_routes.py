"""Pages and API for export schedules: everyone may look, operators may change them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.export import schedules as service
from dutydesk.export.models import ExportSchedule
from dutydesk.export.schedule import ScheduleType
from dutydesk.web.access import Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

router = APIRouter()

PAGE = "/exports/schedules"
registry.add_nav(registry.NavItem("Export schedules", PAGE, order=101))


class ScheduleOut(BaseModel):
    """A schedule as the API shows it."""

    model_config = ConfigDict(from_attributes=True, alias_generator=to_camel, validate_by_name=True)

    id: int
    name: str
    time_zone: str
    schedule_type: str
    request_override: dict[str, Any] | None
    enabled: bool
    last_fired_for: str | None
    created_at: dt.datetime


class ScheduleIn(BaseModel):
    """A new schedule: `{name, timeZone, scheduleType, requestOverride, enabled}`."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)

    name: str
    time_zone: str
    schedule_type: str = ScheduleType.DAILY.value
    # Any JSON: the service refuses a non-object with a message that names the problem.
    request_override: Any = None
    enabled: bool = True


class ScheduleChange(BaseModel):
    """New values for a schedule; a field left out stays as it is, and the name never changes."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)

    time_zone: str | None = None
    schedule_type: str | None = None
    request_override: Any = None
    enabled: bool | None = None


def _override_text(override: dict[str, Any] | None) -> str:
    return "" if override is None else json.dumps(override, ensure_ascii=False)


def _next_fire(schedule: ExportSchedule, now: dt.datetime) -> str:
    """When the schedule fires next, as the page says it."""
    return service.next_fire_text(schedule, now)


def _schedules_page(
    request: Request,
    db: Session,
    *,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    editing: int | None = None,
) -> HTMLResponse:
    now = utcnow()
    runs = service.last_runs(db)
    rows = [
        {
            "schedule": schedule,
            "override_text": _override_text(schedule.request_override),
            "next_fire": _next_fire(schedule, now),
            "last_run": runs.get(schedule.name),
        }
        for schedule in service.list_schedules(db)
    ]
    return render(
        request,
        "export/schedules.html",
        {
            "rows": rows,
            "types": [kind.value for kind in ScheduleType],
            "error": error,
            "form": form or {},
            "editing": editing,
        },
        status_code=400 if error else 200,
    )


@router.get(PAGE, response_class=HTMLResponse)
def schedules_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Every export schedule and when it fires next; operators can add, change and delete."""
    return _schedules_page(request, db)


@router.post(PAGE, response_class=HTMLResponse)
def create_schedule_form(
    request: Request,
    _who: OperatorPage,
    db: Db,
    name: Annotated[str, Form(max_length=200)],
    time_zone: Annotated[str, Form(max_length=200)],
    schedule_type: Annotated[str, Form(max_length=32)],
    request_override: Annotated[str, Form(max_length=100_000)] = "",
    enabled: Annotated[bool, Form()] = False,
) -> Response:
    """Add a schedule from the form; bad input comes back with the reason."""
    form = {
        "name": name,
        "time_zone": time_zone,
        "schedule_type": schedule_type,
        "request_override": request_override,
        "enabled": enabled,
    }
    try:
        service.create_schedule(
            db,
            name=name.strip(),
            time_zone=time_zone.strip(),
            schedule_type=schedule_type,
            request_override=service.parse_override_text(request_override),
            enabled=enabled,
        )
    except service.ScheduleError as error:
        return _schedules_page(request, db, error=str(error), form=form)
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/{schedule_id}", response_class=HTMLResponse)
def update_schedule_form(
    request: Request,
    _who: OperatorPage,
    db: Db,
    schedule_id: RowId,
    time_zone: Annotated[str, Form(max_length=200)],
    schedule_type: Annotated[str, Form(max_length=32)],
    request_override: Annotated[str, Form(max_length=100_000)] = "",
    enabled: Annotated[bool, Form()] = False,
) -> Response:
    """Change a schedule's time zone, type, override or switch; bad input comes back."""
    schedule = _found(db, schedule_id)
    try:
        service.update_schedule(
            db,
            schedule,
            time_zone=time_zone.strip(),
            schedule_type=schedule_type,
            request_override=service.parse_override_text(request_override),
            enabled=enabled,
        )
    except service.ScheduleError as error:
        form = {
            "time_zone": time_zone,
            "schedule_type": schedule_type,
            "request_override": request_override,
            "enabled": enabled,
        }
        return _schedules_page(request, db, error=str(error), form=form, editing=schedule_id)
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/{schedule_id}/delete")
def delete_schedule_form(_who: OperatorPage, db: Db, schedule_id: RowId) -> Response:
    """Delete a schedule (its runs stay)."""
    service.delete_schedule(db, _found(db, schedule_id))
    return RedirectResponse(PAGE, status_code=303)


def _found(db: Session, schedule_id: int) -> ExportSchedule:
    try:
        return service.get_schedule(db, schedule_id)
    except service.ScheduleNotFound as error:
        raise HTTPException(404, str(error)) from None


@router.get("/api/v1/export-schedules")
def list_schedules(_who: Viewer, db: Db) -> list[ScheduleOut]:
    """Every export schedule, by name."""
    return [ScheduleOut.model_validate(schedule) for schedule in service.list_schedules(db)]


@router.get("/api/v1/export-schedules/{schedule_id}")
def get_schedule(_who: Viewer, db: Db, schedule_id: RowId) -> ScheduleOut:
    """One export schedule."""
    return ScheduleOut.model_validate(_found(db, schedule_id))


@router.post("/api/v1/export-schedules", status_code=201)
def create_schedule(_who: Operator, db: Db, body: ScheduleIn) -> ScheduleOut:
    """Add a schedule; it first fires at the next boundary of its period."""
    try:
        schedule = service.create_schedule(
            db,
            name=body.name,
            time_zone=body.time_zone,
            schedule_type=body.schedule_type,
            request_override=body.request_override,
            enabled=body.enabled,
        )
    except service.ScheduleError as error:
        raise HTTPException(422, str(error)) from None
    return ScheduleOut.model_validate(schedule)


@router.put("/api/v1/export-schedules/{schedule_id}")
def update_schedule(
    _who: Operator, db: Db, schedule_id: RowId, body: ScheduleChange
) -> ScheduleOut:
    """Change the fields given; `"requestOverride": null` removes the override."""
    schedule = _found(db, schedule_id)
    given = body.model_fields_set
    try:
        service.update_schedule(
            db,
            schedule,
            time_zone=body.time_zone if body.time_zone is not None else service.KEEP,
            schedule_type=body.schedule_type if body.schedule_type is not None else service.KEEP,
            request_override=(
                body.request_override if "request_override" in given else service.KEEP
            ),
            enabled=body.enabled if body.enabled is not None else service.KEEP,
        )
    except service.ScheduleError as error:
        raise HTTPException(422, str(error)) from None
    return ScheduleOut.model_validate(schedule)


@router.delete("/api/v1/export-schedules/{schedule_id}")
def delete_schedule(_who: Operator, db: Db, schedule_id: RowId) -> ScheduleOut:
    """Delete a schedule (its runs stay); the answer is what was deleted."""
    schedule = _found(db, schedule_id)
    out = ScheduleOut.model_validate(schedule)
    service.delete_schedule(db, schedule)
    return out
