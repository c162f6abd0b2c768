"""Processes under Supervisor: servers registered with their XML-RPC URL, processes listed
with state, uptime and exit status, started and stopped with a reason, logs tailed, and a poll
that turns FATAL, BACKOFF and unexpected exits into signals.

Functions take a session and never commit; the request, job or command owns the transaction.
A poll asks Supervisor before it writes anything, so no write lock waits on the network; an
action (start, stop, restart) runs inside its request's transaction and waits for Supervisor.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.service import Signal, land_signal
from dutydesk.db import utcnow
from dutydesk.diagnose._xmlrpc import SupervisorClient, SupervisorFault, SupervisorUnreachable
from dutydesk.diagnose.models import SupervisedProcess, SupervisorAction, SupervisorServer
from dutydesk.diagnose.service import NAME_PATTERN, DiagnoseError
from dutydesk.idents import as_id

SOURCE = "supervisor"
ACTIONS = ("start", "stop", "restart")
PROCESS_NAME = re.compile(r"[A-Za-z0-9_.\-]+(:[A-Za-z0-9_.\-]+)?")
MAX_TAIL_BYTES = 65_536
# What a watched state means, and how bad it is.
TROUBLE = {"FATAL": "high", "BACKOFF": "warning", "EXITED": "high"}

__all__ = ["SupervisorFault", "SupervisorUnreachable"]


def create_server(
    session: Session, *, name: str, url: str, username: str, password: str, actor: str
) -> SupervisorServer:
    """Register a Supervisor by its XML-RPC URL (`http://host:port/RPC2`)."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise DiagnoseError(
            "a server name is 1 to 100 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise DiagnoseError(
            "the URL must be http(s)://host:port/RPC2, without credentials in it "
            "(give them as username and password)"
        )
    if len(url) > 300 or len(username) > 100 or len(password) > 200:
        raise DiagnoseError("URL, username or password too long (300, 100, 200 characters)")
    if session.scalar(select(SupervisorServer.id).where(SupervisorServer.name == name)):
        raise DiagnoseError(f"a Supervisor server named {name!r} exists already")
    server = SupervisorServer(
        name=name, url=url.strip(), username=username, password=password, created_by=actor
    )
    session.add(server)
    session.flush()
    return server


def list_servers(session: Session) -> list[SupervisorServer]:
    """Every registered Supervisor, by name."""
    return list(session.scalars(select(SupervisorServer).order_by(SupervisorServer.name)))


def get_server(session: Session, ident: str | int) -> SupervisorServer:
    """A server by id or name."""
    text = str(ident)
    if text.isascii() and text.isdigit():
        number = as_id(text)
        found = session.get(SupervisorServer, number) if number is not None else None
    else:
        found = session.scalar(select(SupervisorServer).where(SupervisorServer.name == text))
    if found is None:
        raise DiagnoseError(f"no Supervisor server {text[:100]!r}")
    return found


def client_of(server: SupervisorServer) -> SupervisorClient:
    """An XML-RPC client of the server, with its credentials."""
    return SupervisorClient(server.url, server.username, server.password)


@dataclass(frozen=True)
class ProcessView:
    """A process as the pages show it."""

    name: str
    state: str
    pid: int
    uptime_seconds: int | None
    exit_status: int | None
    description: str


def _full_name(info: dict[str, Any]) -> str:
    return f"{info.get('group')}:{info.get('name')}"


def view_of(info: dict[str, Any]) -> ProcessView:
    """State, uptime (while running) and exit status (once exited) of one process."""
    state = str(info.get("statename", "UNKNOWN"))
    running = state == "RUNNING" and info.get("start")
    return ProcessView(
        name=_full_name(info),
        state=state,
        pid=int(info.get("pid") or 0),
        uptime_seconds=int(info["now"]) - int(info["start"]) if running else None,
        exit_status=int(info.get("exitstatus", 0)) if state in ("EXITED", "FATAL") else None,
        description=str(info.get("description", "")),
    )


def processes(server: SupervisorServer) -> list[ProcessView]:
    """The server's processes as Supervisor reports them now."""
    return [view_of(info) for info in client_of(server).processes()]


def check_process_name(name: str) -> str:
    """`name` when it can name a Supervisor process (`group:name` or `name`)."""
    if not PROCESS_NAME.fullmatch(name) or len(name) > 200:
        raise DiagnoseError(f"{name[:200]!r} is not a Supervisor process name (group:name)")
    return name


def act(
    session: Session,
    server: SupervisorServer,
    process: str,
    action: str,
    *,
    reason: str,
    actor: str,
) -> SupervisorAction:
    """Start, stop or restart a process, with a reason; the action and its outcome are kept
    (and audited) whether Supervisor did it or refused."""
    if action not in ACTIONS:
        raise DiagnoseError(f"action must be one of {', '.join(ACTIONS)}")
    reason = reason.strip()
    if not reason:
        raise DiagnoseError("say why: a reason is required")
    check_process_name(process)
    client = client_of(server)
    outcome = "done"
    try:
        if action in ("stop", "restart"):
            try:
                client.stop(process)
            except SupervisorFault as fault:
                if not (action == "restart" and fault.name == "NOT_RUNNING"):
                    raise
        if action in ("start", "restart"):
            client.start(process)
    except SupervisorFault as fault:
        outcome = f"refused: {fault}"
    record = SupervisorAction(
        server_id=server.id,
        process=process,
        action=action,
        reason=reason[:2000],
        actor=actor,
        at=utcnow(),
        outcome=outcome,
    )
    session.add(record)
    session.flush()
    return record


