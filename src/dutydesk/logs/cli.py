"""`dutydesk logs ...`: query log files by glob, save and list extracts."""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dutydesk.commandline import fail
from dutydesk.logs.extracts import list_extracts
from dutydesk.logs.formats import FORMAT_NAMES

if TYPE_CHECKING:
    import pyarrow as pa

    from dutydesk.logs._files import FileList
    from dutydesk.logs._small import SmallResult

app = typer.Typer(
    rich_markup_mode=None, help="Query access and application logs by glob.", no_args_is_help=True
)


class Out(enum.StrEnum):
    """How the answer is written to stdout."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def cell(value: Any) -> str:
    """A value as text: times in ISO 8601 UTC, floats without noise, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        moment: dt.datetime = value.astimezone(dt.UTC) if value.tzinfo else value
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z"
    if isinstance(value, float):
        return f"{value:.10g}"
    return f"{value}"


def _json_value(value: Any) -> Any:
    return cell(value) if isinstance(value, dt.datetime) else value


def write_table(table: pa.Table, out: Out) -> None:
    """Write `table` to stdout as `out` says."""
    import pyarrow as pa

    if out is Out.parquet:
        import pyarrow.parquet as pq

        if sys.stdout.isatty():
            raise fail("--out parquet writes binary data; redirect it to a file")
        pq.write_table(table, sys.stdout.buffer)
        return
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    write_rows(table.column_names, table.to_pylist(), numeric, out)


def write_rows(names: list[str], rows: list[dict[str, Any]], numeric: list[bool], out: Out) -> None:
    """Write `rows` (dicts by column name) to stdout as `out` says (not Parquet); the columns
    flagged `numeric` are right-aligned in a table."""
    if out is Out.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([cell(row[name]) for name in names])
    elif out is Out.json:
        for row in rows:
            typer.echo(json.dumps({name: _json_value(row[name]) for name in names}))
    else:
        texts = [[cell(row[name]) for name in names] for row in rows]
        widths = [max([len(name), *(len(t[i]) for t in texts)]) for i, name in enumerate(names)]

        def line(values: list[str]) -> str:
            cells = [
                value.rjust(width) if right else value.ljust(width)
                for value, width, right in zip(values, widths, numeric, strict=True)
            ]
            return "  ".join(cells).rstrip()

        typer.echo(line(names))
        for text in texts:
            typer.echo(line(text))


@contextmanager
def _progress() -> Iterator[tuple[Any, Any]]:
    """A progress bar on stderr when it is a terminal: (on_files, progress) callbacks.

    Each `on_files(files, step)` starts a new bar (a report reads in several queries, each
    named by its step)."""
    if not sys.stderr.isatty():
        yield None, None
        return
    from tqdm import tqdm

    bar: list[Any] = []

    def on_files(files: FileList, step: str = "") -> None:
        if bar:
            bar.pop().close()
        counted = f"{len(files.files)} file(s)"
        bar.append(
            tqdm(
                total=files.total_bytes or None,
                unit="B",
                unit_scale=True,
                desc=f"{step}: {counted}" if step else counted,
                file=sys.stderr,
                leave=False,
            )
        )

    def progress(done: int) -> None:
        if bar:
            bar[0].update(done)

    try:
        yield on_files, progress
    finally:
        if bar:
            bar[0].close()


def _split_names(values: list[str] | None) -> tuple[str, ...]:
    return tuple(name.strip() for value in values or () for name in value.split(",") if name)


