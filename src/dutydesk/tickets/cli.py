"""`dutydesk tickets list | show KEY | note KEY TEXT | assign KEY USER | close KEY`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction
from dutydesk.tickets import _search, service
from dutydesk.tickets._query import ANY_STATUS, OPEN_ANY, TicketFilters

app = typer.Typer(
    rich_markup_mode=None, help="Tickets: list, show, note, assign, close.", no_args_is_help=True
)


@app.command("list")
def list_tickets(
    status: Annotated[
        str, typer.Option(help="open, acknowledged, closed, open_any (default) or any.")
    ] = OPEN_ANY,
    assignee: Annotated[str | None, typer.Option(help="Username, or `none`.")] = None,
    severity: Annotated[str | None, typer.Option(help="critical, high, warning or info.")] = None,
    source: Annotated[str | None, typer.Option(help="Only tickets from this source.")] = None,
    q: Annotated[str | None, typer.Option("--q", "-q", help="Search text.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """List tickets, newest first (open and acknowledged ones unless --status says otherwise)."""
    ready_database()
    try:
        if status not in (OPEN_ANY, *ANY_STATUS):
            service.parse_status(status)
        filters = TicketFilters(
            status=None if status in ANY_STATUS else status,
            assignee=assignee,
            severity=service.parse_severity(severity) if severity else None,
            source=source,
        )
    except service.TicketError as error:
        raise fail(str(error)) from None
    with transaction() as session:
        if q:
            tickets = [hit.ticket for hit in _search.search(session, q, filters, limit=limit)]
        else:
            tickets = service.list_tickets(session, filters, limit=limit)
        for ticket in tickets:
            typer.echo(
                f"{ticket.key:<9} {ticket.severity:<8} {ticket.status:<12} "
                f"{(ticket.assignee_name or '-'):<12} x{ticket.occurrences:<5} {ticket.title}"
            )
        if q and filters.status:
            wider = replace(filters, status=None)
            more = _search.count(session, q, wider) - _search.count(session, q, filters)
            if more:
                typer.echo(f"{more} more with another status: add --status any", err=True)


@app.command("show")
def show(key: Annotated[str, typer.Argument(help="Ticket key, e.g. DD-12.")]) -> None:
    """Show a ticket with its notes, links and timeline."""
    ready_database()
    with transaction() as session:
        try:
            ticket = service.get_ticket(session, key)
        except service.TicketError as error:
            raise fail(str(error)) from None
        typer.echo(f"{ticket.key}  {ticket.title}")
        typer.echo(
            f"status={ticket.status} severity={ticket.severity} "
            f"assignee={ticket.assignee_name or '-'} source={ticket.source} "
            f"occurrences={ticket.occurrences}"
        )
        typer.echo(f"fingerprint={ticket.fingerprint or '-'}")
        typer.echo(
            f"first seen {ticket.first_seen_at:%Y-%m-%d %H:%M}, "
            f"last {ticket.last_seen_at:%Y-%m-%d %H:%M} UTC"
        )
        if ticket.seen_before_id:
            typer.echo(f"seen before: DD-{ticket.seen_before_id}")
        if ticket.resolution:
            typer.echo(f"resolution: {ticket.resolution}")
        if ticket.description:
            typer.echo(f"\n{ticket.description}")
        for link in ticket.links:
            typer.echo(f"link: {link.key} {link.url}")
        for note in ticket.notes:
            typer.echo(
                f"\n-- note by {note.author} at {note.created_at:%Y-%m-%d %H:%M}\n{note.body}"
            )
        typer.echo("\ntimeline:")
        for event in service.timeline(session, ticket):
            detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v is not None)
            typer.echo(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.actor:<16} {event.kind} {detail}")


@app.command("note")
def note(
    key: Annotated[str, typer.Argument(help="Ticket key.")],
    text: Annotated[str, typer.Argument(help="The note, in Markdown.")],
    author: Annotated[str | None, typer.Option(help="Who wrote it (default: cli:<you>).")] = None,
) -> None:
    """Add a note to a ticket."""
    ready_database()
    try:
        with transaction(immediate=True, actor=cli_actor()) as session:
            ticket = service.get_ticket(session, key)
            service.add_note(session, ticket, text, author=author or cli_actor())
            name = ticket.key
    except service.TicketError as error:
        raise fail(str(error)) from None
    typer.echo(f"added a note to {name}")


@app.command("assign")
def assign(
    key: Annotated[str, typer.Argument(help="Ticket key.")],
    user: Annotated[str, typer.Argument(help="Username, or `none` for nobody.")],
) -> None:
    """Give a ticket to a user."""
    ready_database()
    try:
        with transaction(immediate=True, actor=cli_actor()) as session:
            ticket = service.get_ticket(session, key)
            service.assign(session, ticket, None if user == "none" else user, actor=cli_actor())
            name = ticket.key
    except service.TicketError as error:
        raise fail(str(error)) from None
    typer.echo(f"{name} assigned to {user}")


@app.command("close")
def close(
    key: Annotated[str, typer.Argument(help="Ticket key.")],
    resolution: Annotated[str, typer.Option(help="How it ended.")] = "",
    link: Annotated[str | None, typer.Option(help="URL of an outside tracker issue.")] = None,
    link_key: Annotated[str | None, typer.Option(help="Its key there, e.g. PROJ-123.")] = None,
) -> None:
    """Close a ticket, optionally linking an outside tracker issue."""
    ready_database()
    try:
        with transaction(immediate=True, actor=cli_actor()) as session:
            ticket = service.get_ticket(session, key)
            service.close_ticket(
                session,
                ticket,
                resolution=resolution,
                link_url=link,
                link_key=link_key,
                actor=cli_actor(),
            )
            name = ticket.key
    except service.TicketError as error:
        raise fail(str(error)) from None
    typer.echo(f"closed {name}")
