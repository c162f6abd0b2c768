"""Supervisor servers in the API and the console: register (admin), list processes with
state, uptime and exit status (viewer), start, stop or restart with a reason (operator), tail
a process's log (operator). Supervisor being unreachable is a 503 naming why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from dutydesk import registry
from dutydesk.diagnose import supervisors
from dutydesk.diagnose.models import SupervisorServer
from dutydesk.diagnose.service import DiagnoseError
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Admin, AdminPage, Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.openapi import answers
from dutydesk.web.params import RowId
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Processes", "/supervisors", order=58))
ProcessName = Annotated[str, Path(max_length=200, description="`group:name` of the process.")]


class ServerIn(BaseModel):
    """A Supervisor to register."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=300, description="http://host:port/RPC2")
    username: str = Field(default="", max_length=100)
    password: str = Field(default="", max_length=200)


class ServerOut(BaseModel):
    """A registered Supervisor (its password never shown)."""

    id: int
    name: str
    url: str
    username: str
    enabled: bool
    last_error: str | None

    @classmethod
    def of(cls, server: SupervisorServer) -> ServerOut:
        """The API's view of a server."""
        return cls(
            id=server.id,
            name=server.name,
            url=server.url,
            username=server.username,
            enabled=server.enabled,
            last_error=server.last_error,
        )


class ProcessOut(BaseModel):
    """A process as Supervisor reports it now."""

    name: str
    state: str
    pid: int
    uptime_seconds: int | None
    exit_status: int | None
    description: str


class ActionIn(BaseModel):
    """Why the action is taken (kept with it and audited)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class ActionOut(BaseModel):
    """An action taken, and what came of it (`done`, or `refused: ...`)."""

    id: int
    process: str
    action: str
    reason: str
    actor: str
    outcome: str


def _server(db: Db, server_id: int) -> SupervisorServer:
    try:
        return supervisors.get_server(db, server_id)
    except DiagnoseError as error:
        raise HTTPException(404, str(error)) from None


def _unreachable(error: supervisors.SupervisorUnreachable) -> HTTPException:
    return HTTPException(503, f"Supervisor cannot be reached: {error}")


@router.get("/api/v1/supervisors")
def list_servers(_who: Viewer, db: Db) -> list[ServerOut]:
    """Every registered Supervisor, without passwords."""
    return [ServerOut.of(server) for server in supervisors.list_servers(db)]


@router.post("/api/v1/supervisors", status_code=201, responses=answers(409))
def create_server(who: Admin, db: Db, body: ServerIn) -> ServerOut:
    """Register a Supervisor by its XML-RPC URL and credentials."""
    try:
        server = supervisors.create_server(db, actor=caller_name(who), **body.model_dump())
    except DiagnoseError as error:
        status = 409 if "exists already" in str(error) else 422
        raise HTTPException(status, str(error)) from None
    return ServerOut.of(server)


@router.get("/api/v1/supervisors/{server_id}/processes", responses=answers(503))
async def list_processes(_who: Viewer, db: Db, server_id: RowId) -> list[ProcessOut]:
    """The server's processes now: state, pid, uptime, exit status."""
    server = _server(db, server_id)
    try:
        found = await run_in_threadpool(supervisors.processes, server)
    except supervisors.SupervisorUnreachable as error:
        raise _unreachable(error) from None
    return [ProcessOut(**vars(view)) for view in found]


@router.post(
    "/api/v1/supervisors/{server_id}/processes/{process}/{action}",
    responses=answers(503),
)
def process_action(
    who: Operator,
    db: Db,
    server_id: RowId,
    process: ProcessName,
    action: Annotated[str, Path(pattern="^(start|stop|restart)$")],
    body: ActionIn,
) -> ActionOut:
    """Start, stop or restart a process with a reason; the answer says what Supervisor did."""
    server = _server(db, server_id)
    try:
        done = supervisors.act(
            db, server, process, action, reason=body.reason, actor=caller_name(who)
        )
    except DiagnoseError as error:
        raise HTTPException(422, str(error)) from None
    except supervisors.SupervisorUnreachable as error:
        raise _unreachable(error) from None
    return ActionOut(
        id=done.id,
        process=done.process,
        action=done.action,
        reason=done.reason,
        actor=done.actor,
        outcome=done.outcome,
    )


