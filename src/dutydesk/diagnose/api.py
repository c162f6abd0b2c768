"""Diagnose API: exception projects (list, make) and exception groups (list, one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from dutydesk.diagnose import service
from dutydesk.diagnose.schemas import EventOut, GroupDetailOut, GroupOut, ProjectIn, ProjectOut
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Admin, Db, Need, Viewer
from dutydesk.web.openapi import answers
from dutydesk.web.params import INT32_MAX, Offset, RowId

router = APIRouter()


@router.get("/api/v1/exception-projects")
def list_projects(who: Viewer, db: Db) -> list[ProjectOut]:
    """Every exception project; admins also see each one's DSN."""
    admin = who.may(Need.admin)
    return [
        ProjectOut.of(project, service.dsn(project) if admin else None)
        for project in service.list_projects(db)
    ]


@router.post("/api/v1/exception-projects", status_code=201, responses=answers(409))
def create_project(who: Admin, db: Db, body: ProjectIn) -> ProjectOut:
    """Make an exception project; the answer holds its DSN for the SDK's configuration."""
    try:
        project = service.create_project(db, actor=caller_name(who), **body.model_dump())
    except service.DiagnoseError as error:
        raise HTTPException(409, str(error)) from None
    return ProjectOut.of(project, service.dsn(project))


@router.get("/api/v1/exception-groups")
def list_groups(
    _who: Viewer,
    db: Db,
    project: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[GroupOut]:
    """Exception groups, the most recently seen first (of one project with `project`)."""
    rows = service.list_groups(db, project_id=project, limit=limit, offset=offset)
    return [GroupOut.of(row.group, row.project, row.new_in_release) for row in rows]


@router.get("/api/v1/exception-groups/{group_id}")
def get_group(_who: Viewer, db: Db, group_id: RowId) -> GroupDetailOut:
    """One exception group with its newest events (stack traces, breadcrumbs, tags)."""
    try:
        group = service.get_group(db, group_id)
    except service.DiagnoseError as error:
        raise HTTPException(404, str(error)) from None
    project = service.get_project(db, group.project_id)
    newest = service.newest_release(db, group.project_id)
    fresh = group.first_release is not None and group.first_release == newest
    return GroupDetailOut(
        **GroupOut.of(group, project.name, fresh).model_dump(),
        events=[EventOut.of(event) for event in service.latest_events(db, group.id)],
    )
