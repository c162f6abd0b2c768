"""`dutydesk duty now [ROTATION] | add NAME | override ROTATION USER`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction, utcnow
from dutydesk.duty import service

app = typer.Typer(
    rich_markup_mode=None,
    help="Duty rotations: who is on duty, rotations, overrides.",
    no_args_is_help=True,
)


@app.command("now")
def now(
    rotation: Annotated[str | None, typer.Argument(help="One rotation (default: all).")] = None,
) -> None:
    """Who is on duty right now, per rotation, and until when."""
    ready_database()
    with transaction() as session:
        try:
            rotations = (
                [service.get_rotation(session, rotation)]
                if rotation
                else service.list_rotations(session)
            )
        except service.DutyError as error:
            raise fail(str(error)) from None
        if not rotations:
            typer.echo("no rotations yet; add one with `dutydesk duty add`")
        at = utcnow()
        for found in rotations:
            shift = service.current_shift(found, at)
            if shift is None:
                typer.echo(f"{found.name}: nobody (no members)")
                continue
            note = f" (override: {shift.override.reason})" if shift.override else ""
            typer.echo(
                f"{found.name}: {shift.user.username} until "
                f"{shift.ends_at:%Y-%m-%d %H:%M} UTC{note}"
            )


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Rotation name.")],
    member: Annotated[list[str], typer.Option(help="Username, in turn order; repeat it.")],
    time_zone: Annotated[str, typer.Option(help="Time zone of the hand-off, e.g. Europe/Berlin.")],
    weekday: Annotated[str, typer.Option(help="Hand-off weekday.")] = "monday",
    at: Annotated[str, typer.Option(help="Hand-off time, HH:MM.")] = "09:00",
    shift_hours: Annotated[int, typer.Option(help="Shift length in hours.")] = 168,
    lead: Annotated[str | None, typer.Option(help="Username told about overrides.")] = None,
) -> None:
    """Add a rotation."""
    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            service.create_rotation(
                session,
                name=name,
                members=member,
                time_zone=time_zone,
                handoff_weekday=weekday,
                handoff_time=at,
                shift_hours=shift_hours,
                lead=lead,
            )
    except service.DutyError as error:
        raise fail(str(error)) from None
    typer.echo(f"rotation {name} added")


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise service.DutyError(f"{text!r} is not an ISO date and time") from error
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@app.command("override")
def override(
    rotation: Annotated[str, typer.Argument(help="Rotation name.")],
    user: Annotated[str, typer.Argument(help="Who stands in.")],
    start: Annotated[str, typer.Option("--from", help="Start, ISO 8601 (UTC if no zone).")],
    end: Annotated[str, typer.Option("--to", help="End, ISO 8601 (UTC if no zone).")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Let USER stand in on ROTATION for a while; the rotation's lead is told."""
    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            found = service.get_rotation(session, rotation)
            service.add_override(
                session,
                found,
                username=user,
                starts_at=_when(start),
                ends_at=_when(end),
                reason=reason,
                actor=cli_actor(),
            )
    except service.DutyError as error:
        raise fail(str(error)) from None
    typer.echo(f"{user} stands in on {rotation}")
