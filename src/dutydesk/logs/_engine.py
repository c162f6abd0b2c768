"""The SQL of a log query, built from its plan, and the locked-down DuckDB it runs on.

Identifiers and literals in the SQL are our own (field names checked against the format,
the format's regex) and go through `quote_name`/`quote_literal`; every value a user typed
(regexes, values, times) is a bound parameter. One pass over the lines answers the query and
counts the lines that do not parse, per file: rows that do not parse travel with `_ok = false`
and are split off afterwards, so a stream of lines is read once, in bounded memory.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dutydesk.logs._files import Roots
from dutydesk.logs.formats import UNESCAPES, LogFormat

if TYPE_CHECKING:
    import duckdb

TIME_BUCKETS = ("minute", "hour", "day")
# A time bucket is grouped as its start in microseconds since the epoch (UTC), made a time
# again once the groups are added up: date_trunc on 500,000 times costs ten times as much.
_BUCKET_MICROS = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}
PERCENTILES = (50, 90, 95, 99)
# A user regex may prefilter raw lines only when a field's match implies a line's match:
# anchors and word boundaries mean something else inside a field than inside the line.
_NOT_LINE_SAFE = re.compile(r"\\[AzbBZ]|\^|\$|\(\?[a-zA-Z]*m")
# In a JSON line a field's text may be escaped; only these characters read the same in both.
_JSON_SAFE = re.compile(r"^[A-Za-z0-9 _.:,;/@+=%-]*$")


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_name(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Condition:
    """One `--where`: FIELD~REGEX (`op` "~") or FIELD=VALUE (`op` "=")."""

    field: str
    op: str
    value: str


@dataclass
class Plan:
    """What the SQL computes: checked names only, user values kept apart as parameters."""

    fmt: LogFormat | None  # None: an extract (typed Parquet columns, nothing to parse)
    columns: tuple[str, ...]  # the fields the source offers
    where: tuple[Condition, ...] = ()
    since: str | None = None  # ISO text, UTC
    until: str | None = None
    group_by: tuple[str, ...] = ()
    percentiles: str | None = None
    needs_file: bool = False
    params: list[object] = field(default_factory=list)
    parsed: bool = False  # the source holds parsed rows already (`_ok`, `line`, typed fields)

    @property
    def aggregates(self) -> bool:
        """Whether the answer is grouped counts (or percentiles) rather than rows."""
        return bool(self.group_by or self.percentiles)

    def used_fields(self) -> tuple[str, ...]:
        """The source fields the query reads, in the format's order."""
        wanted = {condition.field for condition in self.where}
        wanted |= {name for name in self.group_by if name not in TIME_BUCKETS}
        if any(name in TIME_BUCKETS for name in self.group_by) or self.since or self.until:
            wanted.add("ts")
        if self.percentiles:
            wanted.add(self.percentiles)
        if not self.aggregates:
            wanted |= set(self.columns)
        wanted.discard("file")
        return tuple(name for name in self.columns if name in wanted)


def _typed(fmt: LogFormat, name: str, text: str) -> str:
    kind = fmt.field_type(name)
    if kind == "int":
        return f"TRY_CAST({text} AS BIGINT)"
    if kind == "float":
        return f"TRY_CAST({text} AS DOUBLE)"
    if kind == "ts":
        if fmt.ts_formats:
            formats = ", ".join(quote_literal(item) for item in fmt.ts_formats)
            if fmt.ts_without_year:  # syslog: the current year
                text = f"strftime(current_date, '%Y') || ' ' || {text}"
            return f"CAST(try_strptime({text}, [{formats}]) AS TIMESTAMPTZ)"
        cleaned = f"replace({text}, ',', '.')"
        return (
            f"coalesce(TRY_CAST({cleaned} AS TIMESTAMPTZ), CAST(try_strptime({cleaned}, "
            "['%d-%b-%Y %H:%M:%S.%f', '%d-%b-%Y %H:%M:%S']) AS TIMESTAMPTZ))"
        )
    if name in fmt.unescaped:
        return f"CASE WHEN {text} IN ('', '-') THEN NULL ELSE {unescaped_sql(text)} END"
    return f"CASE WHEN {text} IN ('', '-') THEN NULL ELSE {text} END"


