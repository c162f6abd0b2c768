"""The `dutydesk` command: processes, database, and each domain's commands.

Starting the command imports none of the domains, nor SQLAlchemy, Alembic or pydantic: each
command imports what it uses, and a domain's commands are imported when one of them runs, so
`dutydesk --help` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from dutydesk.errors import SettingsError

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter


@dataclass(frozen=True)
class Domain:
    """Where a domain's command group lives, and its help line for `dutydesk --help`."""

    module: str
    attribute: str
    help: str


# Each domain's command group, in the order `dutydesk --help` lists them. The help line is the
# group's own, repeated so that listing the commands imports none of them (a test checks that
# the two agree).
DOMAINS = {
    "users": Domain("dutydesk.people.cli", "users_app", "People who sign in to the console."),
    "tokens": Domain("dutydesk.people.cli", "tokens_app", "API tokens."),
    "jobs": Domain("dutydesk.jobs.cli", "app", "Background jobs."),
    "records": Domain(
        "dutydesk.records.cli", "app", "The record store: the study data the nightly export reads."
    ),
    "export": Domain("dutydesk.export.cli", "app", "The nightly export of study records."),
    "logs": Domain("dutydesk.logs.cli", "app", "Query access and application logs by glob."),
    "tickets": Domain("dutydesk.tickets.cli", "app", "Tickets: list, show, note, assign, close."),
    "duty": Domain(
        "dutydesk.duty.cli", "app", "Duty rotations: who is on duty, rotations, overrides."
    ),
    "integrations": Domain(
        "dutydesk.intake.cli", "app", "Integrations: the secret URLs signals come in by."
    ),
    "log-sources": Domain(
        "dutydesk.intake.log_sources_cli",
        "app",
        "Log sources: archive globs on this machine whose new lines are counted on a schedule.",
    ),
    "alarms": Domain(
        "dutydesk.alarms.cli", "app", "Alarm rules: test, list, evaluate, seed the defaults."
    ),
    "backup": Domain(
        "dutydesk.backups.cli",
        "app",
        "Backups: targets, run, list, verify (the restore drill), restore.",
    ),
    "changes": Domain(
        "dutydesk.runbooks.cli",
        "app",
        "Change requests: list, show, approve, reject, run, comment; signoff rules.",
    ),
    "redrive": Domain(
        "dutydesk.runbooks.redrive.cli",
        "app",
        "Re-drive batches: add record IDs, list, show, submit for signoff, verify.",
    ),
    "release": Domain(
        "dutydesk.runbooks.releases.cli",
        "app",
        "Releases: checklist templates, release runs and release windows.",
    ),
    "broadcast": Domain(
        "dutydesk.runbooks.releases.cli",
        "broadcast_app",
        "Broadcasts: messages shown to the application's users and on every console page.",
    ),
    "dbchange": Domain(
        "dutydesk.runbooks.dbchange.cli",
        "app",
        "Database change scripts: targets, dry runs that roll back, reviewed applies.",
    ),
    "review": Domain(
        "dutydesk.review.cli", "app", "The weekly review: its agenda from the desk's data."
    ),
    "diagnose": Domain(
        "dutydesk.diagnose.cli",
        "app",
        "Diagnose SERVICE; exceptions, processes, scrapes.",
    ),
}


def load_domain(name: str) -> TyperGroup:
    """Import the domain `name` and build its command group, as `add_typer` would have."""
    domain = DOMAINS[name]
    sub_app = getattr(importlib.import_module(domain.module), domain.attribute)
    holder = typer.Typer(rich_markup_mode=None)
    holder.add_typer(sub_app, name=name)
    group = typer.main.get_group(holder).commands[name]
    assert isinstance(group, TyperGroup)
    return group


class _NotLoaded(TyperGroup):
    """Stands for a domain's group, by name and help line, until one of its commands runs."""


class RootGroup(TyperGroup):
    """The `dutydesk` group: its own commands, then each domain's, imported when first used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.listing = False
        for name, domain in DOMAINS.items():
            self.commands[name] = _NotLoaded(name=name, help=domain.help, no_args_is_help=True)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The help page; its list of commands shows the domains' help lines without importing."""
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def get_command(self, ctx: Context, cmd_name: str) -> Any:
        """The command `cmd_name`, importing its domain unless only the help page needs it."""
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, _NotLoaded) and not self.listing:
            command = self.commands[cmd_name] = load_domain(cmd_name)
        return command