def tail(server: SupervisorServer, process: str, length: int, stream: str = "stdout") -> str:
    """The last `length` bytes (at most 64 KiB) of a process's stdout or stderr log."""
    check_process_name(process)
    if stream not in ("stdout", "stderr"):
        raise DiagnoseError("stream must be stdout or stderr")
    return client_of(server).tail(process, max(1, min(length, MAX_TAIL_BYTES)), stream)


def recent_actions(session: Session, server_id: int, limit: int = 20) -> list[SupervisorAction]:
    """The newest actions asked of a server's processes."""
    return list(
        session.scalars(
            select(SupervisorAction)
            .where(SupervisorAction.server_id == server_id)
            .order_by(SupervisorAction.id.desc())
            .limit(limit)
        )
    )


@dataclass
class PollResult:
    """What one poll of one server did."""

    processes: int = 0
    fired: int = 0
    resolved: int = 0
    error: str | None = None


def _trouble(info: dict[str, Any], expected: dict[str, set[int]]) -> str | None:
    """Why a process's state is a problem, or None: FATAL, BACKOFF, or EXITED with a status
    its program does not expect (its `exitcodes`)."""
    state = str(info.get("statename"))
    name = _full_name(info)
    if state == "FATAL":
        return f"{name} is FATAL: {info.get('spawnerr') or 'it could not be started'}"
    if state == "BACKOFF":
        return f"{name} is in BACKOFF: it exited too quickly and Supervisor is retrying"
    status = int(info.get("exitstatus", 0))
    if state == "EXITED" and status not in expected.get(name, {0}):
        return f"{name} EXITED unexpectedly with status {status}"
    return None


def poll(session: Session, server: SupervisorServer) -> PollResult:
    """Ask the server for its processes; a process entering FATAL, BACKOFF or an unexpected
    EXITED raises its alarm, and the alarm resolves once it runs again. An unreachable server
    raises an alarm of its own."""
    result = PollResult()
    now = utcnow()
    reach = f"supervisor:{server.name}"
    try:
        client = client_of(server)
        infos = client.processes()
        expected = {
            f"{c.get('group')}:{c.get('name')}": {int(code) for code in c.get("exitcodes", [0])}
            for c in client.config()
        }
    except (SupervisorUnreachable, SupervisorFault) as error:
        server.last_polled_at, server.last_error = now, str(error)[:2000]
        land_signal(
            session, _signal(reach, f"Supervisor {server.name} is unreachable", str(error), now)
        )
        result.error = str(error)
        return result
    if server.last_error is not None:
        land_signal(
            session,
            _signal(reach, f"Supervisor {server.name} is unreachable", "", now, resolved=True),
        )
    server.last_polled_at, server.last_error = now, None
    known = {
        row.name: row
        for row in session.scalars(
            select(SupervisedProcess).where(SupervisedProcess.server_id == server.id)
        )
    }
    for info in infos:
        name = _full_name(info)
        state = str(info.get("statename"))
        row = known.pop(name, None)
        was = row.state if row is not None else None
        started = int(info.get("start") or 0)
        fingerprint = f"supervisor:{server.name}:{name}"
        why = _trouble(info, expected)
        changed = was != state or (row is not None and row.started != started)
        if why is not None and changed:
            severity = TROUBLE.get(state, "warning")
            land_signal(
                session, _signal(fingerprint, why, _evidence(server, info), now, severity=severity)
            )
            result.fired += 1
        elif why is None and state == "RUNNING" and was in TROUBLE:
            land_signal(session, _signal(fingerprint, f"{name} is running", "", now, resolved=True))
            result.resolved += 1
        if row is None:
            row = SupervisedProcess(server_id=server.id, name=name)
            session.add(row)
        row.state, row.pid, row.started = state, int(info.get("pid") or 0), started
        row.exit_status, row.seen_at = int(info.get("exitstatus", 0)), now
        result.processes += 1
    for gone in known.values():
        session.delete(gone)
    session.flush()
    return result


def _evidence(server: SupervisorServer, info: dict[str, Any]) -> str:
    return (
        f"Supervisor {server.name}: {_full_name(info)} {info.get('statename')}, "
        f"exit status {info.get('exitstatus')}, {info.get('description') or ''}"
    )


def _signal(
    fingerprint: str,
    title: str,
    description: str,
    at: dt.datetime,
    *,
    severity: str = "warning",
    resolved: bool = False,
) -> Signal:
    return Signal(
        source=SOURCE,
        fingerprint=fingerprint,
        title=title,
        severity=severity,
        description=description,
        labels={"supervisor": fingerprint.split(":")[1]},
        occurred_at=at,
        resolved=resolved,
    )


def poll_all(session: Session) -> dict[str, int]:
    """Poll every enabled server; one that cannot be reached does not stop the others."""
    totals = {"servers": 0, "fired": 0, "resolved": 0, "unreachable": 0}
    for server in list_servers(session):
        if not server.enabled:
            continue
        result = poll(session, server)
        totals["servers"] += 1
        totals["fired"] += result.fired
        totals["resolved"] += result.resolved
        totals["unreachable"] += result.error is not None
    return totals