@app.command("query", short_help="Filter and count log lines of files, folders, S3 or extracts.")
def query(
    globs: Annotated[
        list[str],
        typer.Argument(help="Files, folders (all below), globs, s3:// URLs, or @NAME."),
    ],
    format: Annotated[
        str, typer.Option("--format", help=f"Log format: {'|'.join(FORMAT_NAMES)}.")
    ] = "auto",
    layout: Annotated[
        str | None,
        typer.Option(help="A log4j/logback pattern the lines follow (instead of --format)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="From (ISO 8601 or 30m, 2h, 1d).")] = None,
    until: Annotated[str | None, typer.Option(help="Until, exclusive (same forms).")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="FIELD~REGEX or FIELD=VALUE (repeatable).")
    ] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option(help="Count by FIELD or minute|hour|day (repeatable or a,b)."),
    ] = None,
    top: Annotated[int | None, typer.Option(min=1, help="Only the N largest groups.")] = None,
    percentiles: Annotated[
        str | None, typer.Option(help="p50, p90, p95, p99 of this numeric FIELD.")
    ] = None,
    out: Annotated[Out, typer.Option(help="Output format.")] = Out.table,
    save: Annotated[
        str | None, typer.Option(help="Save the filtered rows as extract NAME.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Parse every file; neither read nor fill the cache.")
    ] = False,
    file_formats: Annotated[
        bool,
        typer.Option("--file-formats", help="With auto: each file's format, on stderr."),
    ] = False,
) -> None:
    """Filter and count log lines; what does not parse is reported on stderr."""
    from dutydesk.logs import query as log_query

    asked = log_query.Query(
        sources=tuple(globs),
        format=f"layout:{layout}" if layout else format,
        since=since,
        until=until,
        where=tuple(where or ()),
        group_by=_split_names(group_by),
        top=top,
        percentiles=percentiles,
        save=save,
    )
    result: log_query.QueryResult | SmallResult | None = None
    try:
        if out is not Out.parquet:
            # A few small files: answered without loading DuckDB, Arrow and numpy.
            result = log_query.run_small(asked)
        if result is None:
            with _progress() as (on_files, progress):
                result = log_query.run(
                    asked,
                    progress=progress,
                    on_files=on_files,
                    cache=not no_cache,
                    fill_later=True,
                )
    except log_query.QueryError as error:
        raise fail(str(error)) from None
    for line in result.report.lines():
        typer.echo(line, err=True)
    for line in result.report.file_formats() if file_formats else ():
        typer.echo(line, err=True)
    report = result.report
    rows = result.table.num_rows if isinstance(result, log_query.QueryResult) else result.num_rows
    if report.files and len(report.problems) >= report.files and not rows:
        raise fail("none of the files could be read", 1)
    if report.unparsed and not rows and not (asked.where or asked.since or asked.until):
        # Nothing was filtered out, so no line of any file parsed.
        raise fail(f"no line of any file reads as {report.format}; give --format or --layout", 1)
    if report.saved is not None:
        saved = report.saved
        message = f"saved {saved.rows} row(s) as extract {saved.name} ({saved.path})"
        if not (asked.group_by or asked.percentiles):
            typer.echo(message)
            return
        typer.echo(message, err=True)
    if isinstance(result, log_query.QueryResult):
        write_table(result.table, out)
        if result.fill is not None:
            _fill_after_answer(result.fill)
    else:
        numeric = [column.numeric for column in result.columns]
        write_rows(result.column_names, result.rows, numeric, out)


def _fill_after_answer(fill: Callable[[], int]) -> None:
    """Fill the parsed cache once the answer is out: stdout is closed first, so a pipe's
    reader has the whole answer; Ctrl-C skips (what was filled stays, consistent)."""
    import duckdb

    sys.stdout.flush()
    try:
        if not sys.stdout.isatty():
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
    except (OSError, ValueError):  # no file descriptor behind stdout (tests)
        pass
    typer.echo("filling the parsed cache for next time... Ctrl-C skips", err=True)
    try:
        fill()
    except (KeyboardInterrupt, duckdb.InterruptException):
        typer.echo("skipped: the next query parses the files not filled yet", err=True)


@app.command("report", short_help="A GoAccess-like report of access logs; --html FILE writes it.")
def report(
    globs: Annotated[
        list[str], typer.Argument(help="Access log files, folders (all below), globs, s3:// URLs.")
    ],
    html: Annotated[
        Path | None, typer.Option(help="Write the report to this self-contained HTML file.")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="nginx|apache|alb|elb, or auto to tell from the lines.")
    ] = "auto",
    since: Annotated[str | None, typer.Option(help="From (ISO 8601 or 30m, 2h, 1d).")] = None,
    until: Annotated[str | None, typer.Option(help="Until, exclusive (same forms).")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="FIELD~REGEX or FIELD=VALUE (repeatable).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows of each top list.")] = 20,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Parse every file; neither read nor fill the cache.")
    ] = False,
) -> None:
    """A report of access logs like GoAccess's: requests and visitors over time, statuses, top
    paths, referrers, agents and bots, bytes, slowest requests; the totals on stdout."""
    from dutydesk.logs import _htmlreport

    ask = _htmlreport.ReportAsk(
        sources=tuple(globs),
        format=format,
        since=since,
        until=until,
        where=tuple(where or ()),
        top=top,
    )
    try:
        with _progress() as (on_files, progress):
            on_step = None if on_files is None else lambda step, files: on_files(files, step)
            made = _htmlreport.build(ask, cache=not no_cache, progress=progress, on_step=on_step)
    except _htmlreport.ReportError as error:
        raise fail(str(error)) from None
    for problem in made.problems:
        typer.echo(f"unreadable: {problem.file}: {problem.reason}", err=True)
    if made.unparsed_lines:
        typer.echo(f"unparsed: {made.unparsed_lines} line(s) are not {made.format}", err=True)
    if made.files and len(made.problems) >= made.files:
        raise fail("none of the files could be read", 1)
    if not made.requests and made.unparsed_lines and not (where or since or until):
        raise fail(f"no line of any file reads as {made.format}; give --format", 1)
    cached = (
        "all from the parsed cache"
        if made.cache and made.parsed_bytes == 0
        else f"{_size(made.parsed_bytes)} parsed"
    )
    typer.echo(
        f"{made.requests} requests, {made.visitors} unique visitors, {_size(made.bytes)} sent, "
        f"{made.files} file(s) of {made.format} ({cached}, {made.seconds:.1f} s)"
    )
    if made.paths:
        typer.echo(f"top path: {made.paths[0].name} ({made.paths[0].hits} hits)")
    if html is not None:
        try:
            _htmlreport.render_file(made, html)
        except OSError as error:
            raise fail(f"cannot write {html}: {error.strerror}") from None
        typer.echo(f"wrote {html}")


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


