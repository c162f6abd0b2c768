"""`dutydesk log-sources add NAME GLOB [--format F] | list | remove NAME | scan [NAME]`."""

from __future__ import annotations

from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction, utcnow
from dutydesk.intake import log_sources
from dutydesk.intake.logs import LogInputError
from dutydesk.intake.models import LogSource
from dutydesk.logs.formats import FORMATS
from dutydesk.web.words import plural

app = typer.Typer(
    rich_markup_mode=None,
    help="Log sources: archive globs on this machine whose new lines are counted on a schedule.",
    no_args_is_help=True,
)


def _last_result(source: LogSource) -> str:
    result = source.last_result
    if "error" in result:
        return f"failed: {result['error']}"
    if "files" in result:
        return _counted(result)
    return "not scanned yet"


def _counted(result: dict[str, int]) -> str:
    return f"{plural(result['files'], 'file')}, {plural(result['events'], 'line')}"


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Source name the lines are counted under.")],
    glob: Annotated[str, typer.Argument(help="Absolute path glob, e.g. '/var/log/app/*.log*'.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help=f"auto or one of: {', '.join(FORMATS)}."),
    ] = "auto",
) -> None:
    """Add a log source; its files are counted at the next scan (`intake.log_scan`)."""
    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            made = log_sources.create_log_source(
                session, name=name, glob=glob, fmt=fmt, actor=cli_actor()
            )
            typer.echo(f"added log source {made.name}: {made.glob} ({made.format})")
    except log_sources.LogSourceError as error:
        raise fail(str(error)) from None


@app.command("list")
def list_sources() -> None:
    """List log sources with their glob, format and last scan."""
    ready_database()
    with transaction() as session:
        for source in log_sources.list_log_sources(session):
            scanned = source.last_scanned_at
            when = scanned.strftime("%Y-%m-%d %H:%M") if scanned else "never"
            state = "" if source.enabled else "  (disabled)"
            typer.echo(
                f"{source.name:<20} {source.format:<10} {source.glob}  "
                f"last scanned {when}: {_last_result(source)}{state}"
            )


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Log source name or id.")]) -> None:
    """Stop scanning a source (the lines it counted stay)."""
    ready_database()
    try:
        with transaction(actor=cli_actor()) as session:
            source = log_sources.get_log_source(session, name)
            shown = source.name
            log_sources.delete_log_source(session, source)
    except log_sources.LogSourceError as error:
        raise fail(str(error)) from None
    typer.echo(f"removed log source {shown}")


@app.command("scan")
def scan(
    name: Annotated[
        str | None, typer.Argument(help="Log source name or id (default: every enabled one).")
    ] = None,
) -> None:
    """Count what is new in one source, or every enabled one, here and now."""
    ready_database()
    failed = 0
    try:
        with transaction(actor=cli_actor()) as session:
            if name is not None:
                chosen = [log_sources.get_log_source(session, name)]
            else:
                chosen = [s for s in log_sources.list_log_sources(session) if s.enabled]
            for source in chosen:
                try:
                    with session.begin_nested():
                        result = log_sources.scan_source(session, source, utcnow())
                except (OSError, LogInputError) as error:
                    source.last_result = {"error": str(error)}
                    typer.echo(f"error: scanning {source.name} failed: {error}", err=True)
                    failed += 1
                    continue
                typer.echo(f"{source.name}: {_counted(result)}")
    except log_sources.LogSourceError as error:
        raise fail(str(error)) from None
    if failed:
        raise fail(f"{failed} of {plural(len(chosen), 'source')} failed", 1)
