"""Jobs page and API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.jobs import service
from dutydesk.jobs.models import Job, JobState
from dutydesk.jobs.schemas import JobIn, JobOut
from dutydesk.web.access import Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Jobs", "/jobs", order=800))

StateFilter = Annotated[JobState | None, Query()]
PAGE_SIZE = 50


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    state: StateFilter = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Recent jobs with their state, a page at a time; operators can start one."""
    jobs = service.list_jobs(
        db, state=state, kind=kind or None, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        "jobs/jobs.html",
        {
            "jobs": jobs[:PAGE_SIZE],
            "page": page,
            "has_more": len(jobs) > PAGE_SIZE,
            "counts": service.state_counts(db),
            "kinds": sorted(registry.job_kinds),
            "states": list(JobState),
            "filters": {"state": state.value if state else "", "kind": kind or ""},
        },
    )


@router.post("/jobs")
def run_job_form(
    _who: OperatorPage, db: Db, kind: Annotated[str, Form(max_length=100)]
) -> Response:
    """Queue a job of the chosen kind."""
    try:
        service.enqueue(db, kind)
    except service.JobError as error:
        raise HTTPException(400, str(error)) from None
    return RedirectResponse("/jobs", status_code=303)


@router.get("/api/v1/jobs")
def list_jobs(
    _who: Viewer,
    db: Db,
    state: StateFilter = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    """Recent jobs, newest first."""
    return [
        JobOut.model_validate(job)
        for job in service.list_jobs(db, state=state, kind=kind, limit=limit)
    ]


@router.get("/api/v1/jobs/{job_id}")
def get_job(_who: Viewer, db: Db, job_id: RowId) -> JobOut:
    """One job."""
    job = db.get(Job, job_id)
    if job is None:
        raise HTTPException(404, f"no job with id {job_id}")
    return JobOut.model_validate(job)


@router.post("/api/v1/jobs", status_code=202)
def create_job(_who: Operator, db: Db, body: JobIn) -> JobOut:
    """Queue a job; the answer carries its id to poll."""
    try:
        job = service.enqueue(db, body.kind, body.args)
    except service.JobError as error:
        raise HTTPException(422, str(error)) from None
    return JobOut.model_validate(job)
