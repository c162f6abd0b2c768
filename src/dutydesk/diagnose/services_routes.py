"""Services to diagnose in the API and the console: list them (viewer), add, edit and remove
them (operator), run a service's checklist (operator; for a ticket, the result becomes its
note), read a diagnosis (viewer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.diagnose import checks, services
from dutydesk.diagnose._service_models import DiagnoseService, Diagnosis
from dutydesk.diagnose.service import DiagnoseError
from dutydesk.tickets._web import caller_name
from dutydesk.tickets.models import Ticket
from dutydesk.tickets.service import TicketError
from dutydesk.web.access import Admin, Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.openapi import answers
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

router = APIRouter()


@registry.ticket_page("diagnose")
def ticket_page_services(session: Session, ticket: Ticket) -> dict[str, Any]:
    """The ticket page's Diagnose form: every service, the one the ticket names chosen."""
    names = [service.name for service in services.list_services(session)]
    guess = services.guess_service(names, ticket.title, ticket.source, ticket.payload)
    return {"diagnose_services": names, "diagnose_guess": guess}


class ServiceOut(BaseModel):
    """A service to diagnose: its sources and checklist (database passwords never shown)."""

    id: int
    name: str
    config: dict[str, Any]

    @classmethod
    def of(cls, found: DiagnoseService) -> ServiceOut:
        """The API's view of a service."""
        return cls(id=found.id, name=found.name, config=found.config)


Names = Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=200)]


class DatabaseIn(BaseModel):
    """A PostgreSQL database the database line reads (read only)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=100)
    url: str = Field(
        min_length=1,
        max_length=1000,
        description="postgresql://user:password@host:port/db; on an edit, a URL without a "
        "password keeps the one stored for this database's name.",
    )


class SupervisorIn(BaseModel):
    """A registered Supervisor server and the service's processes on it."""

    model_config = ConfigDict(extra="forbid")

    server: str = Field(min_length=1, max_length=100)
    processes: Names = Field(default_factory=list, description="group:name; empty: every one.")


class ServiceIn(BaseModel):
    """A service's description: the same keys as the YAML file `dutydesk diagnose service-add`
    reads."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    hosts: Names = Field(default_factory=list, description="Label values of the hosts' series.")
    databases: list[DatabaseIn] = Field(default_factory=list, max_length=50)
    log_sources: Names = Field(default_factory=list, description="Globs under the log roots.")
    projects: Names = Field(default_factory=list, description="Exception projects.")
    pipelines: Names = Field(default_factory=list, description="CI integrations by name.")
    supervisors: list[SupervisorIn] = Field(default_factory=list, max_length=50)
    checklist: Names | None = Field(
        default=None, description="Line names in their order; omitted: the whole checklist."
    )

    def description(self) -> dict[str, Any]:
        """The description as `services.create_service` reads it."""
        return self.model_dump(exclude_none=True)


def _refused(error: DiagnoseError) -> HTTPException:
    """A refused description: 409 when the name is taken, else 422 naming what is wrong."""
    return HTTPException(409 if "exists already" in str(error) else 422, str(error))


class EvidenceOut(BaseModel):
    """One fact behind a verdict, with a link when there is one."""

    text: str
    link: str | None


class LineOut(BaseModel):
    """One checklist line: its verdict (ok, unusual, failing, unknown) and evidence."""

    key: str
    title: str
    verdict: str
    evidence: list[EvidenceOut]


class DiagnosisOut(BaseModel):
    """A diagnosis: each line of the service's checklist as it was found."""

    id: int
    service: str
    ticket_id: int | None
    actor: str
    at: str
    lines: list[LineOut]

    @classmethod
    def of(cls, kept: Diagnosis, service_name: str) -> DiagnosisOut:
        """The API's view of a diagnosis."""
        return cls(
            id=kept.id,
            service=service_name,
            ticket_id=kept.ticket_id,
            actor=kept.actor,
            at=kept.at.isoformat(),
            lines=[LineOut(**line) for line in kept.lines],
        )


def _service(db: Db, key: str) -> DiagnoseService:
    try:
        return services.get_service(db, key)
    except DiagnoseError as error:
        raise HTTPException(404, str(error)) from None


def _diagnosis(db: Db, diagnosis_id: int) -> tuple[Diagnosis, DiagnoseService]:
    kept = db.get(Diagnosis, diagnosis_id)
    if kept is None:
        raise HTTPException(404, f"no diagnosis {diagnosis_id}")
    found = db.get(DiagnoseService, kept.service_id)
    assert found is not None  # the foreign key cascades
    return kept, found


