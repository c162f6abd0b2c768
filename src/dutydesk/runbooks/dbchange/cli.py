"""`dutydesk dbchange targets add|list|test | new --target T FILE|--task PATH | dry-run ID |
apply ID | show ID`.

Targets are set up by whoever runs the desk (as `dutydesk users add`); scripts, dry runs and
applies act as a desk user (`--user`) who proves it with their password, asked for and never
taken from an option. Target passwords are asked for too (`--passwords`), or come in the URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dutydesk.commandline import cli_actor, desk_user, fail, ready_database

if TYPE_CHECKING:
    pass

app = typer.Typer(
    rich_markup_mode=None,
    help="Database change scripts: targets, dry runs that roll back, reviewed applies.",
    no_args_is_help=True,
)
targets_app = typer.Typer(
    rich_markup_mode=None, help="Target databases scripts run against.", no_args_is_help=True
)
app.add_typer(targets_app, name="targets")

UserOption = Annotated[str, typer.Option("--user", "-u", help="Your desk username.")]


def _print_run(figures: dict[str, Any]) -> None:
    outcome = "ok" if figures.get("ok") else f"FAILED: {figures.get('error')}"
    typer.echo(f"{figures['mode'].replace('_', ' ')} on {figures['target']}: {outcome}")
    for statement in figures.get("statements", []):
        rows = "" if statement["rows"] is None else f"{statement['rows']} rows"
        error = f"  error: {statement['error']}" if statement.get("error") else ""
        first = " ".join(statement["text"].split())[:70]
        took = f"{statement['duration_ms'] or 0} ms"
        typer.echo(f"  {statement['number']:>3}. {rows:>12} {took:>12}  {first}{error}")
    for table in figures.get("tables", []):
        same = "unchanged" if table["unchanged"] else "CHANGED"
        typer.echo(f"  table {table['table']}: {same} {json.dumps(table['after'], default=str)}")


@targets_app.command("add")
def add_target(
    name: Annotated[str, typer.Argument(help="Short name, e.g. reporting-prod.")],
    url: Annotated[str, typer.Argument(help="postgresql://, mysql+pymysql:// or sqlite:/// URL.")],
    read_user: Annotated[str, typer.Option(help="User of the read-only login.")] = "",
    write_user: Annotated[
        str, typer.Option(help="User of the read-write login (default: the URL's).")
    ] = "",
    passwords: Annotated[
        bool, typer.Option("--passwords", help="Ask for the two logins' passwords.")
    ] = False,
    statement_timeout_ms: Annotated[int, typer.Option(min=1, max=3_600_000)] = 30_000,
    lock_timeout_ms: Annotated[int, typer.Option(min=1, max=3_600_000)] = 5_000,
    backup_target: Annotated[
        str, typer.Option(help="Backup target whose verified backup apply needs.")
    ] = "",
    replace: Annotated[bool, typer.Option(help="Change the target of this name.")] = False,
) -> None:
    """Register a target database; its passwords are stored encrypted."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    read_password = write_password = ""
    if passwords:
        read_password = str(typer.prompt("Read-only password", hide_input=True, err=True))
        write_password = str(typer.prompt("Read-write password", hide_input=True, err=True))
    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            target = service.save_target(
                session,
                name=name,
                url=url,
                read_user=read_user,
                read_password=read_password,
                write_user=write_user,
                write_password=write_password,
                statement_timeout_ms=statement_timeout_ms,
                lock_timeout_ms=lock_timeout_ms,
                backup_target=backup_target,
                replace=replace,
                actor=cli_actor(),
            )
        except service.DbChangeError as error:
            raise fail(str(error)) from None
        typer.echo(f"target {target.name}: {service.shown_url(target)}")


