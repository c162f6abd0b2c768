"""Backups page and API: targets with their freshness, backups, drills, run and verify now."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.backups import service
from dutydesk.backups.models import BackupTarget
from dutydesk.backups.schemas import BackupOut, DrillOut, QueuedOut, TargetIn, TargetOut
from dutydesk.jobs import service as jobs
from dutydesk.web.access import Admin, AdminPage, Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.openapi import answers
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Backups", "/backups", order=650))

TargetName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
HISTORY = 50


def _target_or_404(db: Db, name: str) -> BackupTarget:
    for target in service.list_targets(db):
        if target.name == name:
            return target
    raise HTTPException(404, f"no backup target named {name!r}")


def _target_out(db: Db, target: BackupTarget) -> TargetOut:
    backup_due, drill_due = service.due_times(db, target)
    return TargetOut(
        name=target.name,
        kind=target.kind,
        source=service.shown_url(target),
        destination=target.destination,
        every_minutes=target.every_minutes,
        drill_every_minutes=target.drill_every_minutes,
        max_age_minutes=target.max_age_minutes,
        keep_hourly=target.keep_hourly,
        keep_daily=target.keep_daily,
        keep_weekly=target.keep_weekly,
        continuous=target.continuous,
        enabled=target.enabled,
        fresh=service.is_fresh(db, target),
        next_backup_due=backup_due,
        next_drill_due=drill_due,
    )


def _chart(db: Db, target: BackupTarget) -> str:
    """Sizes of backups and RTOs of drills over time, oldest first, for uPlot."""
    backups = list(reversed(service.list_backups(db, target, HISTORY)))
    drills = {d.backup_id: d for d in service.list_drills(db, target, HISTORY) if d.backup_id}
    points = [
        (
            int(b.started_at.timestamp()),
            round((b.size_bytes or 0) / 1e6, 3),
            drills[b.id].rto_seconds if b.id in drills else None,
        )
        for b in backups
        if b.state == "succeeded"
    ]
    return json.dumps(
        {
            "x": [p[0] for p in points],
            "size_mb": [p[1] for p in points],
            "rto": [p[2] for p in points],
        }
    )


@router.get("/backups", response_class=HTMLResponse)
def backups_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Per target: last backup, last drill with RPO and RTO, next due, history and a chart."""
    targets = service.list_targets(db)
    rows = []
    for target in targets:
        status = service.status_of(db, target)
        status["history"] = service.list_backups(db, target, HISTORY)
        status["drills"] = service.list_drills(db, target, 10)
        status["chart"] = _chart(db, target)
        rows.append(status)
    names = {t.name for t in targets}
    missing_builtin = not {service.OPS_TARGET, service.RECORDS_TARGET} <= names
    return render(
        request, "backups/backups.html", {"rows": rows, "missing_builtin": missing_builtin}
    )


@router.post("/backups/builtin")
def add_builtin_form(_who: AdminPage, db: Db) -> Response:
    """Make the desk's own ops database and record store backup targets."""
    service.ensure_builtin_targets(db)
    return RedirectResponse("/backups", status_code=303)


@router.post("/backups/{name}/{action}")
def target_action_form(_who: OperatorPage, db: Db, name: TargetName, action: str) -> Response:
    """Queue a backup (`run`) or a restore drill (`verify`) of the target now."""
    if action not in ("run", "verify"):
        raise HTTPException(404, f"no action {action!r}: run or verify")
    target = _target_or_404(db, name)
    jobs.enqueue(db, f"backups.{action}", {"target": target.name}, max_attempts=1)
    return RedirectResponse("/backups", status_code=303)


@router.get("/api/v1/backups/targets")
def list_targets(_who: Viewer, db: Db) -> list[TargetOut]:
    """Every backup target, its freshness and when it is next due."""
    return [_target_out(db, target) for target in service.list_targets(db)]


@router.post("/api/v1/backups/targets", status_code=201, responses=answers(409))
def add_target(_who: Admin, db: Db, body: TargetIn) -> TargetOut:
    """Register a database to back up (admins: it names files and servers the desk reads)."""
    if any(t.name == body.name for t in service.list_targets(db)):
        raise HTTPException(409, f"a backup target named {body.name!r} exists already")
    try:
        target = service.add_target(
            db,
            body.name,
            body.source_url,
            destination=body.destination,
            every_minutes=body.every_minutes,
            drill_every_minutes=body.drill_every_minutes,
            max_age_minutes=body.max_age_minutes,
            keep=(body.keep_hourly, body.keep_daily, body.keep_weekly),
            continuous=body.continuous,
        )
    except service.BackupInputError as error:
        raise HTTPException(422, str(error)) from None
    return _target_out(db, target)


@router.get("/api/v1/backups/targets/{name}")
def get_target(_who: Viewer, db: Db, name: TargetName) -> TargetOut:
    """One backup target."""
    return _target_out(db, _target_or_404(db, name))


@router.get("/api/v1/backups", responses=answers(404))
def list_backups(
    _who: Viewer,
    db: Db,
    target: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
) -> list[BackupOut]:
    """Backups, newest first (of one target with `target`)."""
    found = _target_or_404(db, target) if target else None
    return [BackupOut.model_validate(b) for b in service.list_backups(db, found, limit)]


@router.get("/api/v1/backups/drills", responses=answers(404))
def list_drills(
    _who: Viewer,
    db: Db,
    target: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 100,
) -> list[DrillOut]:
    """Restore drills with their checks, RPO and RTO, newest first."""
    found = _target_or_404(db, target) if target else None
    return [DrillOut.model_validate(d) for d in service.list_drills(db, found, limit)]


@router.post("/api/v1/backups/targets/{name}/run", status_code=202)
def run_backup(_who: Operator, db: Db, name: TargetName) -> QueuedOut:
    """Queue a backup of the target now; poll the job."""
    target = _target_or_404(db, name)
    job = jobs.enqueue(db, "backups.run", {"target": target.name}, max_attempts=1)
    return QueuedOut(job=job.id, kind=job.kind, target=target.name)


@router.post("/api/v1/backups/targets/{name}/verify", status_code=202)
def verify_backup(_who: Operator, db: Db, name: TargetName) -> QueuedOut:
    """Queue a restore drill of the target's newest backup now; poll the job."""
    target = _target_or_404(db, name)
    job = jobs.enqueue(db, "backups.verify", {"target": target.name}, max_attempts=1)
    return QueuedOut(job=job.id, kind=job.kind, target=target.name)