def unescaped_sql(text: str) -> str:
    """SQL undoing an access log's escapes in `text`, as `formats.unescape` does."""
    for escaped, plain in UNESCAPES:
        text = f"replace({text}, {quote_literal(escaped)}, {quote_literal(plain)})"
    return text


# A `--where` on a field whose escapes are undone is tested on the raw line only when no
# match can hold a quote or a backslash (which the raw line may spell as an escape).
_ESCAPE_SAFE = re.compile(r"^[A-Za-z0-9 _:,;/@=%-]*$")
# A field's `--where` sees `ts` as the command line prints it: ISO 8601 in UTC, with a `Z`.
ISO_TS = (
    "strftime(\"ts\", '%Y-%m-%dT%H:%M:%S') || CASE WHEN strftime(\"ts\", '%f') = '000000' "
    "THEN '' ELSE '.' || strftime(\"ts\", '%f') END || 'Z'"
)


_PLAIN_WITH_DOTS = re.compile(r"^(?:[^.*+?|()\[\]{}\\^$]|\.\*?)+$")


def required_literals(regex: str) -> list[str]:
    """Texts every match of `regex` contains, for a cheap `contains` before the regex.

    Only for regexes of plain characters joined by `.` and `.*` (like the seed's
    `/Firefox/.*WINNT.*/release/`); anything else gives none.
    """
    if not _PLAIN_WITH_DOTS.match(regex):
        return []
    return [part for part in re.split(r"\.\*?", regex) if len(part) >= 3]


LineTest = tuple[Literal["contains", "regex"], str]


def line_tests(plan: Plan) -> list[LineTest]:
    """Tests on the raw line that every matching event's line passes, cheapest first per
    condition: ("contains", text) or ("regex", pattern). Lines that fail one are not parsed."""
    assert plan.fmt is not None
    found: list[LineTest] = []
    for condition in plan.where:
        if condition.field in {"ts", "file"} or condition.value in ("", "-"):
            continue
        if plan.fmt.json_keys and not _JSON_SAFE.match(condition.value):
            continue
        escaped = condition.field in plan.fmt.unescaped
        if condition.op == "~" and not _NOT_LINE_SAFE.search(condition.value):
            for literal in required_literals(condition.value):  # SIMD search, then RE2
                if not (escaped and ('"' in literal or "\\" in literal)):
                    found.append(("contains", literal))
            if not escaped or _ESCAPE_SAFE.match(condition.value):
                found.append(("regex", condition.value))
        elif (
            condition.op == "="
            and plan.fmt.field_type(condition.field) != "ts"
            and (not escaped or _ESCAPE_SAFE.match(condition.value))
        ):
            found.append(("contains", condition.value))
    return found


def _prefilters(plan: Plan) -> list[str]:
    """`line_tests` as SQL conditions, their values bound as parameters."""
    found = []
    for kind, value in line_tests(plan):
        found.append("contains(line, ?)" if kind == "contains" else "regexp_matches(line, ?)")
        plan.params.append(value)
    return found


def _parsed_source(plan: Plan, source: str) -> str:
    """SELECT of `file_id`, `line`, `_ok` and the typed fields the query uses."""
    fmt = plan.fmt
    assert fmt is not None
    used = plan.used_fields()
    # The window carries each line's file name when the query uses it (see _execute.windows).
    keep = "file_id, line, file" if plan.needs_file else "file_id, line"
    prefilter = " AND ".join(_prefilters(plan)) or "true"
    if fmt.json_keys:
        # CASE, not AND: json_type must not see a malformed line (it raises, AND evaluates both).
        ok = "(CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END)"
        inner = f"SELECT {keep}, {ok} AS _ok FROM {source} WHERE {prefilter}"
        columns = []
        for name in used:
            paths = [
                f"json_extract_string(CASE WHEN _ok THEN line END, "
                f"{quote_literal('$.' + quote_name(key))})"
                for key in fmt.json_keys[name]
            ]
            value = _typed(fmt, name, "coalesce(" + ", ".join(paths) + ")")
            columns.append(f"{value} AS {quote_name(name)}")
        return f"SELECT {keep}, _ok{''.join(', ' + c for c in columns)} FROM ({inner})"
    captured = tuple(name for name in fmt.fields if name in used or name == fmt.witness)
    names = ", ".join(quote_literal(name) for name in captured)
    pattern = quote_literal(fmt.pattern(captured))
    inner = (
        f"SELECT {keep}, regexp_extract(line, {pattern}, [{names}]) AS _m "
        f"FROM {source} WHERE {prefilter}"
    )
    columns = [
        f"{_typed(fmt, name, '_m.' + quote_name(name))} AS {quote_name(name)}" for name in used
    ]
    ok = f"(_m.{quote_name(fmt.witness)} <> '')"
    return f"SELECT {keep}, {ok} AS _ok{''.join(', ' + c for c in columns)} FROM ({inner})"


