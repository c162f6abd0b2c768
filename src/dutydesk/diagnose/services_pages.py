"""The services to diagnose in the console: listed for everyone signed in, added, edited and
removed by operators through a form with one source a line."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dutydesk import registry
from dutydesk.diagnose import services
from dutydesk.diagnose._service_models import DiagnoseService
from dutydesk.diagnose.service import DiagnoseError
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import AdminPage, Db, ViewerPage
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Services", "/diagnose/services", order=60))
PAGE = "/diagnose/services"
ServiceKey = Annotated[str, Path(min_length=1, max_length=100, description="Name or id.")]
# The form's plain lists: one item a line.
LISTS = ("hosts", "log_sources", "projects", "pipelines")
MAX_FIELD = 20_000


class FormError(ValueError):
    """A form field that cannot be read, with a message naming it."""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def description_from_form(form: dict[str, str]) -> dict[str, Any]:
    """A service description from the form's fields: one host, log source, project or pipeline
    a line; databases as `NAME URL` lines; Supervisors as `SERVER PROCESS...` lines; the
    checklist's lines separated by spaces or commas."""
    for key, value in form.items():
        if len(value) > MAX_FIELD:
            raise FormError(f"{key} is longer than {MAX_FIELD} characters")
    description: dict[str, Any] = {"name": form.get("name", "").strip()}
    for key in LISTS:
        description[key] = _lines(form.get(key, ""))
    databases = []
    for number, line in enumerate(_lines(form.get("databases", "")), 1):
        words = line.split()
        if len(words) != 2:
            raise FormError(f"databases, line {number}: write NAME URL, not {line!r}")
        databases.append({"name": words[0], "url": words[1]})
    description["databases"] = databases
    supervisors = []
    for number, line in enumerate(_lines(form.get("supervisors", "")), 1):
        server, *processes = line.split()
        if not processes:
            raise FormError(f"supervisors, line {number}: write SERVER PROCESS..., not {line!r}")
        supervisors.append({"server": server, "processes": processes})
    description["supervisors"] = supervisors
    checklist = form.get("checklist", "").replace(",", " ").split()
    if checklist:
        description["checklist"] = checklist
    return description


def form_of(found: DiagnoseService) -> dict[str, str]:
    """A service's description as the form's fields (database URLs without their password)."""
    description = services.description_of(found)
    fields = {"name": description["name"]}
    for key in LISTS:
        fields[key] = "\n".join(description[key])
    fields["databases"] = "\n".join(f"{d['name']} {d['url']}" for d in description["databases"])
    fields["supervisors"] = "\n".join(
        " ".join([s["server"], *s["processes"]]) for s in description["supervisors"]
    )
    fields["checklist"] = ", ".join(description["checklist"])
    return fields


def _service(db: Db, key: str) -> DiagnoseService:
    try:
        return services.get_service(db, key)
    except DiagnoseError as error:
        raise HTTPException(404, str(error)) from None


def _form_page(
    request: Request,
    values: dict[str, str],
    *,
    editing: DiagnoseService | None = None,
    error: str = "",
) -> HTMLResponse:
    return render(
        request,
        "diagnose/service_form.html",
        {
            "values": values,
            "editing": editing,
            "error": error,
            "known_lines": services.DEFAULT_CHECKLIST,
        },
        status_code=400 if error else 200,
    )


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    keys = ("name", "databases", "supervisors", "checklist", *LISTS)
    return {key: str(form.get(key) or "") for key in keys}


@router.get(PAGE, response_class=HTMLResponse)
def services_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The services to diagnose with their sources; operators add, edit and run them."""
    found = services.list_services(db)
    return render(
        request,
        "diagnose/services.html",
        {"services": [(item, services.description_of(item)) for item in found]},
    )


@router.get(PAGE + "/new", response_class=HTMLResponse)
def new_service_page(request: Request, _who: AdminPage) -> HTMLResponse:
    """An empty form for a new service (the whole checklist filled in)."""
    return _form_page(request, {"checklist": ", ".join(services.DEFAULT_CHECKLIST)})


@router.post(PAGE, response_class=HTMLResponse)
async def create_service_form(request: Request, who: AdminPage, db: Db) -> Response:
    """Add a service from the form; a wrong field is shown with 400, naming it."""
    values = await _form_fields(request)
    try:
        made = services.create_service(db, description_from_form(values), actor=caller_name(who))
    except (FormError, DiagnoseError) as error:
        return _form_page(request, values, error=str(error))
    return RedirectResponse(f"{PAGE}#service-{made.id}", status_code=303)


@router.get(PAGE + "/{service}/edit", response_class=HTMLResponse)
def edit_service_page(
    request: Request, _who: AdminPage, db: Db, service: ServiceKey
) -> HTMLResponse:
    """The form filled with the service's description (database passwords left out)."""
    found = _service(db, service)
    return _form_page(request, form_of(found), editing=found)


@router.post(PAGE + "/{service}", response_class=HTMLResponse)
async def update_service_form(
    request: Request, _who: AdminPage, db: Db, service: ServiceKey
) -> Response:
    """Replace the service's description from the form; a wrong field is shown with 400."""
    found = _service(db, service)
    values = await _form_fields(request)
    try:
        services.update_service(db, found, description_from_form(values))
    except (FormError, DiagnoseError) as error:
        return _form_page(request, values, editing=found, error=str(error))
    return RedirectResponse(f"{PAGE}#service-{found.id}", status_code=303)


@router.post(PAGE + "/{service}/delete", response_class=HTMLResponse)
def delete_service_form(_who: AdminPage, db: Db, service: ServiceKey) -> Response:
    """Remove the service and its diagnoses."""
    services.delete_service(db, _service(db, service))
    return RedirectResponse(PAGE, status_code=303)