# Every command app is made with rich_markup_mode=None: help and usage errors are Click's plain
# text, which loads no Rich (a quarter of a second of start-up on every command).
app = typer.Typer(
    rich_markup_mode=None,
    name="dutydesk",
    help="The on-duty desk for teams that run a research data platform.",
    cls=RootGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(rich_markup_mode=None, help="The ops database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]


def _start(process: str) -> None:
    from dutydesk.logconfig import configure_logging
    from dutydesk.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    settings.signing_key()
    configure_logging(settings, process)
    if settings.supervisor_pid:
        from dutydesk.processes import watch_supervisor

        watch_supervisor(settings.supervisor_pid)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Fill a demo workspace first.")] = False,
    host: Host = "127.0.0.1",
    port: Port = 8000,
) -> None:
    """Migrate the database, then run web, worker, beat and smtp together until Ctrl-C."""
    from dutydesk import migrations
    from dutydesk.commandline import fail
    from dutydesk.db import redacted
    from dutydesk.processes import (
        Supervisor,
        child_commands,
        port_in_use,
        share_metrics,
        wants_backupd,
    )
    from dutydesk.settings import get_settings

    _start("up")
    settings = get_settings()
    for listen_host, listen_port in ((host, port), (settings.smtp_host, settings.smtp_port)):
        taken = port_in_use(listen_host, listen_port)
        if taken:
            raise fail(f"{taken}; stop it or choose another port")
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
    typer.echo("dutydesk: starting web, worker, beat and smtp")
    share_metrics(settings, port)

    def announce() -> None:
        typer.echo(f"dutydesk: console at http://{host}:{port}/ (Ctrl-C stops everything)")

    supervisor = Supervisor(
        child_commands(host, port, demo_mail=demo, backupd=wants_backupd(settings)),
        ready_address=(host, port),
        when_ready=announce,
    )
    raise typer.Exit(supervisor.run())


def _heartbeat(process: str) -> None:
    """Record that this process is alive, now and every DUTYDESK_PROCESS_HEARTBEAT_SECONDS."""
    from dutydesk.metrics.heartbeats import start

    start(process)


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
    from dutydesk.commandline import ready_database
    from dutydesk.processes import run_web
    from dutydesk.settings import get_settings

    _start("web")
    ready_database()
    _heartbeat("web")
    run_web(get_settings(), host, port, workers)


@app.command()
def worker() -> None:
    """Run a Celery worker alone."""
    from dutydesk.commandline import ready_database
    from dutydesk.processes import run_worker
    from dutydesk.settings import get_settings

    _start("worker")
    ready_database()
    _heartbeat("worker")
    run_worker(get_settings())


@app.command()
def beat() -> None:
    """Run Celery beat alone (the frequent tick that enqueues due work)."""
    from dutydesk.commandline import ready_database
    from dutydesk.processes import run_beat
    from dutydesk.settings import get_settings

    _start("beat")
    ready_database()
    _heartbeat("beat")
    run_beat(get_settings())


@app.command()
def smtp() -> None:
    """Run the e-mail intake listener alone (DUTYDESK_SMTP_HOST:DUTYDESK_SMTP_PORT)."""
    from dutydesk.commandline import ready_database
    from dutydesk.intake.smtp import run_smtp
    from dutydesk.settings import get_settings

    _start("smtp")
    ready_database()
    _heartbeat("smtp")
    run_smtp(get_settings())


@app.command()
def backupd() -> None:
    """Run the backup daemon alone: Litestream replication of the continuous SQLite targets."""
    from dutydesk.backups.continuous import run_backupd
    from dutydesk.commandline import ready_database
    from dutydesk.settings import get_settings

    _start("backupd")
    ready_database()
    _heartbeat("backupd")
    raise typer.Exit(run_backupd(get_settings()))


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (the newest by default); the record store to its newest."""
    from dutydesk import migrations
    from dutydesk.commandline import ops_engine
    from dutydesk.db import redacted
    from dutydesk.records.cli import upgrade_store

    with ops_engine() as (url, engine):
        migrations.upgrade(url, revision)
        typer.echo(f"{redacted(url)} is at {migrations.current(engine) or '(empty)'}")
    typer.echo(upgrade_store())


@db_app.command("current")
def db_current() -> None:
    """Print the revision the database is at (and the record store's on stderr)."""
    from dutydesk import migrations
    from dutydesk.commandline import ops_engine
    from dutydesk.records.cli import store_revision

    with ops_engine() as (_url, engine):
        typer.echo(migrations.current(engine) or "(empty: never migrated)")
    typer.echo(f"record store: {store_revision()}", err=True)


@db_app.command("check")
def db_check() -> None:
    """Exit 0 when the database and the record store are at their newest and match the models."""
    from dutydesk import migrations
    from dutydesk.commandline import ops_engine, verify_schema
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
    from dutydesk.db import redacted
    from dutydesk.settings import get_settings, settings_table

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


def main() -> None:
    """Entry point: run the command, turning a wrong setting or a database error that no
    command caught into a clear message (never a traceback or a statement's parameters)."""
    try:
        app()
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except Exception as error:
        # SQLAlchemy is imported only once something failed: `dutydesk --help` never loads it.
        from sqlalchemy.exc import DBAPIError

        if not isinstance(error, DBAPIError):
            raise
        from dutydesk.db import describe_database_error

        typer.echo(f"error: {describe_database_error(error)}", err=True)
        sys.exit(1)