cache_app = typer.Typer(
    rich_markup_mode=None, help="The parsed cache of log files: stats, clear.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")


@cache_app.command("stats")
def cache_stats() -> None:
    """Files and bytes in the parsed cache (files that are gone are forgotten first)."""
    from dutydesk.logs import _cache
    from dutydesk.settings import get_settings

    settings = get_settings()
    cache = _cache.open_cache(settings)
    try:
        stats = cache.stats()
    finally:
        cache.close()
    typer.echo(f"folder    {stats.folder}")
    typer.echo(f"files     {stats.files}")
    typer.echo(f"segments  {stats.segments}")
    typer.echo(f"size      {_size(stats.bytes)} of {_size(stats.limit)}")


@cache_app.command("clear")
def cache_clear() -> None:
    """Empty the parsed cache."""
    from dutydesk.logs import _cache
    from dutydesk.settings import get_settings

    cache = _cache.open_cache(get_settings())
    try:
        freed = cache.clear()
    finally:
        cache.close()
    typer.echo(f"cleared the log cache ({_size(freed)})")


@app.command("extracts", short_help="List saved extracts: name, size, rows, when, and their query.")
def extracts() -> None:
    """Saved extracts: name, size, row count, when, and the query that made them."""
    from dutydesk.logs import query as log_query
    from dutydesk.settings import get_settings

    found = list_extracts(log_query.extracts_folder(get_settings()))
    if not found:
        typer.echo("no extracts yet; make one with `dutydesk logs query ... --save NAME`")
        return
    for item in found:
        typer.echo(
            f"{item.name:<24} {_size(item.size):>9} {item.rows:>10} rows  {item.created}  "
            f"{item.command}"
        )


@app.command("tail", short_help="Follow files and ship their new lines to the desk.")
def tail(
    paths: Annotated[list[Path], typer.Argument(help="Log files to follow (across rotation).")],
    source: Annotated[str, typer.Option(help="The log source the desk counts the lines under.")],
    token: Annotated[str, typer.Option(help="An API token with the `intake` scope.")],
    url: Annotated[
        str | None, typer.Option(help="The desk's address (default: DUTYDESK_BASE_URL).")
    ] = None,
    log_format: Annotated[
        str, typer.Option("--format", help="Line format, or auto to tell from the lines.")
    ] = "auto",
    state: Annotated[
        Path | None,
        typer.Option(help="Where the shipped positions are kept (default: in DUTYDESK_HOME)."),
    ] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes.")] = 2.0,
    once: Annotated[bool, typer.Option(help="Ship what is there now, then stop.")] = False,
) -> None:
    """Follow files and ship new lines in batches to the desk; resumes without duplicates."""
    import time

    import httpx

    from dutydesk.logs._tail import ShipError, Shipper
    from dutydesk.settings import get_settings

    settings = get_settings()
    state_path = state or settings.home_path / "tail" / f"{source.replace('/', '_')}.json"
    with httpx.Client(base_url=url or settings.base_url, timeout=30) as client:
        shipper = Shipper(client, source, token, state_path, log_format)
        while True:
            try:
                shipped = shipper.ship_once(paths)
            except (ShipError, httpx.HTTPError) as error:
                if once:
                    raise fail(str(error)) from None
                typer.echo(f"warning: {error}; trying again", err=True)
                shipped = 0
            if shipped:
                typer.echo(f"shipped {shipped} lines from {source}", err=True)
            if once:
                return
            time.sleep(interval)
