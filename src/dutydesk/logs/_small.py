"""The small-input path: a simple query over a few small files, answered in Python.

Starting DuckDB, Arrow and numpy (and the settings' pydantic-settings) takes longer than a
query over a few kilobytes of lines. For such a query this module gives the answer `query.run`
gives, as rows of Python values, following the engine's SQL (`_engine.build_sql`) step by step:
the same line tests before parsing, the same regex (Python's `re` and RE2 read the formats'
expressions alike), NULL for `''` and `-`, the same casts, filters, groups and order, and the
same report of unparsed lines and unreadable files.

It answers only where that is sure to be the same; anything else raises `NotSmall` inside and
the caller runs the engine: more than SMALL_BYTES of text, S3, extracts, `--save`,
`--percentiles`, JSON and Java formats, a regex outside a plain subset both engines read alike,
`=` on a time or decimal field, or a time or number not written in the canonical form the
format's parser reads (DuckDB's `strptime` and `TRY_CAST` could differ from Python on the
rest).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dutydesk.logs import _auto, _files
from dutydesk.logs._engine import TIME_BUCKETS, Condition, Plan, line_tests
from dutydesk.logs._files import FileList, Problem, Roots
from dutydesk.logs._report import Report
from dutydesk.logs.formats import FORMATS, LogFormat, UnknownFormat, unescape

if TYPE_CHECKING:
    from dutydesk.logs.query import Query
    from dutydesk.settings import Settings

SMALL_BYTES = 512 << 10  # at most this much text (after un-gzipping), over all files
SMALL_FORMATS = frozenset({"nginx", "apache", "elb", "alb"})
INT64_MAX = (1 << 63) - 1
# A regex made of these reads the same in Python's `re` (ASCII classes) and RE2: characters,
# `.`, classes of plain characters, groups, alternation, `*`, `+`, `?` (also lazy), anchors,
# and escapes of punctuation or `\d`, `\w`. No flags, repeat counts, `\s` (RE2's has no \v),
# POSIX classes or possessive repeats.
_PLAIN_REGEX = re.compile(
    "^(?:"
    r"""[A-Za-z0-9 /._:,;@=%&!#'"<>-]"""  # plain characters
    r"|[.*+?^$|()]"  # operators
    r"|\[[^\[\]\\]*\]"  # a class of plain characters
    r"|\\[-./()\[\]*+?|^$\\dw]"  # an escaped operator, \d, \w
    ")*$"
)
# What the subset above lets through that one engine reads and the other refuses.
_UNSURE = re.compile(r"[*+?]\+|[\^$|(][*+?]|\[\^?\]|\(\?")
_CANONICAL_INT = re.compile(r"^-?[0-9]+$")
_CANONICAL_FLOAT = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?$")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# The canonical forms of the formats' `ts_formats`: `%d/%b/%Y:%H:%M:%S %z` and
# `%Y-%m-%dT%H:%M:%S[.%f]Z` with exactly six fraction digits.
_ACCESS_TS = re.compile(
    r"^([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r" ([+-])([0-9]{2})([0-9]{2})$"
)
_AWS_TS = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{6}))?Z$"
)


class NotSmall(Exception):
    """The query needs the engine: its answer here could differ from DuckDB's."""


@dataclass(frozen=True)
class Column:
    """One column of the answer: its name and whether it holds numbers (right-aligned)."""

    name: str
    numeric: bool


@dataclass
class SmallResult:
    """The answer as rows (dicts by column name) of the values Arrow's `to_pylist` gives."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    report: Report = field(default_factory=Report)

    @property
    def column_names(self) -> list[str]:
        """The columns' names, in order."""
        return [column.name for column in self.columns]

    @property
    def num_rows(self) -> int:
        """How many rows the answer has."""
        return len(self.rows)


