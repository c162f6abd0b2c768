"""`dutydesk integrations create --kind K --name N | list | rotate NAME`."""

from __future__ import annotations

from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction
from dutydesk.intake import service
from dutydesk.settings import get_settings
from dutydesk.tickets.service import TicketInputError

app = typer.Typer(
    rich_markup_mode=None,
    help="Integrations: the secret URLs signals come in by.",
    no_args_is_help=True,
)


def _show_secret(made: service.NewToken) -> None:
    base = get_settings().base_url.rstrip("/")
    integration = made.integration
    if made.path:
        typer.echo(f"url: {base}{made.path}")
    else:
        typer.echo(f"mail to: {integration.name}@<the SMTP listener's host>")
    if integration.signing_secret:
        typer.echo(f"signing secret: {integration.signing_secret}")
    typer.echo("The token is shown only now; `dutydesk integrations rotate` makes a new one.")


@app.command("create")
def create(
    kind: Annotated[
        str,
        typer.Option(help="alertmanager, generic, oncall, heartbeat, github, gitlab, ci or email."),
    ],
    name: Annotated[str, typer.Option(help="Unique name (lowercase, digits, . _ -).")],
    group_by: Annotated[
        list[str] | None, typer.Option(help="Payload field whose value groups alarms (repeat).")
    ] = None,
    close_on_resolve: Annotated[
        bool, typer.Option(help="Close the ticket when the source resolves the alarm.")
    ] = False,
    severity: Annotated[str, typer.Option(help="Severity when the sender gives none.")] = "warning",
    rate_limit: Annotated[int, typer.Option(min=1, help="Requests per window.")] = 300,
    rate_window: Annotated[int, typer.Option(min=60, help="Window in seconds.")] = 300,
    signing_secret: Annotated[
        str | None, typer.Option(help="GitHub/GitLab secret (default: generated).")
    ] = None,
    period: Annotated[int, typer.Option(min=60, help="Heartbeat: seconds between runs.")] = 86_400,
    grace: Annotated[int, typer.Option(min=0, help="Heartbeat: seconds of grace.")] = 3_600,
    schedule: Annotated[
        str | None, typer.Option(help="Heartbeat: cron schedule (5 fields) instead of --period.")
    ] = None,
    tz: Annotated[str, typer.Option(help="Heartbeat: time zone of --schedule.")] = "UTC",
) -> None:
    """Make an integration and print its URL with the secret token (shown only once)."""
    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            made = service.create_integration(
                session,
                name=name,
                kind=kind,
                actor=cli_actor(),
                group_by=group_by or [],
                close_on_resolve=close_on_resolve,
                default_severity=severity,
                rate_limit=rate_limit,
                rate_window_seconds=rate_window,
                signing_secret=signing_secret,
                period_seconds=period,
                grace_seconds=grace,
                schedule=schedule,
                tz=tz,
            )
            typer.echo(f"made {made.integration.kind} integration {made.integration.name}")
            _show_secret(made)
    except (service.IntakeError, TicketInputError) as error:
        raise fail(str(error)) from None


@app.command("list")
def list_integrations() -> None:
    """List integrations (without their secrets); a heartbeat's state and next deadline."""
    ready_database()
    from dutydesk.db import utcnow
    from dutydesk.intake._heartbeat import state_of

    with transaction() as session:
        now = utcnow()
        for item in service.list_integrations(session):
            state = "enabled" if item.enabled else "disabled"
            beat = ""
            if item.check is not None:
                shown = state_of(item.check, now)
                due = f" until {shown.deadline:%Y-%m-%d %H:%M} UTC" if shown.deadline else ""
                beat = f"  {shown.status}{due}"
            typer.echo(
                f"{item.id:<4} {item.name:<24} {item.kind:<13} {item.token_prefix}…  {state:<8} "
                f"{item.rate_limit}/{item.rate_window_seconds}s{beat}"
            )


@app.command("rotate")
def rotate(name: Annotated[str, typer.Argument(help="Integration name or id.")]) -> None:
    """Give an integration a new token (the old one stops working) and print its URL."""
    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            made = service.rotate_token(session, service.get_integration(session, name))
            _show_secret(made)
    except service.IntakeError as error:
        raise fail(str(error)) from None
