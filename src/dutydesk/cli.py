"""The `dutydesk` command: processes, database, and each domain's commands."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from dutydesk import migrations
from dutydesk.commandline import ops_engine, ready_database, verify_schema
from dutydesk.db import redacted
from dutydesk.settings import SettingsError, get_settings, settings_table

app = typer.Typer(
    name="dutydesk",
    help="The on-duty desk for teams that run a research data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The ops database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]


def _start(process: str) -> None:
    from dutydesk.logconfig import configure_logging

    settings = get_settings()
    settings.ensure_home()
    settings.signing_key()
    configure_logging(settings, process)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Fill a demo workspace first.")] = False,
    host: Host = "127.0.0.1",
    port: Port = 8000,
) -> None:
    """Migrate the database, then run web, worker, beat and smtp together until Ctrl-C."""
    from dutydesk.processes import Supervisor, child_commands

    _start("up")
    settings = get_settings()
    url = settings.effective_database_url
    typer.echo(f"dutydesk: migrating {redacted(url)}")
    migrations.upgrade(url)
    from dutydesk.records.cli import upgrade_store

    typer.echo(f"dutydesk: {upgrade_store()}")
    if demo:
        from dutydesk.demo import seed_demo

        context = seed_demo(settings)
        for line in context.made:
            typer.echo(f"demo: made {line}")
        typer.echo(f"demo: sign in as admin with password {context.password}")
        from dutydesk.notify.democatcher import catcher_environment, free_port

        # The processes started below send their mail to the demo's catcher (see its page).
        os.environ.update(catcher_environment(free_port()))
    typer.echo(f"dutydesk: console at http://{host}:{port}/ (Ctrl-C stops everything)")
    raise typer.Exit(Supervisor(child_commands(host, port, demo_mail=demo)).run())


@app.command()
def web(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=32, help="Web processes on the port (DUTYDESK_WEB_WORKERS)."),
    ] = None,
) -> None:
    """Run the web process alone (console, API, intake endpoints)."""
    from dutydesk.processes import run_web

    _start("web")
    ready_database()
    run_web(get_settings(), host, port, workers)


@app.command()
def worker() -> None:
    """Run a Celery worker alone."""
    from dutydesk.processes import run_worker

    _start("worker")
    ready_database()
    run_worker(get_settings())


@app.command()
def beat() -> None:
    """Run Celery beat alone (the frequent tick that enqueues due work)."""
    from dutydesk.processes import run_beat

    _start("beat")
    ready_database()
    run_beat(get_settings())


@app.command()
def smtp() -> None:
    """Run the e-mail intake listener alone (DUTYDESK_SMTP_HOST:DUTYDESK_SMTP_PORT)."""
    from dutydesk.intake.smtp import run_smtp

    _start("smtp")
    ready_database()
    run_smtp(get_settings())


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (the newest by default); the record store to its newest."""
    from dutydesk.records.cli import upgrade_store

    with ops_engine() as (url, engine):
        migrations.upgrade(url, revision)
        typer.echo(f"{redacted(url)} is at {migrations.current(engine) or '(empty)'}")
    typer.echo(upgrade_store())


@db_app.command("current")
def db_current() -> None:
    """Print the revision the database is at (and the record store's on stderr)."""
    from dutydesk.records.cli import store_revision

    with ops_engine() as (_url, engine):
        typer.echo(migrations.current(engine) or "(empty: never migrated)")
    typer.echo(f"record store: {store_revision()}", err=True)


@db_app.command("check")
def db_check() -> None:
    """Exit 0 when the database and the record store are at their newest and match the models."""
    from dutydesk.records.cli import check_store

    with ops_engine() as (url, engine):
        ops_ok = verify_schema(migrations.OPS, url, engine, subject="database")
    records_ok = check_store()
    typer.echo(ops_ok)
    typer.echo(records_ok)


@app.command("settings")
def show_settings(
    markdown: Annotated[bool, typer.Option(help="Print the README's settings table.")] = False,
) -> None:
    """List every setting, its default and what it does (or the values in effect)."""
    if markdown:
        typer.echo(settings_table())
        return
    settings = get_settings()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name in {"secret_key", "demo_password", "mail_password"} and value:
            value = "(set)"
        if name in {"database_url", "records_url", "broker_url", "imap_url"} and value:
            value = redacted(str(value))
        typer.echo(f"DUTYDESK_{name.upper()}={value}")


def _register_domain_commands() -> None:
    from dutydesk.alarms.cli import app as alarms_app
    from dutydesk.duty.cli import app as duty_app
    from dutydesk.export.cli import app as export_app
    from dutydesk.intake.cli import app as integrations_app
    from dutydesk.intake.log_sources_cli import app as log_sources_app
    from dutydesk.jobs.cli import app as jobs_app
    from dutydesk.logs.cli import app as logs_app
    from dutydesk.people.cli import tokens_app, users_app
    from dutydesk.records.cli import app as records_app
    from dutydesk.tickets.cli import app as tickets_app

    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(records_app, name="records")
    app.add_typer(export_app, name="export")
    app.add_typer(logs_app, name="logs")
    app.add_typer(tickets_app, name="tickets")
    app.add_typer(duty_app, name="duty")
    app.add_typer(integrations_app, name="integrations")
    app.add_typer(log_sources_app, name="log-sources")
    app.add_typer(alarms_app, name="alarms")


_register_domain_commands()


def main() -> None:
    """Entry point: run the command, turning a wrong setting or a database error that no
    command caught into a clear message (never a traceback or a statement's parameters)."""
    from sqlalchemy.exc import DBAPIError

    from dutydesk.db import describe_database_error

    try:
        app()
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except DBAPIError as error:
        typer.echo(f"error: {describe_database_error(error)}", err=True)
        sys.exit(1)