def log_roots_text(settings: Settings | None) -> str:
    """DUTYDESK_LOG_ROOTS as `Settings.effective_log_roots` reads it.

    Without `settings`, read from the environment as pydantic-settings reads these two fields
    (names case-insensitive, values as given, the same defaults) without importing it: a
    test checks both readings agree.
    """
    if settings is not None:
        return settings.effective_log_roots
    values = {name.upper(): value for name, value in os.environ.items()}
    roots = values.get("DUTYDESK_LOG_ROOTS", "")
    if roots:
        return roots
    home = Path(values.get("DUTYDESK_HOME", "./var")).expanduser().resolve()
    return str(home / "logs")


def run(query: Query, settings: Settings | None = None) -> SmallResult | None:
    """`query`'s answer when it is small and simple, else None (the engine answers it)."""
    from dutydesk.logs.query import QueryError

    try:
        return _run(query, settings)
    except NotSmall:
        return None
    except (_files.SourceError, UnknownFormat) as error:
        raise QueryError(str(error)) from None


def _run(query: Query, settings: Settings | None) -> SmallResult:
    from dutydesk.logs.query import QueryError, first_format_of

    if not query.sources or query.save or query.percentiles:
        raise NotSmall
    if any(source.startswith(("@", "s3://")) for source in query.sources):
        raise NotSmall
    if query.format != "auto" and query.format not in SMALL_FORMATS:
        raise NotSmall  # unknown formats get the engine's message
    roots = Roots.parse(log_roots_text(settings))
    files = FileList()
    for pattern in query.sources:
        _files.list_local(pattern, roots, files)
    if not files.files and not files.problems:
        raise QueryError(f"no files in {', '.join(query.sources)} (only empty folders)")
    if files.total_bytes > SMALL_BYTES:
        raise NotSmall
    if query.format == "auto":
        first = first_format_of(files.files, _auto.head_lines)
        return _run_auto(query, files, first)
    fmt = FORMATS[query.format]
    plan = _plan(query, fmt)
    report = Report(format=fmt.name, files=len(files.files), problems=files.problems)
    matching = _matching_rows(plan, fmt, files, report)
    return _result(query, [(plan, fmt, matching)], report)


Matched = tuple[Plan, LogFormat, list[dict[str, Any]]]


def _plan(query: Query, fmt: LogFormat) -> Plan:
    """`query`'s plan over `fmt`, or NotSmall when the engine could answer it differently."""
    from dutydesk.logs.query import _columns_of, plan_of

    plan = plan_of(query, fmt, _columns_of(fmt), check_regexes=_check_plain_regexes)
    if len(set(plan.group_by)) != len(plan.group_by):
        raise NotSmall
    for condition in plan.where:
        kind = "text" if condition.field == "file" else fmt.field_type(condition.field)
        if kind not in {"text", "int"}:
            raise NotSmall
    return plan


def _run_auto(query: Query, files: FileList, first: str) -> SmallResult:
    """`query` with each file read in its own format, as `query.run` reads them (`_auto`)."""
    from dutydesk.logs.query import Query, QueryError, _columns_of, lacks, plan_of

    sizes = dict(zip(files.files, files.sizes, strict=True))

    def read(name: str, members: list[str], alone: bool) -> _auto.Group[Matched]:
        if name not in SMALL_FORMATS:
            raise NotSmall
        fmt = FORMATS[name]
        part = FileList()
        for path in members:
            part.add(path, sizes[path])
        report = Report(format=name, files=len(members), problems=part.problems)
        reason = lacks(query, fmt)
        if reason:
            probe = Query(query.sources, name, group_by=("file",))
            probe_plan = plan_of(probe, fmt, _columns_of(fmt), check_regexes=_check_plain_regexes)
            _matching_rows(probe_plan, fmt, part, report)
            return _auto.Group(None, report, reason)
        plan = _plan(query, fmt)
        return _auto.Group((plan, fmt, _matching_rows(plan, fmt, part, report)), report)

    outcome = _auto.per_file(files.files, first, read, _auto.head_lines)
    report = outcome.report
    report.files = len(files.files)
    report.problems[:0] = files.problems
    if not outcome.answers:
        if outcome.first_skipped:
            raise QueryError(outcome.first_skipped)
        empty = read(first, [], True).answer
        assert empty is not None
        return _result(query, [empty], report)
    return _result(query, [matched for _, matched in outcome.answers], report)


