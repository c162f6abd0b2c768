"""`dutydesk records ...`, and the record store's part of `dutydesk db ...`."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from dutydesk.commandline import fail, ready_database, short_engine, verify_schema
from dutydesk.db import redacted, transaction
from dutydesk.records import migrations, service
from dutydesk.records.generate import GenerateError, generate
from dutydesk.records.store import records_session_factory, records_url, upgrade_records

app = typer.Typer(
    rich_markup_mode=None,
    help="The record store: the study data the nightly export reads.",
    no_args_is_help=True,
)


@contextlib.contextmanager
def store_engine() -> Iterator[tuple[str, Engine]]:
    """The record store's URL and a short-lived engine; an unreachable store is a clear error."""

    url = records_url()
    with short_engine(url, "the record store") as engine:
        yield url, engine


def ready_records() -> None:
    """Refuse to go on when the record store is not migrated to the newest schema."""
    with store_engine() as (url, engine):
        behind = migrations.current(engine) not in migrations.heads(url)
    if behind:
        raise fail("the record store is not up to date; run `dutydesk db upgrade` first")


def upgrade_store() -> str:
    """Migrate the record store to the newest revision; returns the line to print."""
    with store_engine() as (url, engine):
        upgrade_records(url)
        return f"{redacted(url)} (record store) is at {migrations.current(engine) or '(empty)'}"


def store_revision() -> str:
    """The record store's revision, for `dutydesk db current`."""
    with store_engine() as (_url, engine):
        return migrations.current(engine) or "(empty: never migrated)"


def check_store() -> str:
    """Refuse (exit 1) unless the record store is at head and matches its models."""

    with store_engine() as (url, engine):
        return verify_schema(
            migrations.RECORDS, url, engine, subject="record store", prefix="record store "
        )


@app.command("import")
def import_file(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="JSON Lines: one record per line."
        ),
    ],
) -> None:
    """Import records from a JSON Lines file; ids already stored are skipped, not overwritten.

    Prints the counts, then each bad line with its number on stderr (exit code 1 if any).
    """

    ready_database()
    ready_records()
    with path.open("rb") as lines, transaction(records_session_factory()) as session:
        report = service.import_jsonl(session, lines)
    typer.echo(
        f"imported {report.imported} records, skipped {report.skipped} already stored, "
        f"{len(report.bad_lines)} bad lines"
    )
    for number, reason in report.bad_lines:
        typer.echo(f"line {number}: {reason}", err=True)
    if report.bad_lines:
        raise typer.Exit(1)


@app.command("generate")
def generate_command(
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 1,
    studies: Annotated[int, typer.Option(min=1, help="Studies: study-a, study-b, ...")] = 3,
    participants: Annotated[int, typer.Option(min=1, help="Participants per study.")] = 50,
    days: Annotated[int, typer.Option(min=1, help="Days of uploads, ending with --end.")] = 30,
    records_per_day: Annotated[int, typer.Option(min=0, help="Records per study per day.")] = 100,
    attachment_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of attachment values with stored bytes."),
    ] = 0.05,
    end: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last day of uploads (UTC); default today."),
    ] = None,
    schemas: Annotated[
        int | None, typer.Option(min=1, max=5, help="Use only the first N of the 5 schemas.")
    ] = None,
    study: Annotated[
        list[str] | None,
        typer.Option(help="Name the studies (repeatable; instead of --studies)."),
    ] = None,
) -> None:
    """Add realistic synthetic studies to the record store (same seed, same data).

    New studies take the next free names (study-a, study-b, ...), beside those stored."""

    ready_database()
    ready_records()
    end_date = end.date() if end else dt.datetime.now(dt.UTC).date()
    try:
        report = generate(
            records_session_factory(),
            seed=seed,
            studies=studies,
            participants=participants,
            days=days,
            records_per_day=records_per_day,
            attachment_share=attachment_share,
            end_date=end_date,
            schemas=schemas,
            names=study,
        )
    except GenerateError as error:
        raise fail(str(error)) from None
    if report.unchanged:
        typer.echo(f"already stored as this would make them: {', '.join(report.unchanged)}")
    typer.echo(
        f"generated {report.studies} studies, {report.participants} participants "
        f"({report.withdrawn} withdrew), {report.schemas} schemas, {report.records} records "
        f"({report.malformed} with a malformed value), {report.attachments} attachments"
    )
    if report.study_ids:
        typer.echo(f"studies: {', '.join(report.study_ids)}")
    typer.echo(f"wrote them in {report.seconds:.1f} s: {report.records_per_second:,.0f} records/s")
