"""`dutydesk users ...` and `dutydesk tokens ...`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction
from dutydesk.people import service

users_app = typer.Typer(
    rich_markup_mode=None, help="People who sign in to the console.", no_args_is_help=True
)
tokens_app = typer.Typer(rich_markup_mode=None, help="API tokens.", no_args_is_help=True)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Username (lower-case letters, digits, . _ -).")],
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")],
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    time_zone: Annotated[
        str, typer.Option(help="IANA time zone the console shows their dates in.")
    ] = "UTC",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user; prints a generated password unless --password-stdin is given."""

    ready_database()
    password = sys.stdin.readline().rstrip("\n") if password_stdin else service.generate_password()
    try:
        with transaction(actor=cli_actor()) as session:
            user = service.add_user(
                session, name, role, email=email, password=password, time_zone=time_zone
            )
            username, user_role = user.username, user.role
    except service.PeopleError as error:
        raise fail(str(error)) from None
    typer.echo(f"added {username} ({user_role})")
    if not password_stdin:
        typer.echo(f"password: {password}")


@users_app.command("list")
def list_users() -> None:
    """List users with their role and e-mail."""

    ready_database()
    with transaction() as session:
        for user in service.list_users(session):
            state = "" if user.active else "  (disabled)"
            zone, email = user.time_zone, user.email or "-"
            typer.echo(f"{user.username:<24} {user.role:<9} {zone:<20} {email}{state}")


@users_app.command("time-zone")
def set_time_zone(
    name: Annotated[str, typer.Argument(help="Username.")],
    zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin or UTC.")],
) -> None:
    """Choose the time zone the console shows a user's dates in (and reads typed ones in)."""

    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            user = service.find_user(session, name.strip())
            if user is None:
                raise service.PeopleError(f"no user named {name!r}")
            service.set_time_zone(user, zone)
            username, chosen = user.username, user.time_zone
    except service.PeopleError as error:
        raise fail(str(error)) from None
    typer.echo(f"{username}: dates shown in {chosen}")


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the token is for.")],
    scope: Annotated[
        list[str], typer.Option(help="read, write, intake, upload or admin (repeat or comma).")
    ],
    user: Annotated[str | None, typer.Option(help="Username the token acts as.")] = None,
) -> None:
    """Make an API token and print it once; only its hash is kept."""

    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            made = service.create_token(session, name, scope, username=user)
            token_id, scopes = made.token.id, made.token.scopes
    except service.PeopleError as error:
        raise fail(str(error)) from None
    typer.echo(f"token {token_id} ({', '.join(scopes)}); shown only now:", err=True)
    typer.echo(made.secret)


@tokens_app.command("list")
def list_tokens() -> None:
    """List tokens (never their secrets)."""

    ready_database()
    with transaction() as session:
        for token in service.list_tokens(session):
            owner = token.user.username if token.user else "(service)"
            state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "live"
            typer.echo(
                f"{token.id:>4} {token.name:<24} {','.join(token.scopes):<20} {owner:<12} {state}"
            )


@tokens_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="Token id from `tokens list`.")]) -> None:
    """Revoke a token so it stops working at once."""

    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            service.revoke_token(session, token_id)
    except service.PeopleError as error:
        raise fail(str(error)) from None
    typer.echo(f"revoked token {token_id}")
