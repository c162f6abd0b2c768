"""What every command of the command line shares: error exits, the database checks, the actor.

Domain command modules import these at the top. SQLAlchemy, Alembic and the settings are
imported only by the functions that use them, so a command that needs no database (`dutydesk
logs query`) starts without loading them.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from dutydesk import migrations
    from dutydesk.people.models import User


def cli_actor() -> str:
    """How the audit log names changes made from the command line."""
    return f"cli:{getpass.getuser()}"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` to stderr; the caller raises the returned Exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def ready_database() -> None:
    """Refuse to go on when the ops database is not migrated to the newest schema."""
    from sqlalchemy.exc import DBAPIError

    from dutydesk.db import describe_database_error, redacted
    from dutydesk.schema_head import at_head
    from dutydesk.settings import get_settings

    url = get_settings().effective_database_url
    try:
        if at_head(url):  # the usual case, told without loading Alembic
            return
        from dutydesk import migrations

        behind = migrations.pending(url)
    except DBAPIError as error:
        raise fail(describe_database_error(error, f"the ops database {redacted(url)}")) from None
    if behind:
        raise fail("the ops database is not up to date; run `dutydesk db upgrade` first")


@contextlib.contextmanager
def short_engine(url: str, what: str) -> Iterator[Engine]:
    """A short-lived engine on `url`; a database error (unreachable, locked) is a clear message
    naming `what`."""
    from sqlalchemy.exc import DBAPIError

    from dutydesk.db import build_engine, describe_database_error, redacted

    engine = build_engine(url)
    try:
        yield engine
    except DBAPIError as error:
        raise fail(describe_database_error(error, f"{what} {redacted(url)}")) from None
    finally:
        engine.dispose()


@contextlib.contextmanager
def ops_engine() -> Iterator[tuple[str, Engine]]:
    """The ops database's URL and a short-lived engine; an unreachable database is a clear error."""
    from dutydesk.settings import get_settings

    url = get_settings().effective_database_url
    with short_engine(url, "the ops database") as engine:
        yield url, engine


def verify_schema(
    tree: migrations.MigrationTree, url: str, engine: Engine, *, subject: str, prefix: str = ""
) -> str:
    """The `ok` line when the database is at the newest revision and matches its models.

    Otherwise exit 1 naming the revision it is at, or how the models and the schema differ.
    """
    at = tree.current(engine)
    newest = tree.heads(url)
    if at not in newest:
        raise fail(f"{subject} is at {at or 'nothing'}, newest is {', '.join(newest)}", 1)
    drift = tree.model_drift(engine)
    if drift:
        raise fail(f"{prefix}models and database differ: {drift}", 1)
    return f"ok: {prefix}at {at}, matches the models"


def desk_user(session: Session, username: str, *, admin: bool = False) -> User:
    """The desk user who runs a command that acts as a person (a signoff, a submit), after
    their password, asked for on the terminal and never taken from an option: nobody signs for
    someone else. With `admin`, only an admin passes. The audit names them and the terminal."""
    from dutydesk.people.models import Role
    from dutydesk.people.service import authenticate

    password = str(typer.prompt("Password", hide_input=True, err=True))
    user = authenticate(session, username, password)
    if user is None:
        raise fail(f"wrong username or password for {username!r}")
    if admin and not Role(user.role).includes(Role.admin):
        raise fail(f"{username} is a {user.role}; only admins may do this")
    session.info["actor"] = f"{user.username} ({cli_actor()})"
    return user
