"""`dutydesk changes list | show ID | approve ID | reject ID | run ID | comment ID TEXT | rules`.

Signing, rejecting, running and commenting act as a desk user, who proves it with their
password (asked for, never taken from an option): nobody signs for someone else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dutydesk.people.models import User
    from dutydesk.runbooks.models import ChangeRequest

app = typer.Typer(
    rich_markup_mode=None,
    help="Change requests: list, show, approve, reject, run, comment; signoff rules.",
    no_args_is_help=True,
)
rules_app = typer.Typer(
    rich_markup_mode=None, help="Signoff rules per kind (admins).", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")

UserOption = Annotated[str, typer.Option("--user", "-u", help="Your desk username.")]


def _password() -> str:
    return str(typer.prompt("Password", hide_input=True))


def _me(session: Session, username: str, *, admin: bool = False) -> User:
    """The desk user who runs the command, after checking their password."""
    from dutydesk.people.models import Role
    from dutydesk.people.service import authenticate

    user = authenticate(session, username, _password())
    if user is None:
        raise fail(f"wrong username or password for {username!r}")
    if admin and not Role(user.role).includes(Role.admin):
        raise fail(f"{username} is a {user.role}; signoff rules are for admins")
    session.info["actor"] = f"{user.username} ({cli_actor()})"
    return user


def _change(session: Session, change_id: int) -> ChangeRequest:
    from dutydesk.runbooks.service import get_change

    try:
        return get_change(session, change_id)
    except LookupError as error:
        raise fail(str(error)) from None


@app.command("list")
def list_changes(
    state: Annotated[str | None, typer.Option(help="Only requests in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only requests of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """List change requests, newest first."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.models import ChangeState
    from dutydesk.runbooks.service import list_changes as query

    ready_database()
    if state is not None and state not in ChangeState.__members__:
        raise fail(f"unknown state {state!r}; use {', '.join(ChangeState)}")
    with transaction() as session:
        for change in query(session, state=state, kind=kind, limit=limit):
            typer.echo(
                f"#{change.id:<5} {change.kind:<12} {change.state:<10} v{change.data_version:<3} "
                f"{change.author.username:<12} {change.title}"
            )
