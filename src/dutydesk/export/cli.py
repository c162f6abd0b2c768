"""`dutydesk export ...`: run an export here or queue it, see runs and tables, keep schedules."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy import select

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import session_factory, transaction
from dutydesk.export.models import ExportRun, WarehouseTable
from dutydesk.export.request import InvalidRequest, SharingMode
from dutydesk.idents import as_id

app = typer.Typer(
    rich_markup_mode=None,
    help="The nightly export of study records.",
    no_args_is_help=True,
)


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

        try:
            finished = service.run_in_foreground(
                session_factory(), run_id, get_settings().effective_records_url, progress
            )
        except KeyboardInterrupt:
            raise fail(f"export run {run_id} stopped by Ctrl-C; it is marked failed", 130) from None
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


schedules_app = typer.Typer(
    rich_markup_mode=None,
    help="Export schedules: nightly (DAILY) or HOURLY requests that beat's tick starts.",
    no_args_is_help=True,
)
app.add_typer(schedules_app, name="schedules")


@schedules_app.command("list")
def list_schedules() -> None:
    """Every schedule with its type, time zone, override and when it fires next."""
    from dutydesk.db import utcnow
    from dutydesk.export import schedules

    ready_database()
    now = utcnow()
    with transaction() as session:
        found = schedules.list_schedules(session)
        if not found:
            typer.echo("no export schedules (add one with `dutydesk export schedules add`)")
        for schedule in found:
            override = json.dumps(schedule.request_override) if schedule.request_override else "-"
            next_fire = schedules.next_fire_text(schedule, now)
            typer.echo(
                f"{schedule.id:>4} {schedule.name:<24} {schedule.schedule_type:<6} "
                f"{schedule.time_zone:<20} next: {next_fire}  override: {override}"
            )


@schedules_app.command("add")
def add_schedule(
    name: Annotated[str, typer.Argument(help="Name: letters, digits, '_', '.' or '-'.")],
    time_zone: Annotated[
        str, typer.Option(help="IANA time zone whose midnight (or hour) starts a run.")
    ] = "UTC",
    schedule_type: Annotated[str, typer.Option("--type", help="DAILY or HOURLY.")] = "DAILY",
    override: Annotated[
        str,
        typer.Option(help='Request override as a JSON object, e.g. \'{"studyWhitelist": ["s"]}\'.'),
    ] = "",
    enabled: Annotated[
        bool, typer.Option(help="Fire it (--no-enabled saves it switched off).")
    ] = True,
) -> None:
    """Add a schedule; it first fires at the next boundary of its period."""
    from dutydesk.export import schedules

    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            made = schedules.create_schedule(
                session,
                name=name.strip(),
                time_zone=time_zone.strip(),
                schedule_type=schedule_type,
                request_override=schedules.parse_override_text(override),
                enabled=enabled,
            )
            shown = f"{made.name} ({made.schedule_type}, {made.time_zone})"
    except schedules.ScheduleError as error:
        raise fail(str(error)) from None
    typer.echo(f"added export schedule {shown}")


@schedules_app.command("remove")
def remove_schedule(
    schedule: Annotated[str, typer.Argument(help="Schedule name or id.")],
) -> None:
    """Delete a schedule (the runs it started stay)."""
    from dutydesk.export import schedules
    from dutydesk.export.models import ExportSchedule

    ready_database()
    with transaction(actor=cli_actor()) as session:
        found = session.scalar(select(ExportSchedule).where(ExportSchedule.name == schedule))
        if found is None and (number := as_id(schedule)) is not None:
            found = session.get(ExportSchedule, number)
        if found is None:
            raise fail(
                f"no export schedule named {schedule!r} (see `dutydesk export schedules list`)"
            )
        shown = found.name
        schedules.delete_schedule(session, found)
    typer.echo(f"removed export schedule {shown}")
