"""`dutydesk backup ...`: targets, run, list, verify, restore."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database

if TYPE_CHECKING:
    from dutydesk.backups.models import BackupTarget

app = typer.Typer(
    rich_markup_mode=None,
    help="Backups: targets, run, list, verify (the restore drill), restore.",
    no_args_is_help=True,
)


def _find(target: str) -> BackupTarget:
    """The target (the built-in ones made on first use), in a short transaction that holds
    SQLite's write lock from its start and is tried again while another process writes."""
    from dutydesk.backups import service
    from dutydesk.db import retry_when_locked, transaction

    def find() -> BackupTarget:
        with transaction(immediate=True, actor=cli_actor()) as session:
            return service.find_target(session, target)

    return retry_when_locked(find, what="finding the backup target")


def _moment(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time; give ISO 8601, e.g. 2026-12-07T03:15:00Z", param_hint="--at"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@app.command("targets")
def targets() -> None:
    """List the targets (the built-in ops and records among them) and whether each is fresh."""
    from dutydesk.backups import service
    from dutydesk.db import transaction

    ready_database()
    with transaction(immediate=True, actor=cli_actor()) as session:
        service.ensure_builtin_targets(session)
        for target in service.list_targets(session):
            fresh = (
                "fresh"
                if service.is_fresh(session, target)
                else ("STALE" if service.is_stale(session, target) else "new")
            )
            newest = service.newest_backup(session, target)
            last = f"{newest.started_at:%Y-%m-%d %H:%M}" if newest else "never"
            mode = "continuous" if target.continuous else f"every {target.every_minutes} min"
            typer.echo(
                f"{target.name:<20} {target.kind:<10} {fresh:<5} last {last:<16} {mode:<18} "
                f"{service.shown_url(target)} -> {target.destination}"
            )


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Target name (lower-case, digits, - _ .).")],
    url: Annotated[str, typer.Argument(help="sqlite:///PATH or postgresql://... URL.")],
    destination: Annotated[
        str, typer.Option(help="Folder or s3://bucket/prefix (default: the backup folder).")
    ] = "",
    every_minutes: Annotated[int, typer.Option(min=1, help="Backup interval.")] = 24 * 60,
    drill_every_minutes: Annotated[int, typer.Option(min=1, help="Drill interval.")] = 24 * 60,
    max_age_minutes: Annotated[
        int, typer.Option(min=1, help="Older than this without a verified backup is stale.")
    ] = 26 * 60,
    keep_hourly: Annotated[int, typer.Option(min=0)] = 24,
    keep_daily: Annotated[int, typer.Option(min=0)] = 7,
    keep_weekly: Annotated[int, typer.Option(min=0)] = 4,
    continuous: Annotated[
        bool, typer.Option(help="Replicate it with Litestream too (SQLite only).")
    ] = False,
) -> None:
    """Register a database to back up."""
    from dutydesk.backups import service
    from dutydesk.db import transaction

    ready_database()
    try:
        with transaction(immediate=True, actor=cli_actor()) as session:
            target = service.add_target(
                session,
                name,
                url,
                destination=destination,
                every_minutes=every_minutes,
                drill_every_minutes=drill_every_minutes,
                max_age_minutes=max_age_minutes,
                keep=(keep_hourly, keep_daily, keep_weekly),
                continuous=continuous,
            )
            typer.echo(f"added target {target.name}: backups go to {target.destination}")
    except service.BackupInputError as error:
        raise fail(str(error)) from None


@app.command("run")
def run(target: Annotated[str, typer.Argument(help="Target name.")]) -> None:
    """Take a backup of TARGET now (then apply its retention)."""
    from dutydesk.backups import service
    from dutydesk.backups.alarms import backup_outcome
    from dutydesk.backups.models import BackupTarget
    from dutydesk.db import retry_when_locked, transaction

    ready_database()
    try:
        found = _find(target)
    except service.BackupInputError as error:
        raise fail(str(error)) from None
    backup = service.produce_backup(found)  # no transaction held while it runs

    def record() -> int:
        with transaction(immediate=True, actor=cli_actor()) as session:
            session.add(backup)
            session.flush()
            attached = session.get(BackupTarget, found.id) or found
            backup_outcome(session, attached, backup)
            if backup.state != "succeeded":
                return 0
            return len(service.prune(session, attached))

    pruned = retry_when_locked(record, what="recording the backup")
    if backup.state != "succeeded":
        raise fail(f"backup of {found.name} failed: {backup.error}", 1)
    typer.echo(
        f"backup {backup.id} of {found.name}: {backup.size_bytes} bytes, "
        f"sha256 {backup.sha256}, at {backup.location}"
        + (f" ({pruned} old backups pruned)" if pruned else "")
    )