@router.get(
    "/api/v1/supervisors/{server_id}/logs/{process}",
    response_class=PlainTextResponse,
    responses=answers(503),
)
async def process_log(
    _who: Operator,
    db: Db,
    server_id: RowId,
    process: ProcessName,
    stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
    length: Annotated[int, Query(ge=1, le=supervisors.MAX_TAIL_BYTES)] = 8192,
) -> PlainTextResponse:
    """The end of a process's stdout or stderr log."""
    server = _server(db, server_id)
    try:
        text = await run_in_threadpool(supervisors.tail, server, process, length, stream)
    except DiagnoseError as error:
        raise HTTPException(422, str(error)) from None
    except supervisors.SupervisorUnreachable as error:
        raise _unreachable(error) from None
    except supervisors.SupervisorFault as error:
        raise HTTPException(404, str(error)) from None
    return PlainTextResponse(text)


@router.get("/supervisors", response_class=HTMLResponse)
def servers_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The registered Supervisors and, for admins, a form to add one."""
    return _servers_page(request, db)


def _servers_page(
    request: Request, db: Db, status_code: int = 200, error: str = ""
) -> HTMLResponse:
    return render(
        request,
        "diagnose/supervisors.html",
        {"servers": supervisors.list_servers(db), "error": error},
        status_code=status_code,
    )


@router.post("/supervisors", response_class=HTMLResponse)
async def create_server_form(request: Request, who: AdminPage, db: Db) -> Response:
    """Register a Supervisor from the form; a wrong one is shown with 400."""
    form = await request.form()
    fields = {key: str(form.get(key) or "") for key in ("name", "url", "username", "password")}
    try:
        supervisors.create_server(db, actor=caller_name(who), **fields)
    except DiagnoseError as error:
        return _servers_page(request, db, 400, str(error))
    return RedirectResponse("/supervisors", status_code=303)


@router.get("/supervisors/{server_id}", response_class=HTMLResponse)
async def server_page(request: Request, _who: ViewerPage, db: Db, server_id: RowId) -> HTMLResponse:
    """A Supervisor's processes now, the actions taken on them and, for operators, buttons."""
    server = _server(db, server_id)
    error = ""
    found: list[supervisors.ProcessView] = []
    try:
        found = await run_in_threadpool(supervisors.processes, server)
    except supervisors.SupervisorUnreachable as problem:
        error = f"Supervisor cannot be reached: {problem}"
    return render(
        request,
        "diagnose/supervisor.html",
        {
            "server": server,
            "processes": found,
            "error": error,
            "actions": supervisors.recent_actions(db, server.id),
        },
    )


@router.post("/supervisors/{server_id}/processes/{process}/{action}", response_class=HTMLResponse)
async def process_action_form(
    request: Request,
    who: OperatorPage,
    db: Db,
    server_id: RowId,
    process: ProcessName,
    action: Annotated[str, Path(pattern="^(start|stop|restart)$")],
) -> Response:
    """Start, stop or restart from the page; the reason field is required."""
    server = _server(db, server_id)
    form = await request.form()
    try:
        supervisors.act(
            db,
            server,
            process,
            action,
            reason=str(form.get("reason") or ""),
            actor=caller_name(who),
        )
    except (DiagnoseError, supervisors.SupervisorUnreachable) as error:
        raise HTTPException(400 if isinstance(error, DiagnoseError) else 503, str(error)) from None
    return RedirectResponse(f"/supervisors/{server.id}", status_code=303)


@router.get("/supervisors/{server_id}/logs/{process}", response_class=HTMLResponse)
async def process_log_page(
    request: Request,
    _who: OperatorPage,
    db: Db,
    server_id: RowId,
    process: ProcessName,
    stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
) -> HTMLResponse:
    """The end of a process's log (operators: logs can hold what viewers should not see)."""
    server = _server(db, server_id)
    try:
        text = await run_in_threadpool(supervisors.tail, server, process, 16_384, stream)
    except DiagnoseError as error:
        raise HTTPException(400, str(error)) from None
    except supervisors.SupervisorUnreachable as error:
        raise _unreachable(error) from None
    except supervisors.SupervisorFault as error:
        raise HTTPException(404, str(error)) from None
    return render(
        request,
        "diagnose/process_log.html",
        {"server": server, "process": process, "stream": stream, "text": text},
    )
