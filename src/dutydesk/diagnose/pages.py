"""The Exceptions console: groups with counts and first and last seen, one group with its
newest events' stack traces, and the projects (admins make them and see their DSNs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dutydesk import registry
from dutydesk.diagnose import service
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import AdminPage, Db, Need, ViewerPage
from dutydesk.web.params import INT32_MAX, Page, RowId
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Exceptions", "/exceptions", order=57))
PAGE_SIZE = 50


@router.get("/exceptions", response_class=HTMLResponse)
def groups_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    project: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    page: Page = 1,
) -> HTMLResponse:
    """Exception groups, the most recently seen first."""
    rows = service.list_groups(
        db, project_id=project, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        "diagnose/groups.html",
        {"rows": rows[:PAGE_SIZE], "more": len(rows) > PAGE_SIZE, "page": page},
    )


@router.get("/exceptions/projects", response_class=HTMLResponse)
def projects_page(request: Request, who: ViewerPage, db: Db) -> HTMLResponse:
    """The exception projects and, for admins, their DSNs and a form to make one."""
    return _projects_page(request, db, admin=who.may(Need.admin))


def _projects_page(
    request: Request, db: Db, *, admin: bool, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    projects = service.list_projects(db)
    dsns = {project.id: service.dsn(project) for project in projects} if admin else {}
    return render(
        request,
        "diagnose/projects.html",
        {"projects": projects, "dsns": dsns, **extra},
        status_code=status_code,
    )


@router.post("/exceptions/projects", response_class=HTMLResponse)
async def create_project_form(request: Request, who: AdminPage, db: Db) -> Response:
    """Make a project from the form; a wrong name is shown with 400."""
    form = await request.form()
    name = str(form.get("name") or "")
    try:
        service.create_project(db, name=name, actor=caller_name(who))
    except service.DiagnoseError as error:
        return _projects_page(request, db, admin=True, status_code=400, error=str(error))
    return RedirectResponse("/exceptions/projects", status_code=303)


@router.get("/exceptions/{group_id}", response_class=HTMLResponse)
def group_page(request: Request, _who: ViewerPage, db: Db, group_id: RowId) -> HTMLResponse:
    """One group with its newest events: stack traces, breadcrumbs and tags."""
    try:
        group = service.get_group(db, group_id)
    except service.DiagnoseError as error:
        raise HTTPException(404, str(error)) from None
    project = service.get_project(db, group.project_id)
    return render(
        request,
        "diagnose/group.html",
        {
            "group": group,
            "project": project,
            "events": service.latest_events(db, group.id),
            "newest_release": service.newest_release(db, group.project_id),
        },
    )
