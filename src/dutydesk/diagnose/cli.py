"""`dutydesk diagnose SERVICE` runs a service's debug checklist; `dutydesk diagnose COMMAND`
manages what it reads: exception projects and groups, Supervisors, services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from dutydesk.commandline import cli_actor, fail, ready_database

if TYPE_CHECKING:
    from typer._click import Command, Context

RUN = "run"


class DiagnoseGroup(TyperGroup):
    """`dutydesk diagnose`: a first word that is not one of its commands is a service's name,
    and the group runs `run` with it (`dutydesk diagnose shop` is `dutydesk diagnose run shop`).
    """

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        """The command the first word names or, for any other word, `run` given every word."""
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            return RUN, self.get_command(ctx, RUN), args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=DiagnoseGroup,
    rich_markup_mode=None,
    help="Diagnose SERVICE; exceptions, processes, scrapes.\n\n"
    "`dutydesk diagnose SERVICE [--ticket KEY]` runs the service's checklist (the same as "
    "`dutydesk diagnose run SERVICE`): a verdict per line with its evidence. A service named "
    "like one of the commands below is reached with `dutydesk diagnose run NAME`.",
    subcommand_metavar="SERVICE [--ticket KEY] | COMMAND [ARGS]...",
    no_args_is_help=True,
)


@app.command("project-add")
def project_add(
    name: Annotated[str, typer.Argument(help="Unique name (lowercase, digits, . _ -).")],
    rate_limit: Annotated[int, typer.Option(min=1, help="Requests per window.")] = 600,
    rate_window: Annotated[int, typer.Option(min=1, max=86_400, help="Window in seconds.")] = 60,
) -> None:
    """Make an exception project and print its DSN for the Sentry SDK."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import service

    try:
        with transaction(actor=cli_actor()) as session:
            project = service.create_project(
                session,
                name=name,
                actor=cli_actor(),
                rate_limit=rate_limit,
                rate_window_seconds=rate_window,
            )
            typer.echo(f"made exception project {project.name} (id {project.id})")
            typer.echo(f"dsn: {service.dsn(project)}")
    except service.DiagnoseError as error:
        raise fail(str(error)) from None


@app.command("projects")
def projects() -> None:
    """List exception projects with their DSNs."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import service

    with transaction() as session:
        for project in service.list_projects(session):
            state = "enabled" if project.enabled else "disabled"
            typer.echo(f"{project.id:<4} {project.name:<24} {state:<8} {service.dsn(project)}")


@app.command("groups")
def groups(
    project: Annotated[str | None, typer.Option(help="Project name or id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List exception groups, the most recently seen first: id, count, last seen, title."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import service

    try:
        with transaction() as session:
            project_id = service.get_project(session, project).id if project else None
            for row in service.list_groups(session, project_id=project_id, limit=limit):
                group = row.group
                new = "  NEW" if row.new_in_release else ""
                typer.echo(
                    f"{group.id:<5} {group.count:>6}  {group.last_seen:%Y-%m-%d %H:%M}  "
                    f"{row.project:<16} {group.title}{new}"
                )
    except service.DiagnoseError as error:
        raise fail(str(error)) from None


@app.command("supervisor-add")
def supervisor_add(
    name: Annotated[str, typer.Argument(help="Unique name (lowercase, digits, . _ -).")],
    url: Annotated[str, typer.Argument(help="XML-RPC URL: http://host:port/RPC2.")],
    username: Annotated[str, typer.Option(help="Supervisor's inet_http_server username.")] = "",
    password_file: Annotated[
        typer.FileText | None, typer.Option(help="File whose first line is the password.")
    ] = None,
) -> None:
    """Register a Supervisor (the password is read from a file, never from the command line)."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import supervisors
    from dutydesk.diagnose.service import DiagnoseError

    password = password_file.readline().rstrip("\n") if password_file else ""
    try:
        with transaction(actor=cli_actor()) as session:
            server = supervisors.create_server(
                session, name=name, url=url, username=username, password=password, actor=cli_actor()
            )
            typer.echo(f"registered Supervisor {server.name} (id {server.id})")
    except DiagnoseError as error:
        raise fail(str(error)) from None


