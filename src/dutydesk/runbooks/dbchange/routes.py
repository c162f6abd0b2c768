"""Database changes API: targets (admins register and test them), scripts as change requests,
their dry runs and applies. Signoffs go through the change-request API (`/api/v1/changes`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy.orm import Session

from dutydesk.runbooks._web import ChangeId, person
from dutydesk.runbooks.dbchange import service
from dutydesk.runbooks.dbchange.pages import router as pages_router
from dutydesk.runbooks.dbchange.schemas import (
    DbChangeIn,
    DbChangeOut,
    QueuedOut,
    ScriptIn,
    TargetIn,
    TargetOut,
)
from dutydesk.runbooks.models import ChangeRequest
from dutydesk.web.access import Admin, Db, Operator, Viewer
from dutydesk.web.openapi import answers

router = APIRouter()
router.include_router(pages_router)

TargetName = Annotated[str, Path(min_length=1, max_length=100, description="The target's name.")]


def http_error(error: service.DbChangeError) -> HTTPException:
    """The HTTP answer for a refused database-change action, with its reason."""
    return HTTPException(error.status, str(error))


def change_or_404(db: Session, change_id: int) -> ChangeRequest:
    """The database change named in the path, or a 404."""
    try:
        return service.change_of(db, change_id)
    except service.DbChangeError as error:
        raise http_error(error) from None


def change_out(db: Session, change: ChangeRequest) -> DbChangeOut:
    """The full view of a change."""
    db.flush()
    return DbChangeOut.of(change, service.latest_apply(db, change))


@router.get("/api/v1/dbchange/targets")
def list_targets(_who: Viewer, db: Db) -> list[TargetOut]:
    """Every target, passwords redacted."""
    return [TargetOut.of(target) for target in service.list_targets(db)]


@router.post("/api/v1/dbchange/targets", status_code=201, responses=answers(409, 422))
def add_target(who: Admin, db: Db, body: TargetIn) -> TargetOut:
    """Register a target (or change one with `replace`); passwords are stored encrypted."""
    try:
        target = service.save_target(db, actor=who.name, **body.model_dump())
    except service.DbChangeError as error:
        raise http_error(error) from None
    return TargetOut.of(target)


@router.post("/api/v1/dbchange/targets/{name}/test", responses=answers(404))
def test_target(_who: Admin, db: Db, name: TargetName) -> TargetOut:
    """Connect with each login and try a transaction that is rolled back; the outcome is kept
    as the target's last test."""
    try:
        target = service.get_target(db, name)
    except service.DbChangeError as error:
        raise http_error(error) from None
    service.test_target(db, target)
    return TargetOut.of(target)


@router.get("/api/v1/dbchanges")
def list_changes(_who: Viewer, db: Db) -> list[DbChangeOut]:
    """Database changes, newest first (the latest 100)."""
    return [change_out(db, change) for change in service.list_changes(db)]


@router.post("/api/v1/dbchanges", status_code=201, responses=answers(404, 409, 422))
def new_change(who: Operator, db: Db, body: DbChangeIn) -> DbChangeOut:
    """Register a script (its text, or a task path) for a target, as a draft change request."""
    me = person(db, who)
    if (body.script is None) == (body.task is None):
        raise HTTPException(422, "give either the script's text or a task path, not both")
    try:
        target = service.get_target(db, body.target)
        if body.task is not None:
            script, source = service.read_task(body.task)
        else:
            script, source = body.script or "", "pasted"
        change = service.new_change(
            db,
            target=target,
            script=script,
            author=me,
            title=body.title,
            source=source,
            tracker_url=body.tracker_url,
        )
    except service.DbChangeError as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.get("/api/v1/dbchanges/{change_id}", responses=answers(404))
def show_change(_who: Viewer, db: Db, change_id: ChangeId) -> DbChangeOut:
    """One change with its script, latest dry run and apply."""
    return change_out(db, change_or_404(db, change_id))


@router.put("/api/v1/dbchanges/{change_id}/script", responses=answers(404, 409, 422))
def edit_script(who: Operator, db: Db, change_id: ChangeId, body: ScriptIn) -> DbChangeOut:
    """Replace the script: a new version without a dry run; every signoff is dropped."""
    change = change_or_404(db, change_id)
    try:
        service.edit_script(db, change, body.script, person(db, who))
    except service.DbChangeError as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.post(
    "/api/v1/dbchanges/{change_id}/dry-run", status_code=202, responses=answers(404, 409, 422)
)
def dry_run(who: Operator, db: Db, change_id: ChangeId) -> QueuedOut:
    """Queue a dry run: the script in a transaction that is rolled back. Once it ran it is the
    change's evidence (`dry_run`, signoffs on an earlier one are dropped); a failed dry run is
    an outcome too (`dry_run.ok` false)."""
    change = change_or_404(db, change_id)
    try:
        job_id = service.queue_dry_run(db, change, person(db, who))
    except service.DbChangeError as error:
        raise http_error(error) from None
    return QueuedOut(change_id=change.id, job_id=job_id)


@router.post(
    "/api/v1/dbchanges/{change_id}/apply", status_code=202, responses=answers(404, 409, 422)
)
def apply(who: Operator, db: Db, change_id: ChangeId) -> QueuedOut:
    """Queue the apply; refused (409) unless the latest dry run succeeded and is signed off."""
    change = change_or_404(db, change_id)
    try:
        job_id = service.request_apply(db, change, person(db, who))
    except service.DbChangeError as error:
        raise http_error(error) from None
    return QueuedOut(change_id=change.id, job_id=job_id)