def condition_sql(condition: Condition) -> tuple[str, list[object]]:
    """One `--where` as SQL over its field's column, and its bound parameters."""
    column = quote_name(condition.field)
    text = ISO_TS if condition.field == "ts" else f"CAST({column} AS VARCHAR)"
    if condition.op == "~":
        return f"regexp_matches({text}, ?)", [condition.value]
    if condition.value in ("", "-"):
        return f"{column} IS NULL", []
    return f"{text} = ?", [condition.value]


def _conditions(plan: Plan) -> list[str]:
    found = []
    for condition in plan.where:
        sql, params = condition_sql(condition)
        found.append(sql)
        plan.params.extend(params)
    if plan.since:
        found.append("ts >= CAST(? AS TIMESTAMPTZ)")
        plan.params.append(plan.since)
    if plan.until:
        found.append("ts < CAST(? AS TIMESTAMPTZ)")
        plan.params.append(plan.until)
    return found


def _key(name: str) -> str:
    if name in TIME_BUCKETS:
        size = _BUCKET_MICROS[name]
        floor = f"epoch_us(ts) - ((epoch_us(ts) % {size}) + {size}) % {size}"  # before 1970 too
        return f"({floor}) AS {quote_name(name)}"
    return quote_name(name)


def _combined_key(name: str) -> str:
    """A key of `combine_sql`: a time bucket's microseconds made a time again."""
    if name in TIME_BUCKETS:
        return f"CAST(make_timestamp({quote_name(name)}) AS TIMESTAMPTZ) AS {quote_name(name)}"
    return quote_name(name)


# The lines an unparsed block (of a multiline format: lines that start no event) holds.
_LINES_IN = "length(line) - length(replace(line, chr(10), '')) + 1"


def _quantiles() -> str:
    return "[" + ", ".join(f"{p / 100}" for p in PERCENTILES) + "]"


def _unparsed_count(plan: Plan) -> str:
    """How many lines a group of rows that did not parse holds (an unparsed block of a
    multiline format: the lines in it)."""
    if plan.fmt is not None and plan.fmt.multiline:
        return f"CAST(sum({_LINES_IN}) AS BIGINT)"
    return "count(*)"


def build_sql(plan: Plan, source: str) -> str:
    """The one-pass SQL over a window of lines: grouped counts or rows, `_ok` on every row.

    For a log source, rows that did not parse come out with `_ok = false`: grouped by file with
    a sample line, or one by one with their `line`. Grouped counts are partial (one window);
    `combine_sql` adds the windows up, and `final_sql` orders and cuts the answer.
    """
    plan.params.clear()
    if plan.parsed:  # lines that did not parse count as the raw lines' tests would have
        prefilter = " AND ".join(_prefilters(plan)) or "true"
        base = f"SELECT * FROM {source} WHERE _ok OR ({prefilter})"
    elif plan.fmt is None:
        base = f"SELECT *, true AS _ok, NULL::INTEGER AS file_id, NULL AS line FROM {source}"
    else:
        base = _parsed_source(plan, source)
    conditions = " AND ".join(_conditions(plan)) or "true"
    where = f"WHERE NOT _ok OR ({conditions})"
    if plan.aggregates:
        keys = [_key(name) for name in plan.group_by]
        measures = ["count(*) AS count"]
        if plan.fmt is not None and plan.fmt.multiline:
            # An unparsed block (lines that start no event) counts as the lines it holds.
            measures = [f"CAST(sum(CASE WHEN _ok THEN 1 ELSE {_LINES_IN} END) AS BIGINT) AS count"]
        if plan.percentiles:
            value = quote_name(plan.percentiles)
            measures.append(
                f"list(CAST({value} AS DOUBLE)) FILTER (WHERE _ok AND {value} IS NOT NULL) "
                "AS _values"
            )
        selected = [
            "_ok",
            "CASE WHEN _ok THEN NULL ELSE file_id END AS _bad_file",
            "any_value(line) FILTER (WHERE NOT _ok) AS _sample",
            *keys,
            *measures,
        ]
        return f"SELECT {', '.join(selected)} FROM ({base}) {where} GROUP BY ALL"
    columns = [quote_name(name) for name in plan.columns]
    selected = ["_ok", "file_id", "CASE WHEN _ok THEN NULL ELSE line END AS _line", *columns]
    return f"SELECT {', '.join(selected)} FROM ({base}) {where}"