@app.command("supervisor-processes")
def supervisor_processes(
    server: Annotated[str, typer.Argument(help="Server name or id.")],
) -> None:
    """List a Supervisor's processes: name, state, pid, uptime, exit status."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import supervisors
    from dutydesk.diagnose.service import DiagnoseError

    try:
        with transaction() as session:
            found = supervisors.processes(supervisors.get_server(session, server))
    except (DiagnoseError, supervisors.SupervisorUnreachable) as error:
        raise fail(str(error)) from None
    for process in found:
        uptime = f"up {process.uptime_seconds} s" if process.uptime_seconds is not None else ""
        status = f"exit {process.exit_status}" if process.exit_status is not None else ""
        typer.echo(
            f"{process.name:<32} {process.state:<9} {process.pid or '':<7} {uptime} {status}"
        )


def _act(server: str, process: str, action: str, reason: str) -> None:
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import supervisors
    from dutydesk.diagnose.service import DiagnoseError

    try:
        with transaction(actor=cli_actor()) as session:
            done = supervisors.act(
                session,
                supervisors.get_server(session, server),
                process,
                action,
                reason=reason,
                actor=cli_actor(),
            )
    except (DiagnoseError, supervisors.SupervisorUnreachable) as error:
        raise fail(str(error)) from None
    typer.echo(f"{action} {process}: {done.outcome}")
    if done.outcome != "done":
        raise typer.Exit(1)


Server = Annotated[str, typer.Argument(help="Server name or id.")]
Process = Annotated[str, typer.Argument(help="Process as group:name.")]
Reason = Annotated[str, typer.Option(help="Why (kept with the action and audited).")]


@app.command("supervisor-start")
def supervisor_start(server: Server, process: Process, reason: Reason) -> None:
    """Start a process, with a reason."""
    _act(server, process, "start", reason)


@app.command("supervisor-stop")
def supervisor_stop(server: Server, process: Process, reason: Reason) -> None:
    """Stop a process, with a reason."""
    _act(server, process, "stop", reason)


@app.command("supervisor-restart")
def supervisor_restart(server: Server, process: Process, reason: Reason) -> None:
    """Restart a process (stop if running, then start), with a reason."""
    _act(server, process, "restart", reason)


@app.command("supervisor-tail")
def supervisor_tail(
    server: Server,
    process: Process,
    stderr: Annotated[bool, typer.Option(help="The stderr log instead of stdout.")] = False,
    length: Annotated[int, typer.Option(min=1, max=65_536, help="Bytes from the end.")] = 8192,
) -> None:
    """Print the end of a process's log."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import supervisors
    from dutydesk.diagnose.service import DiagnoseError

    stream = "stderr" if stderr else "stdout"
    try:
        with transaction() as session:
            found = supervisors.get_server(session, server)
        typer.echo(supervisors.tail(found, process, length, stream), nl=False)
    except (DiagnoseError, supervisors.SupervisorUnreachable, supervisors.SupervisorFault) as error:
        raise fail(str(error)) from None


@app.command("supervisor-poll")
def supervisor_poll() -> None:
    """Poll every enabled Supervisor now (the beat does it every poll interval)."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import supervisors

    with transaction(immediate=True, actor=cli_actor()) as session:
        totals = supervisors.poll_all(session)
    typer.echo(", ".join(f"{key}: {value}" for key, value in totals.items()))


@app.command("supervisor-expect")
def supervisor_expect(
    server: Server,
    process: Process,
    state: Annotated[str, typer.Argument(help="The state to wait for: STOPPED, RUNNING, ...")],
    within: Annotated[float, typer.Option(min=0, max=600, help="Seconds to wait.")] = 30.0,
) -> None:
    """Wait until a process is in `state`; exit 1 (saying its state) when it is not in time.
    A failover checklist's "confirm stopped" and "check" steps."""
    import time

    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import supervisors
    from dutydesk.diagnose.service import DiagnoseError

    wanted = state.strip().upper()
    deadline = time.monotonic() + within
    try:
        with transaction() as session:
            found = supervisors.get_server(session, server)
        while True:
            now = {view.name: view.state for view in supervisors.processes(found)}
            if process not in now:
                raise fail(f"Supervisor {found.name} has no process {process!r}")
            if now[process] == wanted:
                typer.echo(f"{process} is {wanted}")
                return
            if time.monotonic() >= deadline:
                typer.echo(
                    f"{process} is {now[process]}, not {wanted}, after {within:g} s", err=True
                )
                raise typer.Exit(1)
            time.sleep(0.5)
    except (DiagnoseError, supervisors.SupervisorUnreachable) as error:
        raise fail(str(error)) from None


from dutydesk.diagnose import scrape_cli as _scrape_cli  # noqa: E402,F401  (its commands)


@app.command("service-add")
def service_add(
    description: Annotated[
        typer.FileText, typer.Argument(help="YAML or JSON file describing the service.")
    ],
) -> None:
    """Make a service to diagnose from its description: name, hosts, databases (name, url),
    log_sources, projects, pipelines, supervisors (server, processes), checklist."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import services
    from dutydesk.diagnose.service import DiagnoseError

    try:
        with transaction(actor=cli_actor()) as session:
            made = services.create_service(
                session, services.parse_description(description.read()), actor=cli_actor()
            )
            typer.echo(f"made service {made.name} (id {made.id})")
    except DiagnoseError as error:
        raise fail(str(error)) from None


@app.command("services")
def services_list() -> None:
    """List the services to diagnose with their checklist lines."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import services

    with transaction() as session:
        for found in services.list_services(session):
            typer.echo(f"{found.id:<4} {found.name:<24} {', '.join(found.config['checklist'])}")


def _no_service(ctx: typer.Context, name: str, error: Exception) -> str:
    """The error for an unknown service, naming a command the word may have been meant as."""
    import difflib

    commands = list(getattr(ctx.parent.command, "commands", {})) if ctx.parent else []
    close = difflib.get_close_matches(name, commands, n=1)
    return f"{error} (the command {close[0]!r}?)" if close else str(error)


@app.command(RUN)
def run(
    ctx: typer.Context,
    service_name: Annotated[str, typer.Argument(metavar="SERVICE", help="Service name or id.")],
    ticket: Annotated[
        str | None, typer.Option(help="Ticket key or id to keep the result on as a note.")
    ] = None,
) -> None:
    """Run the service's debug checklist: a verdict (ok, unusual, failing, unknown) per line
    with its evidence. Exit 0 whatever the verdicts; a line that cannot be read says unknown.
    `dutydesk diagnose SERVICE` is the same."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import checks, services
    from dutydesk.diagnose.service import DiagnoseError
    from dutydesk.tickets.service import TicketError

    try:
        with transaction(actor=cli_actor()) as session:
            try:
                found = services.get_service(session, service_name)
            except DiagnoseError as error:
                raise fail(_no_service(ctx, service_name, error)) from None
            kept, lines = checks.diagnose(session, found, actor=cli_actor(), ticket_key=ticket)
            typer.echo(f"diagnosis {kept.id} of {found.name} at {kept.at:%Y-%m-%d %H:%M} UTC")
    except (DiagnoseError, TicketError) as error:
        raise fail(str(error)) from None
    for line in lines:
        typer.echo(f"{line.verdict.value.upper():<8} {line.title}")
        for item in line.evidence:
            typer.echo(f"         {item.text}" + (f"  <{item.link}>" if item.link else ""))