@targets_app.command("list")
def list_targets() -> None:
    """List the targets (passwords redacted) with their last test."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        for target in service.list_targets(session):
            tested = "never tested"
            if target.last_test is not None:
                tested = "test ok" if target.last_test.get("ok") else "test FAILED"
            timeouts = (
                f"statement {target.statement_timeout_ms} ms, lock {target.lock_timeout_ms} ms"
            )
            typer.echo(f"{target.name}\t{service.shown_url(target)}\t{timeouts}\t{tested}")


@targets_app.command("test")
def test_target(name: Annotated[str, typer.Argument(help="The target's name.")]) -> None:
    """Connect with both logins and try a transaction that is rolled back."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            outcome = service.test_target(session, service.get_target(session, name))
        except service.DbChangeError as error:
            raise fail(str(error)) from None
    for label in ("read", "write"):
        part = outcome[label]
        typer.echo(f"{label}: {'ok' if part['ok'] else 'FAILED'} ({part['detail']})")
    if not outcome["ok"]:
        raise typer.Exit(1)


@app.command("new")
def new_change(
    user: UserOption,
    target: Annotated[str, typer.Option(help="The target's name.")],
    file: Annotated[Path | None, typer.Argument(help="The .sql script.")] = None,
    task: Annotated[
        str | None, typer.Option(help="tasks/<date>_<name>/<name>.sql in the tasks folder.")
    ] = None,
    title: Annotated[str, typer.Option(help="What the change does.")] = "",
) -> None:
    """Register a script as a draft database change."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    if (file is None) == (task is None):
        raise fail("give a script FILE or --task PATH (one of them)")
    ready_database()
    with transaction(actor=cli_actor()) as session:
        me = desk_user(session, user)
        try:
            if task is not None:
                script, source = service.read_task(task)
            else:
                assert file is not None
                try:
                    script, source = file.read_text(encoding="utf-8"), f"file {file.name}"
                except (OSError, UnicodeDecodeError) as error:
                    raise fail(f"cannot read {file}: {error}") from None
            change = service.new_change(
                session,
                target=service.get_target(session, target),
                script=script,
                author=me,
                title=title,
                source=source,
            )
        except service.DbChangeError as error:
            raise fail(str(error)) from None
        typer.echo(f"database change #{change.id} ({change.payload['script_sha256'][:12]}): draft")
        typer.echo(f"next: dutydesk dbchange dry-run {change.id} --user {user}")


@app.command("dry-run")
def dry_run(
    change_id: Annotated[int, typer.Argument(min=1, max=2_147_483_647)], user: UserOption
) -> None:
    """Run the script in a transaction that is rolled back; it becomes the evidence."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    ready_database()
    # Three steps, so that no ops-database transaction is open while the script runs.
    with transaction(actor=cli_actor()) as session:
        me = desk_user(session, user)
        try:
            plan = service.prepare_dry_run(session, service.change_of(session, change_id))
        except service.DbChangeError as error:
            raise fail(str(error)) from None
    figures = service.execute_dry_run(plan)
    with transaction(actor=session.info["actor"], immediate=True) as session:
        try:
            change = service.change_of(session, change_id)
            service.record_dry_run(session, change, session.merge(me), plan, figures)
        except service.DbChangeError as error:
            raise fail(str(error)) from None
    _print_run(figures)
    if not figures["ok"]:
        raise typer.Exit(1)


@app.command("apply")
def apply(
    change_id: Annotated[int, typer.Argument(min=1, max=2_147_483_647)], user: UserOption
) -> None:
    """Queue the apply of a signed-off change (a worker runs it)."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        me = desk_user(session, user)
        try:
            job_id = service.request_apply(session, service.change_of(session, change_id), me)
        except service.DbChangeError as error:
            raise fail(str(error)) from None
    typer.echo(f"database change #{change_id}: apply queued as job {job_id}")


@app.command("show")
def show(change_id: Annotated[int, typer.Argument(min=1, max=2_147_483_647)]) -> None:
    """Print a change: state, script, latest dry run and apply."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.dbchange import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            change = service.change_of(session, change_id)
        except service.DbChangeError as error:
            raise fail(str(error)) from None
        typer.echo(f"#{change.id} {change.title} [{change.state}] on {change.payload['target']}")
        typer.echo(f"evidence hash {change.evidence_hash} (version {change.data_version})")
        typer.echo(change.payload["script"].rstrip())
        dry = (change.evidence or {}).get("dry_run")
        if dry:
            _print_run(dry)
        applied = service.latest_apply(session, change)
        if applied is not None:
            _print_run(applied.figures)