def combine_sql(plan: Plan) -> str:
    """The groups of all windows (registered as `log_partials`) added up, percentiles taken."""
    keys = [_combined_key(name) for name in plan.group_by]
    measures = ["CAST(sum(count) AS BIGINT) AS count"]
    if plan.percentiles:
        measures.append(
            f"list_aggregate(flatten(list(_values)), 'quantile_cont', {_quantiles()}) "
            "AS _percentiles"
        )
    selected = ["_ok", "_bad_file", "any_value(_sample) AS _sample", *keys, *measures]
    return f"SELECT {', '.join(selected)} FROM log_partials GROUP BY ALL"


def at_once_sql(
    plan: Plan,
    source: str,
    top: int | None,
    *,
    codes: Mapping[str, str] | None = None,
) -> str:
    """The answer over parsed rows read at once (the parsed cache's): what `build_sql`,
    `combine_sql` and `final_sql` give over one window, in one statement, from the rows that
    parsed (`unparsed_sql` counts the others). Percentiles are taken over the values
    themselves, not lists of them, and not made DOUBLE first as the windows' lists are: the
    same numbers come out (a percentile field is numeric; DuckDB interpolates in DOUBLE),
    a third faster.

    A key in `codes` is held in `source` as integer codes: the groups get its text from the
    table `codes[key]` (`_code`, `_text`) once they are counted."""
    assert plan.parsed and plan.aggregates
    codes = codes or {}
    plan.params.clear()
    conditions = " AND ".join(_conditions(plan)) or "true"
    keys = [_key(name) for name in plan.group_by]
    measures = ["count(*) AS count"]
    outer = [quote_name("count")]
    if plan.percentiles:
        value = quote_name(plan.percentiles)
        measures.append(f"quantile_cont({value}, {_quantiles()}) AS _percentiles")
        outer.append("_percentiles")
    joins = []
    for i, name in enumerate(plan.group_by):
        if name in codes:
            outer.insert(i, f"_k{i}._text AS {quote_name(name)}")
            joins.append(
                f" LEFT JOIN {codes[name]} AS _k{i} ON _groups.{quote_name(name)} = _k{i}._code"
            )
        else:
            outer.insert(i, _combined_key(name))
    # HAVING: without keys, no row gives no group (as over windows), not a count of 0.
    grouped = (
        f"SELECT {', '.join([*keys, *measures])} FROM {source} "
        f"WHERE _ok AND ({conditions}) GROUP BY ALL HAVING count(*) > 0"
    )
    groups = f"(SELECT {', '.join(outer)} FROM ({grouped}) AS _groups{''.join(joins)})"
    return final_sql(plan, top, groups)


def unparsed_sql(plan: Plan, source: str) -> str:
    """(`_bad_file`, `count`, `_sample`) per file of the parsed rows in `source` that did not
    parse and pass the query's tests on raw lines, as `build_sql` counts them."""
    plan.params.clear()
    prefilter = " AND ".join(_prefilters(plan)) or "true"
    return (
        f"SELECT file_id AS _bad_file, {_unparsed_count(plan)} AS count, "
        f"any_value(line) AS _sample FROM {source} WHERE NOT _ok AND ({prefilter}) "
        "GROUP BY file_id"
    )


