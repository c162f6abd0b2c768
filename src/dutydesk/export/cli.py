"""`dutydesk export ...`: run an export here or queue it, see runs and tables."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import select

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import session_factory, transaction
from dutydesk.export.models import ExportRun, WarehouseTable
from dutydesk.export.request import InvalidRequest, SharingMode

app = typer.Typer(help="The nightly export of study records.", no_args_is_help=True)


def _table_key(text: str) -> dict[str, Any]:
    study, sep, rest = text.partition("/")
    schema, sep2, revision = rest.partition("/")
    if not (sep and sep2 and revision.isdigit()):
        raise typer.BadParameter(f"{text!r} is not STUDY/SCHEMA/REVISION", param_hint="--table")
    return {"appId": study, "schemaId": schema, "revision": int(revision)}


@app.command("run")
def run(
    start: Annotated[str, typer.Option(help="Start (ISO date-time with offset), inclusive.")],
    end: Annotated[str, typer.Option(help="End (ISO date-time with offset), exclusive.")],
    study: Annotated[list[str] | None, typer.Option(help="Only this study (repeatable).")] = None,
    table: Annotated[
        list[str] | None, typer.Option(help="Only this table, as STUDY/SCHEMA/REVISION.")
    ] = None,
    sharing_mode: Annotated[SharingMode, typer.Option(help="Which sharing scopes go out.")] = (
        SharingMode.SHARED
    ),
    queue: Annotated[bool, typer.Option(help="Leave the run to the workers.")] = False,
) -> None:
    """Export the records uploaded in [START, END): here with a progress bar, or queued."""
    from dutydesk.export import service  # DuckDB and Arrow load with it: only when exporting
    from dutydesk.records.cli import ready_records

    ready_database()
    ready_records()
    body: dict[str, Any] = {
        "useLastExportTime": False,
        "startDateTime": start,
        "endDateTime": end,
        "sharingMode": sharing_mode.value,
    }
    if study:
        body["studyWhitelist"] = study
    if table:
        body["tableWhitelist"] = [_table_key(item) for item in table]
    try:
        with transaction(actor=cli_actor()) as session:
            export_run = service.start_run(session, body, created_by=cli_actor(), queue=queue)
            run_id = export_run.id
    except InvalidRequest as error:
        raise fail(str(error)) from None
    if queue:
        typer.echo(f"queued export run {run_id}")
        return
    from dutydesk.settings import get_settings

    with typer.progressbar(length=1, label="exporting", file=None) as bar:

        def progress(study_id: str, done: int, total: int) -> None:
            bar.length = total
            bar.label = f"exported {study_id}"
            bar.update(1)

        finished = service.run_in_foreground(
            session_factory(), run_id, get_settings().effective_records_url, progress
        )
    typer.echo(finished.final_line or f"run {run_id} ended {finished.state}")
    if finished.state != "succeeded":
        raise typer.Exit(1)


@app.command("status")
def status(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """Recent export runs, newest first."""

    ready_database()
    with transaction() as session:
        for row in session.scalars(select(ExportRun).order_by(ExportRun.id.desc()).limit(limit)):
            counters = row.metrics.get("counters", {})
            typer.echo(
                f"{row.id:>5} {row.state:<10} {row.created_at:%Y-%m-%d %H:%M} "
                f"records={counters.get('numTotal', 0)} studies={len(row.studies)} "
                f"{row.request_text}"
            )


@app.command("tables")
def tables() -> None:
    """The warehouse's tables with their kind, columns and row counts."""

    ready_database()
    with transaction() as session:
        for row in session.scalars(select(WarehouseTable).order_by(WarehouseTable.key)):
            typer.echo(f"{row.key:<48} {row.kind:<10} columns={len(row.columns)}")