@router.get("/api/v1/diagnose/services")
def list_services(_who: Viewer, db: Db) -> list[ServiceOut]:
    """Every service to diagnose."""
    return [ServiceOut.of(found) for found in services.list_services(db)]


ServiceKey = Annotated[str, Path(min_length=1, max_length=100, description="Name or id.")]


@router.post("/api/v1/diagnose/services", status_code=201, responses=answers(409, 422))
def create_service(who: Admin, db: Db, body: ServiceIn) -> ServiceOut:
    """Add a service to diagnose; 409 when its name is taken, 422 naming a wrong field."""
    try:
        return ServiceOut.of(
            services.create_service(db, body.description(), actor=caller_name(who))
        )
    except DiagnoseError as error:
        raise _refused(error) from None


@router.get("/api/v1/diagnose/services/{service}", responses=answers(404))
def get_service(_who: Viewer, db: Db, service: ServiceKey) -> ServiceOut:
    """One service with its sources and checklist."""
    return ServiceOut.of(_service(db, service))


@router.put("/api/v1/diagnose/services/{service}", responses=answers(404, 409, 422))
def update_service(_who: Admin, db: Db, service: ServiceKey, body: ServiceIn) -> ServiceOut:
    """Replace a service's description; a database URL without a password keeps the stored one."""
    found = _service(db, service)
    try:
        return ServiceOut.of(services.update_service(db, found, body.description()))
    except DiagnoseError as error:
        raise _refused(error) from None


@router.delete("/api/v1/diagnose/services/{service}", status_code=204, responses=answers(404))
def delete_service(_who: Admin, db: Db, service: ServiceKey) -> Response:
    """Remove a service and its diagnoses (their notes on tickets stay)."""
    services.delete_service(db, _service(db, service))
    return Response(status_code=204)


@router.post("/api/v1/diagnose/services/{service}/run", status_code=201, responses=answers(404))
def run_service(
    who: Operator,
    db: Db,
    service: Annotated[str, Path(min_length=1, max_length=100, description="Name or id.")],
    ticket: Annotated[str | None, Query(max_length=40, description="Ticket key or id.")] = None,
) -> DiagnosisOut:
    """Run the service's checklist; with `ticket`, keep the result as the ticket's note."""
    found = _service(db, service)
    try:
        kept, _ = checks.diagnose(db, found, actor=caller_name(who), ticket_key=ticket)
    except TicketError as error:
        raise HTTPException(404, str(error)) from None
    return DiagnosisOut.of(kept, found.name)


@router.get("/api/v1/diagnoses/{diagnosis_id}", responses=answers(404))
def get_diagnosis(_who: Viewer, db: Db, diagnosis_id: RowId) -> DiagnosisOut:
    """One diagnosis with each line's verdict and evidence."""
    kept, found = _diagnosis(db, diagnosis_id)
    return DiagnosisOut.of(kept, found.name)


@router.get("/diagnoses/{diagnosis_id}", response_class=HTMLResponse)
def diagnosis_page(request: Request, _who: ViewerPage, db: Db, diagnosis_id: RowId) -> HTMLResponse:
    """A diagnosis as a page: a verdict per line with its evidence and links."""
    kept, found = _diagnosis(db, diagnosis_id)
    return render(
        request,
        "diagnose/diagnosis.html",
        {"diagnosis": kept, "service": found, "lines": checks.lines_of(kept)},
    )


@router.post("/diagnose", response_class=HTMLResponse)
async def run_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """The ticket page's Diagnose button: run the named service's checklist for the ticket."""
    form = await request.form()
    key = str(form.get("service") or "").strip()
    ticket = str(form.get("ticket") or "").strip() or None
    if not key or len(key) > 100:
        raise HTTPException(400, "name the service to diagnose")
    try:
        found = services.get_service(db, key)
    except DiagnoseError as error:
        raise HTTPException(400, str(error)) from None
    try:
        kept, _ = await run_in_threadpool(
            checks.diagnose, db, found, actor=caller_name(who), ticket_key=ticket
        )
    except TicketError as error:
        raise HTTPException(400, str(error)) from None
    return RedirectResponse(f"/diagnoses/{kept.id}", status_code=303)
