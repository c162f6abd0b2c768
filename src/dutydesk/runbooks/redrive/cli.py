"""`dutydesk redrive add | list | show BATCH | submit BATCH | verify BATCH`.

Submitting (and editing a submitted batch) acts as a desk user, who proves it with their
password (asked for, never taken from an option).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dutydesk.commandline import cli_actor, desk_user, fail, ready_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dutydesk.runbooks.redrive.models import RedriveBatch

app = typer.Typer(
    rich_markup_mode=None,
    help="Re-drive batches: add record IDs, list, show, submit for signoff, verify.",
    no_args_is_help=True,
)

BatchArgument = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Batch id.")]


def _batch(session: Session, batch_id: int) -> RedriveBatch:
    from dutydesk.runbooks.redrive import service

    try:
        return service.get_batch(session, batch_id)
    except service.RedriveError as error:
        raise fail(str(error)) from None


@app.command("add")
def add(
    ids: Annotated[list[str] | None, typer.Argument(help="Record IDs.", show_default=False)] = None,
    study: Annotated[str, typer.Option("--study", help="The study the IDs belong to.")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why they are re-driven.")] = "",
    file: Annotated[
        Path | None,
        typer.Option("--file", exists=True, dir_okay=False, help="A text file, one ID a line."),
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", min=1, help="Batch id; this month's open batch.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Your username (a submitted batch).")
    ] = None,
) -> None:
    """Add record IDs (arguments, or --file) to this month's open batch or --batch."""
    from dutydesk.db import transaction
    from dutydesk.records.store import records_session_factory
    from dutydesk.runbooks.redrive import service

    if bool(ids) == bool(file):
        raise fail("give record IDs as arguments or --file, not both and not neither")
    if not reason.strip():
        raise fail("give --reason")
    lines = list(ids or [])
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise fail(f"cannot read {file}: {error}") from None
    ready_database()
    with transaction(actor=cli_actor()) as session, records_session_factory()() as records:
        person = desk_user(session, user) if user else None
        target = (
            _batch(session, batch)
            if batch is not None
            else service.open_batch(session, actor=cli_actor())
        )
        try:
            report = service.add_ids(
                session,
                records,
                target,
                lines,
                study=study or None,
                reason=reason,
                source="cli",
                actor=person.username if person else cli_actor(),
                user=person,
            )
        except service.RedriveError as error:
            raise fail(str(error)) from None
    for problem in report.refused:
        typer.echo(f"refused: {problem}", err=True)
    typer.echo(report.summary())
    if report.refused and not report.added:
        raise typer.Exit(1)


@app.command("list")
def list_batches(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50) -> None:
    """List batches, newest first."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.redrive import service

    ready_database()
    with transaction() as session:
        batches = service.list_batches(session, limit=limit)
        counts = service.item_counts(session, [batch.id for batch in batches])
        for batch in batches:
            change = f"change #{batch.change_id}" if batch.change_id else "-"
            typer.echo(
                f"{batch.id:<6} {batch.month}  {batch.state:<10} {counts.get(batch.id, 0):>8} IDs"
                f"  {change}"
            )


@app.command("show")
def show(batch_id: BatchArgument) -> None:
    """Show a batch: evidence, counts per study and reason, run and verification."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.redrive import service

    ready_database()
    with transaction() as session:
        batch = _batch(session, batch_id)
        proof = service.evidence(session, batch)
        typer.echo(f"batch {batch.id}  {batch.month}  {batch.state}")
        typer.echo(f"IDs {proof['count']}  sha256 {proof['sha256']}")
        if batch.change_id:
            typer.echo(f"change request #{batch.change_id}")
        if batch.export_run_id:
            typer.echo(f"export run {batch.export_run_id}")
        for study, reason, count in service.counts_by_study_and_reason(session, batch):
            typer.echo(f"  {study:<20} {count:>8}  {reason}")
        report = batch.verification
        if report:
            counts = ", ".join(f"{n} {outcome}" for outcome, n in report["counts"].items())
            typer.echo(f"verified {report['checked_at']}: {counts}")
            typer.echo(f"missing without a reason: {report['missing']}")
            for record_id, study, outcome, detail in report["not_present"]:
                typer.echo(f"  {record_id} ({study}) {outcome}{': ' + detail if detail else ''}")


@app.command("submit")
def submit(
    batch_id: BatchArgument,
    user: Annotated[str, typer.Option("--user", "-u", help="Your desk username.")],
) -> None:
    """Submit an open batch as a change request; its signers are notified."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.redrive import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        person = desk_user(session, user)
        try:
            change = service.submit(session, _batch(session, batch_id), person)
        except service.RedriveError as error:
            raise fail(str(error)) from None
        typer.echo(
            f"batch {batch_id} is change request #{change.id} ({change.state}), "
            f"version {change.data_version}, evidence {change.evidence_hash}"
        )


@app.command("verify")
def verify(batch_id: BatchArgument) -> None:
    """Check every ID of the batch against its export run again; exit 1 when IDs are missing."""
    from dutydesk.db import transaction
    from dutydesk.export.models import ExportRun
    from dutydesk.export.service import FINISHED
    from dutydesk.records.store import records_session_factory
    from dutydesk.runbooks.redrive import _verify

    ready_database()
    with transaction(actor=cli_actor()) as session, records_session_factory()() as records:
        batch = _batch(session, batch_id)
        run = session.get(ExportRun, batch.export_run_id) if batch.export_run_id else None
        if run is None and batch.verification is None:
            raise fail(f"batch {batch_id} has not run; there is nothing to verify")
        if run is not None and run.state not in FINISHED:
            raise fail(f"export run {run.id} of batch {batch_id} is still {run.state}")
        report = _verify.verify(session, records, batch)
        state = batch.state
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report["counts"].items())
    typer.echo(f"batch {batch_id} {state}: {counts}; missing without a reason: {report['missing']}")
    if report["missing"]:
        raise typer.Exit(1)