def _result(query: Query, answers: list[Matched], report: Report) -> SmallResult:
    """The answer from each format's matching rows: rows one format after the other (columns
    by name, first seen first), or counts over all of them, as the engine combines them."""
    plan, fmt, _ = answers[0]
    if plan.aggregates:
        every = [row for _, _, rows in answers for row in rows]
        return _grouped(plan, fmt, query.top, every, report)
    columns: dict[str, Column] = {}
    for each_plan, each_fmt, _ in answers:
        for name in each_plan.columns:
            columns.setdefault(name, Column(name, _numeric(each_fmt, name)))
    rows = [
        {name: row.get(name) for name in columns} if len(answers) > 1 else row
        for _, _, matching in answers
        for row in matching
    ]
    if query.top is not None:
        rows = rows[: query.top]
    return SmallResult(list(columns.values()), rows, report)


def _check_plain_regexes(conditions: tuple[Condition, ...]) -> None:
    for condition in conditions:
        if condition.op != "~":
            continue
        if not _PLAIN_REGEX.match(condition.value) or _UNSURE.search(condition.value):
            raise NotSmall
        try:
            re.compile(condition.value, re.ASCII)
        except re.error:
            raise NotSmall from None  # the engine names what RE2 finds wrong


def _numeric(fmt: LogFormat, name: str) -> bool:
    return name != "file" and fmt.field_type(name) in {"int", "float"}


def _lines(files: FileList) -> Iterator[tuple[int, str]]:
    """(file id, line) of every non-empty line, as `_sources.lines_batch` cuts them."""
    total = 0
    for file_id, path in enumerate(list(files.files)):
        content = _files.read_small(path)
        if isinstance(content, Problem):
            files.problems.append(content)
            continue
        total += len(content)
        if total > SMALL_BYTES:
            raise NotSmall
        if not content.isascii() or b"\r" in content:
            content = content.decode("utf-8", "replace").encode("utf-8").replace(b"\r\n", b"\n")
        for line in content.decode("utf-8").split("\n"):
            if line:
                yield file_id, line


def _matching_rows(
    plan: Plan, fmt: LogFormat, files: FileList, report: Report
) -> list[dict[str, Any]]:
    """The typed rows that parse and pass the filters; unparsed lines go to `report`."""
    tests = [
        (kind == "contains", value, re.compile(value, re.ASCII) if kind == "regex" else None)
        for kind, value in line_tests(plan)
    ]
    used = plan.used_fields()
    captured = tuple(name for name in fmt.fields if name in used or name == fmt.witness)
    pattern = re.compile(fmt.pattern(captured))
    witness = captured.index(fmt.witness)
    conditions = [
        (c.field, c.op, c.value, re.compile(c.value, re.ASCII) if c.op == "~" else None)
        for c in plan.where
    ]
    since = dt.datetime.fromisoformat(plan.since) if plan.since else None
    until = dt.datetime.fromisoformat(plan.until) if plan.until else None
    unparsed: dict[int, list[Any]] = {}
    rows: list[dict[str, Any]] = []
    for file_id, line in _lines(files):
        if not all(
            (value in line) if contains else compiled is not None and compiled.search(line)
            for contains, value, compiled in tests
        ):
            continue
        match = pattern.search(line)
        texts = [text or "" for text in match.groups()] if match else [""] * len(captured)
        if texts[witness] == "":
            entry = unparsed.setdefault(file_id, [0, line])
            entry[0] += 1
            continue
        row: dict[str, Any] = {"file": files.files[file_id]}
        for name, text in zip(captured, texts, strict=True):
            if name in used:
                row[name] = _typed(fmt, name, text)
        if _passes(row, conditions, since, until):
            rows.append(row)
    report.add_unparsed_rows(
        files.files, ((file_id, count, sample) for file_id, (count, sample) in unparsed.items())
    )
    if plan.aggregates:
        return rows
    return [{name: row[name] for name in plan.columns} for row in rows]