def final_sql(plan: Plan, top: int | None, source: str = "log_groups") -> str:
    """The answer from the parsed groups (`source`: the table registered as `log_groups`, or
    a subquery): ordered, cut to `top`.

    `--top` orders by count, largest first; otherwise time buckets, then the other keys.
    """
    keys = [quote_name(name) for name in plan.group_by]
    measures = ['"count"']
    if plan.percentiles:
        measures += [
            f"_percentiles[{i + 1}] AS {quote_name(f'p{p}')}" for i, p in enumerate(PERCENTILES)
        ]
    if top is not None:
        order = ['"count" DESC', *keys]
    else:
        order = [quote_name(name) for name in plan.group_by if name in TIME_BUCKETS] + keys
    order_sql = f" ORDER BY {', '.join(order)}" if order else ""
    limit = f" LIMIT {int(top)}" if top is not None else ""
    return f"SELECT {', '.join([*keys, *measures])} FROM {source}{order_sql}{limit}"


@dataclass(frozen=True)
class S3Access:
    """How DuckDB's httpfs reaches S3: credentials and an optional endpoint (moto, MinIO)."""

    key_id: str
    secret: str
    session_token: str
    region: str
    endpoint: str  # host:port or empty for AWS
    use_ssl: bool


# In-memory databases shared by the queries of a process, one per lockdown (see `connect`).
_SHARED: dict[tuple[object, ...], duckdb.DuckDBPyConnection] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_MOST = 8


def connect(
    roots: Roots,
    writable: Sequence[Path] = (),
    *,
    s3: S3Access | None = None,
    memory_limit: str = "",
    threads: int = 0,
    database: str = ":memory:",
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that may touch only the roots (and `writable`), locked that way.

    An in-memory one is a new connection (a cursor) to a database this process keeps for the
    same lockdown: starting a DuckDB database costs about 20 ms of CPU, as much as answering
    a query from the parsed cache. Tables registered on a connection are its own, and the
    lockdown cannot be changed through any of them.
    """
    if database != ":memory:" or read_only:
        return _locked(roots, writable, s3, memory_limit, threads, database, read_only)
    key = (os.getpid(), roots, tuple(writable), s3, memory_limit, threads)
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            if len(_SHARED) >= _SHARED_MOST:  # dropped, not closed: a query may still use it
                del _SHARED[next(iter(_SHARED))]
            shared = _locked(roots, writable, s3, memory_limit, threads, database, read_only)
            _SHARED[key] = shared
        return shared.cursor()


def _locked(
    roots: Roots,
    writable: Sequence[Path],
    s3: S3Access | None,
    memory_limit: str,
    threads: int,
    database: str,
    read_only: bool,
) -> duckdb.DuckDBPyConnection:
    import duckdb

    from dutydesk.duck import load_extension

    connection = duckdb.connect(database, read_only=read_only)
    connection.execute("SET GLOBAL TimeZone = 'UTC'")
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        connection.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
    connection.execute("SET allow_persistent_secrets = false")
    if roots.s3:
        load_extension(connection, "httpfs")
        if s3 is not None:
            options = [
                "TYPE s3",
                f"KEY_ID {quote_literal(s3.key_id)}",
                f"SECRET {quote_literal(s3.secret)}",
                f"REGION {quote_literal(s3.region)}",
            ]
            if s3.session_token:
                options.append(f"SESSION_TOKEN {quote_literal(s3.session_token)}")
            if s3.endpoint:
                options += [
                    f"ENDPOINT {quote_literal(s3.endpoint)}",
                    f"USE_SSL {'true' if s3.use_ssl else 'false'}",
                    "URL_STYLE 'path'",
                ]
            connection.execute(f"CREATE TEMPORARY SECRET log_s3 ({', '.join(options)})")
    allowed = [str(path).rstrip("/") + "/" for path in (*roots.local, *writable)]
    allowed += list(roots.s3)
    listed = ", ".join(quote_literal(item) for item in allowed)
    connection.execute(f"SET allowed_directories = [{listed}]")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection
