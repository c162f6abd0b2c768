"""`dutydesk diagnose project-add NAME | projects | groups`: exception projects and groups."""

from __future__ import annotations

from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database

app = typer.Typer(
    rich_markup_mode=None,
    help="Diagnosis: exception projects (Sentry DSNs) and exception groups.",
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