@app.command("list")
def list_backups(
    target: Annotated[str | None, typer.Argument(help="Only this target's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """List backups, newest first, with their verification."""
    from dutydesk.backups import service
    from dutydesk.backups.models import BackupTarget
    from dutydesk.db import transaction

    ready_database()
    try:
        found = _find(target) if target else None
        with transaction() as session:
            names = {t.id: t.name for t in session.query(BackupTarget)}
            for backup in service.list_backups(session, found, limit):
                typer.echo(
                    f"{backup.id:>6} {names.get(backup.target_id, '?'):<16} {backup.method:<9} "
                    f"{backup.started_at:%Y-%m-%d %H:%M:%S} {backup.state:<9} "
                    f"{backup.verification:<10} {backup.size_bytes or 0:>12} "
                    f"{backup.location or backup.error or ''}"
                )
    except service.BackupInputError as error:
        raise fail(str(error)) from None


@app.command("verify")
def verify(target: Annotated[str, typer.Argument(help="Target name.")]) -> None:
    """Run the restore drill of TARGET now: restore its newest backup (and its Litestream
    replica) into scratch space and check it; exit 1 when a drill fails."""
    from dutydesk.backups import service
    from dutydesk.backups.continuous import drill_replica
    from dutydesk.backups.models import Backup, BackupTarget
    from dutydesk.db import retry_when_locked, transaction

    ready_database()
    try:
        found = _find(target)
    except service.BackupInputError as error:
        raise fail(str(error)) from None
    with transaction() as session:
        backup = service.newest_backup(session, found)
    # The restores run with no transaction held.
    drills = [service.drill_of(found, backup)] if backup or not found.continuous else []
    if found.continuous:
        with service.scratch() as folder:
            drills.append(drill_replica(found, folder))

    def record() -> None:
        with transaction(immediate=True, actor=cli_actor()) as session:
            attached = session.get(BackupTarget, found.id) or found
            drilled = session.get(Backup, backup.id) if backup is not None else None
            for drill in drills:
                service.record_drill(session, attached, drilled if drill.backup_id else None, drill)

    retry_when_locked(record, what="recording the drill")
    failed = False
    for drill in drills:
        what = drill.checks.get("method", f"backup {drill.backup_id}")
        rpo = f"{drill.rpo_seconds:.1f} s" if drill.rpo_seconds is not None else "-"
        rto = f"{drill.rto_seconds:.2f} s" if drill.rto_seconds is not None else "-"
        typer.echo(
            f"drill of {found.name} ({what}): {drill.state}; RPO {rpo}, RTO {rto}"
            + (f"; {drill.error}" if drill.error else "")
        )
        failed = failed or drill.state != "passed"
    if failed:
        raise typer.Exit(1)


@app.command("restore")
def restore(
    target: Annotated[str, typer.Argument(help="Target name.")],
    at: Annotated[
        str | None, typer.Option(help="Restore the state at this time (ISO 8601, UTC default).")
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="New file path or database URL (default: the live one).")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Overwrite an existing database (asks to type the target name).")
    ] = False,
    yes: Annotated[
        str | None, typer.Option(help="The target name, typed ahead instead of at the prompt.")
    ] = None,
) -> None:
    """Restore TARGET into a new file or database; over an existing one only with --replace
    and the target's name typed to confirm."""
    from dutydesk.backups import service
    from dutydesk.backups.restore import restore_target
    from dutydesk.db import transaction

    moment = _moment(at)
    ready_database()
    if replace:
        typed = yes if yes is not None else typer.prompt(f"type {target!r} to overwrite")
        if typed != target:
            raise fail("not confirmed: nothing was restored")
    try:
        found = _find(target)
        with transaction(actor=cli_actor()) as session:
            typer.echo(restore_target(session, found, to=to, at=moment, replace=replace))
    except service.BackupInputError as error:
        raise fail(str(error)) from None
    except service.BackupFailed as error:
        raise fail(str(error), 1) from None


@app.command("archiving")
def archiving(target: Annotated[str, typer.Argument(help="A PostgreSQL target's name.")]) -> None:
    """Check that the PostgreSQL server of TARGET archives WAL (point-in-time recovery) and is
    current; exit 1 printing exactly what to change when not."""
    from dutydesk.backups import service
    from dutydesk.backups._pitr import archiving_problems

    ready_database()
    try:
        found = _find(target)
        if found.kind != "postgresql":
            raise service.BackupInputError(f"{found.name} is not a PostgreSQL target")
        url = found.source_url
    except service.BackupInputError as error:
        raise fail(str(error)) from None
    problems = archiving_problems(url)
    if not problems:
        typer.echo(f"ok: {target} archives WAL and the newest archived segment is current")
        return
    for problem in problems:
        typer.echo(f"- {problem}")
    raise typer.Exit(1)
