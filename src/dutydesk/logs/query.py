"""A log query: what the CLI and the console ask, checked, run, and its report.

`run(Query(...))` answers with an Arrow table and a `Report` of what could not be used: lines
that do not parse (per file, with a sample) and files that could not be read. Lines reach
DuckDB in windows of Arrow batches (see `_sources` and `_execute`); a query reads them once, in
bounded memory, however big the files are.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dutydesk.logs import _auto, _engine, _files, extracts
from dutydesk.logs._engine import TIME_BUCKETS, Condition, Plan
from dutydesk.logs._files import FileList, Problem, Roots
from dutydesk.logs._report import Report
from dutydesk.logs.formats import FORMATS, LogFormat, UnknownFormat, get_format

if TYPE_CHECKING:
    # DuckDB, Arrow and the settings load inside the functions that need them: a small query
    # (see `run_small`) answers without them.
    import duckdb
    import pyarrow as pa

    from dutydesk.logs._s3 import S3
    from dutydesk.logs._small import SmallResult
    from dutydesk.settings import Settings

# Threads reading (opening, un-gzipping) small files while DuckDB parses on every core. On two
# cores one reader keeps DuckDB busy (bench/logs.py: a second one gained nothing); with more
# cores, reading is what limits, so more readers pay.
READ_THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
_WHERE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)([~=])(.*)$", re.DOTALL)
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class QueryError(ValueError):
    """A query that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Query:
    """A log query. `sources` are globs (local, `s3://`) or one `@NAME` extract."""

    sources: tuple[str, ...]
    format: str = "auto"
    since: str | None = None  # ISO 8601 or relative (`2h`, `1d`)
    until: str | None = None
    where: tuple[str, ...] = ()  # FIELD~REGEX or FIELD=VALUE
    group_by: tuple[str, ...] = ()  # fields or minute|hour|day
    top: int | None = None
    percentiles: str | None = None
    save: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The query as JSON-ready data (an extract's sidecar keeps it)."""
        data = asdict(self)
        data["command"] = self.command_line()
        return data

    def command_line(self) -> str:
        """The `dutydesk logs query` command that asks this query."""
        import shlex

        words = ["dutydesk", "logs", "query", *self.sources, "--format", self.format]
        for option, value in (
            ("--since", self.since),
            ("--until", self.until),
            ("--top", self.top),
            ("--percentiles", self.percentiles),
        ):
            if value is not None:
                words += [option, str(value)]
        for item in self.where:
            words += ["--where", item]
        for item in self.group_by:
            words += ["--group-by", item]
        if self.save:
            words += ["--save", self.save]
        return shlex.join(words)


@dataclass
class QueryResult:
    """The answer (an Arrow table) and its report; `fill`, when the parsed cache's fill was
    left for later (`run(..., fill_later=True)`), fills it: the number of files parsed."""

    table: pa.Table
    report: Report
    fill: Callable[[], int] | None = None


def parse_time(text: str, now: dt.datetime | None = None) -> str:
    """`text` (ISO 8601, naive meaning UTC, or relative like `30m`, `2h`, `1d`) as ISO UTC."""
    now = now or dt.datetime.now(dt.UTC)
    relative = _RELATIVE.match(text.strip())
    if relative:
        delta = dt.timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return (now - delta).isoformat()
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(
            f"cannot read the time {text!r}: use ISO 8601 (2026-11-23T10:00, naive is UTC) "
            "or a relative time like 30m, 2h, 1d, 1w"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def parse_where(text: str, columns: tuple[str, ...]) -> Condition:
    """One `--where` (FIELD~REGEX or FIELD=VALUE), its field checked against `columns`."""
    match = _WHERE.match(text)
    if match is None:
        raise QueryError(
            f"malformed --where {text!r}: use FIELD~REGEX or FIELD=VALUE, e.g. "
            "'path~^/api/' or 'status=500'"
        )
    name, op, value = match.groups()
    if name not in columns:
        raise QueryError(f"--where {text!r}: no field {name!r}; fields: {', '.join(columns)}")
    return Condition(name, op, value)


def _check_regexes(conditions: tuple[Condition, ...]) -> None:
    import duckdb

    if not any(condition.op == "~" for condition in conditions):
        return
    # A connection to a database kept for the process: starting one costs more CPU than
    # answering a repeated query from the parsed cache.
    checker = _engine.connect(Roots((), ()))
    try:
        for condition in conditions:
            if condition.op != "~":
                continue
            try:
                checker.execute("SELECT regexp_matches('', ?)", [condition.value])
            except duckdb.Error as error:
                message = str(error).split("\n")[0]
                raise QueryError(
                    f"--where {condition.field}~{condition.value}: not a valid regex ({message})"
                ) from None
    finally:
        checker.close()


def roots_of(settings: Settings) -> Roots:
    """The allowed log roots of these settings."""
    return Roots.parse(settings.effective_log_roots)


def extracts_folder(settings: Settings) -> Path:
    """Where extracts are kept."""
    return settings.home_path / "extracts"


def _columns_of(fmt: LogFormat) -> tuple[str, ...]:
    return ("file", *fmt.fields)


def _check_names(query: Query, columns: tuple[str, ...], fmt: LogFormat | None) -> None:
    for name in query.group_by:
        if name not in columns and name not in TIME_BUCKETS:
            raise QueryError(
                f"--group-by {name}: no such field; use one of {', '.join(columns)} "
                f"or {'|'.join(TIME_BUCKETS)}"
            )
        if name in TIME_BUCKETS and "ts" not in columns:
            raise QueryError(f"--group-by {name} needs a `ts` field, which this source lacks")
    if query.percentiles is not None:
        numeric = fmt is None or fmt.field_type(query.percentiles) in {"int", "float"}
        if query.percentiles not in columns or not numeric:
            raise QueryError(
                f"--percentiles {query.percentiles}: not a numeric field of this format"
            )
    if query.top is not None and query.top < 1:
        raise QueryError("--top must be at least 1")


def plan_of(
    query: Query,
    fmt: LogFormat | None,
    columns: tuple[str, ...],
    check_regexes: Callable[[tuple[Condition, ...]], None] = _check_regexes,
) -> Plan:
    """The checked plan of `query` over `columns`; QueryError names what is wrong."""
    conditions = tuple(parse_where(item, columns) for item in query.where)
    _check_names(query, columns, fmt)
    check_regexes(conditions)
    since = parse_time(query.since) if query.since else None
    until = parse_time(query.until) if query.until else None
    if (since or until) and "ts" not in columns:
        raise QueryError("--since/--until need a `ts` field, which this source lacks")
    needs_file = "file" in query.group_by or any(c.field == "file" for c in conditions)
    return Plan(
        fmt=fmt,
        columns=columns,
        where=conditions,
        since=since,
        until=until,
        group_by=query.group_by,
        percentiles=query.percentiles,
        needs_file=needs_file or (fmt is not None and not (query.group_by or query.percentiles)),
    )


def run(
    query: Query,
    *,
    settings: Settings | None = None,
    progress: Callable[[int], None] | None = None,
    on_files: Callable[[FileList], None] | None = None,
    cache: bool = True,
    fill_later: bool = False,
) -> QueryResult:
    """Answer `query`: counts or rows as an Arrow table, and a report of what was not read.

    Raises QueryError (outside the roots, unknown format, a malformed --where, ...) before
    reading anything. `on_files` sees the file list before reading (for a progress bar).
    Grouped counts over local files go through the parsed cache (see `_cache`) unless `cache`
    is false or DUTYDESK_LOG_CACHE_BYTES is 0. With `--format auto` each file is read in its
    own format (see `_auto`).

    With `fill_later`, a query over files mostly not cached answers as without the cache
    (parsing only the fields it uses) and hands back the fill as `result.fill`, for the caller
    to run once the answer is out, or to skip (the console's requests do).
    """
    from dutydesk.logs._s3 import S3
    from dutydesk.settings import get_settings

    settings = settings or get_settings()
    if not query.sources:
        raise QueryError("give at least one GLOB (or @NAME of an extract)")
    named = [source for source in query.sources if source.startswith("@")]
    if named:
        if len(query.sources) != 1:
            raise QueryError("an @extract is queried alone, without other globs")
        return _run_extract(query, settings, named[0][1:])
    if query.format != "auto":
        try:
            fmt: LogFormat | None = get_format(query.format)
        except UnknownFormat as error:
            raise QueryError(str(error)) from None
    else:
        fmt = None
    roots = roots_of(settings)
    files = FileList()
    s3 = S3(settings, roots) if any(s.startswith("s3://") for s in query.sources) else None
    try:
        try:
            for pattern in query.sources:
                if pattern.startswith("s3://"):
                    assert s3 is not None
                    s3.list_into(pattern, files)
                else:
                    _files.list_local(pattern, roots, files)
        except _files.SourceError as error:
            raise QueryError(str(error)) from None
        if not files.files and not files.problems:
            raise QueryError(f"no files in {', '.join(query.sources)} (only empty folders)")
        reader = _Reader(query, settings, roots, files, s3, progress, cache, not fill_later)
        if fmt is None:
            first = first_format_of(files.files, reader.head)
            if not query.save:  # an extract holds one format's columns
                result = _run_auto(query, reader, first, on_files)
                result.fill = reader.deferred_fill()
                return result
            fmt = FORMATS[first]
        if query.save:
            try:
                extracts.check_name(query.save)
            except extracts.ExtractError as error:
                raise QueryError(str(error)) from None
        plan = plan_of(query, fmt, _columns_of(fmt))
        if on_files:
            on_files(files)
        report = Report(format=fmt.name, files=len(files.files), problems=files.problems)
        table = reader.read(plan, files, report, query.top)
    finally:
        if s3 is not None:
            s3.close()
    if query.save and plan.aggregates:
        follow = Query(
            sources=(f"@{query.save}",),
            group_by=query.group_by,
            top=query.top,
            percentiles=query.percentiles,
        )
        table = _run_extract(follow, settings, query.save).table
    return QueryResult(table, report, reader.deferred_fill())


def first_format_of(files: list[str], head: Callable[[str], list[str] | Problem]) -> str:
    """The glob's format under `auto`: what the first files' first lines tell (QueryError if
    they tell none)."""
    try:
        return _auto.first_format(files, head)
    except UnknownFormat as error:
        raise QueryError(str(error)) from None


@dataclass
class _Reader:
    """Reads a plan over some of a query's files, through the cache where it can."""

    query: Query
    settings: Settings
    roots: Roots
    files: FileList
    s3: S3 | None
    progress: Callable[[int], None] | None
    cache: bool
    fill_now: bool = True
    later: list[Callable[[], int]] = field(default_factory=list)

    def deferred_fill(self) -> Callable[[], int] | None:
        """The cache fills this query's reads left for later, as one call (None: none)."""
        fills = list(self.later)
        if not fills:
            return None
        return lambda: sum(each() for each in fills)

    def head(self, path: str) -> list[str] | Problem:
        """A file's first lines, to tell its format."""
        return _auto.head_lines(path, self.s3)

    def subset(self, paths: list[str]) -> FileList:
        """The files `paths` (some of the query's, in its order), as listed: sizes, mtimes
        and ETags kept (the cache checks a file by them), problems not."""
        whole = self.files
        part = FileList(etags={path: whole.etags[path] for path in paths if path in whole.etags})
        if paths == whole.files:  # the whole listing: the cache may know it as one block
            part.extend(list(whole.files), list(whole.sizes), list(whole.mtimes))
            return part
        index = {path: i for i, path in enumerate(whole.files)}
        ids = [index[path] for path in paths]
        part.extend(paths, [whole.sizes[i] for i in ids], [whole.mtimes[i] for i in ids])
        return part

    def read(self, plan: Plan, files: FileList, report: Report, top: int | None) -> pa.Table:
        """`plan`'s answer over `files` (cut to `top`); what was not read goes to `report`."""
        from dutydesk.logs import _cache, _execute, _sources

        query, settings, s3 = self.query, self.settings, self.s3
        fmt = plan.fmt
        assert fmt is not None
        folder = extracts_folder(settings)
        stream_options: dict[str, Any] = {
            "multiline": fmt.multiline,
            "events": fmt.events(),
            "progress": self.progress,
            "threads": READ_THREADS,
            "fetch": s3.fetch_each if s3 else None,
            "opener": s3.open if s3 else None,
        }
        stream = _sources.LineStream(files, **stream_options)
        memory = settings.log_query_memory
        connection = _engine.connect(self.roots, [folder], memory_limit=memory)
        use_cache = self.cache and settings.log_cache_bytes > 0
        if use_cache and _cache.usable(plan, files, bool(query.save), remote=s3 is not None):
            later: list[FileList] | None = None if self.fill_now else []
            try:
                cached = _cache.answer(
                    settings,
                    connection,
                    plan,
                    top,
                    files,
                    _sources.LineStream,
                    stream_options,
                    report,
                    self.roots,
                    query.sources,
                    later,
                )
            finally:
                connection.close()
            if cached is not None:
                return cached
            if later:
                options = {**stream_options, "progress": None}
                self.later += [
                    partial(
                        _cache.fill, settings, plan, part, _sources.LineStream, options, self.roots
                    )
                    for part in later
                ]
            connection = _engine.connect(self.roots, [folder], memory_limit=memory)
        try:
            with_file = plan.needs_file or bool(query.save)
            windows = _execute.windows(connection, stream, with_file=with_file)
            query = replace(query, top=top)
            return _answer(connection, query, plan, windows, files.files, report, folder)
        finally:
            connection.close()


def lacks(query: Query, fmt: LogFormat) -> str:
    """Why `fmt` cannot answer `query` (it lacks a field the query names), or "".

    Other mistakes (a malformed --where, a bad regex or time) raise QueryError."""
    columns = _columns_of(fmt)
    named = {match.group(1) for item in query.where if (match := _WHERE.match(item))}
    named |= {name for name in query.group_by if name not in TIME_BUCKETS}
    if query.percentiles:
        named.add(query.percentiles)
    if query.since or query.until or any(name in TIME_BUCKETS for name in query.group_by):
        named.add("ts")
    numeric = query.percentiles is None or fmt.field_type(query.percentiles) in {"int", "float"}
    if named <= set(columns) and numeric:
        return ""
    try:
        plan_of(query, fmt, columns, check_regexes=lambda conditions: None)
    except QueryError as error:
        return str(error)
    missing = sorted(named - set(columns))
    return f"{fmt.name} has no field {', '.join(missing)}"


def _run_auto(
    query: Query, reader: _Reader, first: str, on_files: Callable[[FileList], None] | None
) -> QueryResult:
    """`query` with each file read in its own format (`_auto.per_file`), answers combined."""
    files = reader.files

    def read(name: str, members: list[str], alone: bool) -> _auto.Group[pa.Table]:
        fmt = FORMATS[name]
        part = reader.subset(members)
        report = Report(format=name, files=len(members), problems=part.problems)
        reason = lacks(query, fmt)
        if reason:
            # Read with no field but `file`, to find the files of other formats among these.
            probe = plan_of(Query(query.sources, name, group_by=("file",)), fmt, _columns_of(fmt))
            reader.read(probe, part, report, None)
            return _auto.Group(None, report, reason)
        plan = plan_of(query, fmt, _columns_of(fmt))
        return _auto.Group(reader.read(plan, part, report, query.top if alone else None), report)

    if on_files:
        on_files(files)
    outcome = _auto.per_file(files.files, first, read, reader.head)
    report = outcome.report
    report.files = len(files.files)
    report.problems[:0] = files.problems
    if not outcome.answers:
        if outcome.first_skipped:
            raise QueryError(outcome.first_skipped)
        empty = read(first, [], True)  # every file unreadable: the columns, no rows
        assert empty.answer is not None
        return QueryResult(empty.answer, report)
    if len(outcome.answers) == 1:
        return QueryResult(outcome.answers[0][1], report)
    return QueryResult(_combined(query, reader, outcome, report), report)


def _combined(
    query: Query, reader: _Reader, outcome: _auto.Outcome[pa.Table], report: Report
) -> pa.Table:
    """The answers of several formats as one: rows one after the other (columns by name),
    counts added up per group, percentiles over every format's values."""
    from dutydesk.logs import _mixed

    tables = [table for _, table in outcome.answers]
    if not (query.group_by or query.percentiles):
        table = _mixed.union(tables)
        return table if query.top is None else table.slice(0, query.top)
    first = FORMATS[outcome.answers[0][0]]
    plan = plan_of(query, first, _columns_of(first))
    if query.percentiles:
        # Percentiles do not add up: count each value per group in each format instead.
        keys = tuple(dict.fromkeys((*query.group_by, query.percentiles)))
        counted = replace(query, group_by=keys, percentiles=None, top=None)
        tables = []
        for name, _ in outcome.answers:
            fmt = FORMATS[name]
            part = reader.subset(report.formats[name])
            tables.append(
                reader.read(plan_of(counted, fmt, _columns_of(fmt)), part, Report(), None)
            )
    connection = _engine.connect(reader.roots, memory_limit=reader.settings.log_query_memory)
    try:
        return _mixed.counts(connection, plan, query.top, tables)
    finally:
        connection.close()


def _answer(
    connection: duckdb.DuckDBPyConnection,
    query: Query,
    plan: Plan,
    sources: Iterator[str],
    files: list[str],
    report: Report,
    folder: Path,
) -> pa.Table:
    """Rows, grouped counts, or the saved extract's summary, as the query asks."""
    import pyarrow as pa

    from dutydesk.logs import _execute

    if query.save:
        assert plan.fmt is not None
        rows_plan = replace(plan, group_by=(), percentiles=None, needs_file=True, params=[])
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{query.save}.parquet"
        written = _execute.save(connection, rows_plan, sources, files, report, target)
        report.saved = extracts.write_sidecar(
            folder,
            query.save,
            rows=written,
            fmt=plan.fmt.name,
            columns=list(plan.columns),
            query=query.as_dict(),
        )
        return pa.table({"extract": [query.save], "rows": [written], "path": [str(target)]})
    if plan.aggregates:
        return _execute.aggregate(connection, plan, query.top, sources, files, report)
    return _execute.rows(connection, plan, query.top, sources, files, report)


def _run_extract(query: Query, settings: Settings, name: str) -> QueryResult:
    folder = extracts_folder(settings)
    try:
        extract = extracts.get_extract(folder, name)
    except extracts.ExtractError as error:
        raise QueryError(str(error)) from None
    if query.save:
        raise QueryError("--save is for queries over logs; an extract is saved already")
    plan = plan_of(query, None, extract.columns)
    connection = _engine.connect(
        roots_of(settings), [folder], memory_limit=settings.log_query_memory
    )
    report = Report(format=extract.format, files=1)
    try:
        source = f"read_parquet({_engine.quote_literal(str(extract.path))})"
        table = _answer(connection, query, plan, iter([source]), [], report, folder)
    finally:
        connection.close()
    return QueryResult(table, report)


def run_small(query: Query, settings: Settings | None = None) -> SmallResult | None:
    """Answer `query` without DuckDB and Arrow when its files are small and it is simple.

    The same answer `run` gives, as rows of Python values (see `_small`); None when the query
    needs the engine. Raises QueryError as `run` does.
    """
    from dutydesk.logs import _small

    return _small.run(query, settings)