def _passes(
    row: dict[str, Any],
    conditions: list[tuple[str, str, str, re.Pattern[str] | None]],
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> bool:
    """Whether `row` meets every `--where`, `--since` and `--until` (NULL meets none)."""
    for name, op, wanted, compiled in conditions:
        value = row[name]
        if op == "~":
            if value is None or compiled is None or not compiled.search(str(value)):
                return False
        elif wanted in ("", "-"):
            if value is not None:
                return False
        elif value is None or str(value) != wanted:
            return False
    ts = row.get("ts")
    if since is not None and (ts is None or ts < since):
        return False
    return until is None or (ts is not None and ts < until)


def _typed(fmt: LogFormat, name: str, text: str) -> Any:
    """The engine's value of a field's text: NULL for '' and '-', else cast by its type."""
    kind = fmt.field_type(name)
    if kind == "text":
        if text in ("", "-"):
            return None
        return unescape(text) if name in fmt.unescaped else text
    if text in ("", "-"):
        return None
    if kind == "int":
        if not _CANONICAL_INT.match(text):
            raise NotSmall
        number = int(text)
        return number if -INT64_MAX - 1 <= number <= INT64_MAX else None
    if kind == "float":
        if not _CANONICAL_FLOAT.match(text):
            raise NotSmall
        return float(text)
    return _timestamp(fmt, text)


def _timestamp(fmt: LogFormat, text: str) -> dt.datetime:
    """A canonical `ts` text of an access or AWS log as an aware UTC datetime."""
    access = _ACCESS_TS.match(text)
    if access and fmt.name in {"nginx", "apache"}:
        day, month, year, hour, minute, second, sign, off_h, off_m = access.groups()
        if month not in _MONTHS or int(off_h) > 14 or int(off_m) > 59 or int(year) < 1000:
            raise NotSmall
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
        zone = dt.timezone(-offset if sign == "-" else offset)
        parts = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
        fraction = 0
    else:
        aws = _AWS_TS.match(text)
        if not aws or fmt.name not in {"elb", "alb"}:
            raise NotSmall
        *numbers, micro = aws.groups()
        parts = tuple(int(number) for number in numbers)  # type: ignore[assignment]
        zone, fraction = dt.UTC, int(micro or 0)
        if parts[0] < 1000:
            raise NotSmall
    try:
        moment = dt.datetime(*parts, fraction, tzinfo=zone)
    except ValueError:
        raise NotSmall from None  # an impossible date: leave the verdict to DuckDB
    return moment.astimezone(dt.UTC)


def _bucket(name: str, ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    if name == "minute":
        return ts.replace(second=0, microsecond=0)
    if name == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _grouped(
    plan: Plan,
    fmt: LogFormat,
    top: int | None,
    rows: list[dict[str, Any]],
    report: Report,
) -> SmallResult:
    """Counts per group, ordered and cut as `_engine.final_sql` orders and cuts them."""
    counts: dict[tuple[Any, ...], int] = {}
    for row in rows:
        key = tuple(
            _bucket(name, row.get("ts")) if name in TIME_BUCKETS else row[name]
            for name in plan.group_by
        )
        counts[key] = counts.get(key, 0) + 1
    keys = list(plan.group_by)

    positions = list(range(len(keys)))
    if top is not None:
        ordered = sorted(counts.items(), key=lambda item: (-item[1], _order(item[0], positions)))
        ordered = ordered[:top]
    else:
        buckets = [i for i, name in enumerate(keys) if name in TIME_BUCKETS]
        ordered = sorted(counts.items(), key=lambda item: _order(item[0], buckets + positions))
    columns = [Column(name, name not in TIME_BUCKETS and _numeric(fmt, name)) for name in keys] + [
        Column("count", True)
    ]
    answer = [{**dict(zip(keys, key, strict=True)), "count": count} for key, count in ordered]
    return SmallResult(columns, answer, report)


def _order(values: tuple[Any, ...], order: list[int]) -> tuple[tuple[bool, Any], ...]:
    """A sort key: the values at `order`, ascending, NULL after every value (DuckDB's default)."""
    return tuple((values[i] is None, values[i] if values[i] is not None else 0) for i in order)
