"""A report of access logs in the manner of GoAccess: one model, two renderings.

`build(ReportAsk(...))` runs a handful of grouped log queries (`query.run`, so the parsed
cache answers every query after the first, and a second report over the same files reads no
line) and returns a `LogReport`: requests and unique visitors over time, status codes, top
paths, referrers, user agents with bots marked, bytes over time and the slowest requests when
the format has request times. `render_file` writes it as one self-contained HTML file; the
console page (`routes.py`) renders the same model inside the layout.

Unique visitors are counted as GoAccess counts them: a distinct client address and user agent
per day (per hour on the hourly chart).
"""

from __future__ import annotations

import datetime as dt
import gzip
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dutydesk.logs import query as log_query
from dutydesk.logs._reportmodel import (
    Bucket,
    LogReport,
    Ranked,
    ReportAsk,
    SlowRequest,
    bot_of,
    human_bytes,
)
from dutydesk.logs.formats import FORMATS, UnknownFormat, sniff

if TYPE_CHECKING:
    from dutydesk.logs._files import FileList
    from dutydesk.settings import Settings

__all__ = [
    "ACCESS_FORMATS",
    "LogReport",
    "ReportAsk",
    "ReportError",
    "bot_of",
    "build",
    "human_bytes",
    "regex_literal",
    "render_file",
]

ACCESS_FORMATS = ("nginx", "apache", "alb", "elb")
# Charts go by the hour up to this span, by the day beyond it.
HOURLY_SPAN = dt.timedelta(days=3)
# Rows the slowest-requests query may return (ties at the threshold); the slowest are kept.
SLOW_ROWS_CAP = 2000
_REGEX_SPECIALS = set("\\.^$|?*+()[]{}")

Progress = Callable[[int], None]


class ReportError(ValueError):
    """A report that cannot be made as asked; the message says what to change."""


def regex_literal(text: str) -> str:
    """`text` as a regex matching itself, in syntax RE2 and Python read alike."""
    return "".join("\\" + char if char in _REGEX_SPECIALS else char for char in text)


def _one_of(values: Iterable[str]) -> str:
    return "^(?:" + "|".join(regex_literal(value) for value in values) + ")$"


def _first_lines(path: str) -> list[str]:
    """The first lines of local file `path` (gzip or not); none when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(65536)
        if raw[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as handle:
                raw = handle.read(65536)
    except (OSError, EOFError, gzip.BadGzipFile):
        return []
    lines = raw.decode("utf-8", "replace").splitlines()
    return lines[:-1] or lines


def _format_of(ask: ReportAsk, settings: Settings) -> str:
    """The format every query of the report reads (one for all files, so the sections agree):
    the one asked, or what the first local files' first lines tell; "auto" for S3 globs,
    where the first query tells."""
    from dutydesk.logs import _files

    if ask.format != "auto":
        if ask.format not in FORMATS:
            raise ReportError(f"unknown format {ask.format!r}; use one of {', '.join(FORMATS)}")
        _check_format(ask.format)
        return ask.format
    if any(source.startswith("s3://") for source in ask.sources):
        return "auto"
    files = _files.FileList()
    roots = log_query.roots_of(settings)
    try:
        for pattern in ask.sources:
            _files.list_local(pattern, roots, files)
    except _files.SourceError as error:
        raise ReportError(str(error)) from None
    for path in files.files[:5]:
        lines = _first_lines(path)
        if lines:
            try:
                found = sniff(lines)
            except UnknownFormat as error:
                raise ReportError(f"{path}: {error}") from None
            _check_format(found, path)
            return found
    return "auto"  # nothing readable: the first query reports why


def _check_format(name: str, path: str = "") -> None:
    if name not in ACCESS_FORMATS:
        which = f"{path} reads" if path else "these logs read"
        raise ReportError(
            f"{which} as {name}, not an access log; a report reads access logs "
            f"({', '.join(ACCESS_FORMATS)}): give --format, or use `dutydesk logs query`"
        )


class _Runner:
    """Runs the report's queries over the same files, format, range and filters."""

    def __init__(
        self,
        ask: ReportAsk,
        settings: Settings | None,
        cache: bool,
        progress: Progress | None,
        on_step: Callable[[str, FileList], None] | None,
    ) -> None:
        self.ask = ask
        self.settings = settings
        self.cache = cache
        self.progress = progress
        self.on_step = on_step
        self.format = ask.format
        self.files: FileList | None = None
        self.parsed = 0
        self.step = ""

    def _seen_files(self, files: FileList) -> None:
        self.files = files
        if self.on_step:
            self.on_step(self.step, files)

    def _read(self, done: int) -> None:
        self.parsed += done
        if self.progress:
            self.progress(done)

    def run(
        self,
        step: str,
        group_by: tuple[str, ...] = (),
        *,
        where: tuple[str, ...] = (),
        top: int | None = None,
        percentiles: str | None = None,
    ) -> log_query.QueryResult:
        """One query over the report's files; the first one fixes the format for the rest."""
        self.step = step
        asked = log_query.Query(
            sources=self.ask.sources,
            format=self.format,
            since=self.ask.since,
            until=self.ask.until,
            where=(*self.ask.where, *where),
            group_by=group_by,
            top=top,
            percentiles=percentiles,
        )
        try:
            return log_query.run(
                asked,
                settings=self.settings,
                progress=self._read,
                on_files=self._seen_files,
                cache=self.cache,
            )
        except log_query.QueryError as error:
            raise ReportError(str(error)) from None


def build(
    ask: ReportAsk,
    *,
    settings: Settings | None = None,
    cache: bool = True,
    progress: Progress | None = None,
    on_step: Callable[[str, FileList], None] | None = None,
) -> LogReport:
    """The report of `ask`'s access logs; ReportError names what is wrong (outside the roots,
    an application-log format, a malformed --where, ...). `on_step` sees each query's name
    and file list before it reads, `progress` the bytes it reads (for a progress bar)."""
    from dutydesk.settings import get_settings

    settings = settings or get_settings()
    if ask.top < 1:
        raise ReportError("--top must be at least 1")
    started = time.monotonic()
    runner = _Runner(ask, settings, cache, progress, on_step)
    runner.format = _format_of(ask, settings)
    first = runner.run("requests and statuses", ("hour", "status"))
    _check_format(first.report.format)
    runner.format = first.report.format
    parsed_first = runner.parsed
    assert runner.files is not None
    report = LogReport(
        ask=ask,
        format=first.report.format,
        files=first.report.files,
        generated=dt.datetime.now(dt.UTC).replace(microsecond=0),
        unparsed=first.report.unparsed,
        problems=first.report.problems,
        total_bytes_read=runner.files.total_bytes,
        parsed_bytes=parsed_first,
        cache=cache and settings.log_cache_bytes > 0,
    )
    _timeline_and_statuses(report, first.table.to_pylist())
    if report.requests:
        _visitors_and_agents(report, runner)
        _bytes(report, runner)
        _paths(report, runner)
        _referrers(report, runner)
        _slowest(report, runner)
    report.seconds = time.monotonic() - started
    return report


def _bucket_of(moment: dt.datetime, bucket: str) -> dt.datetime:
    if bucket == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _ranked(counts: dict[Any, int], total: int, top: int | None = None) -> list[Ranked]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [
        Ranked(str(name), hits, share=hits / total if total else 0.0)
        for name, hits in ordered[:top]
    ]


def _timeline_and_statuses(report: LogReport, rows: list[dict[str, Any]]) -> None:
    hours: dict[dt.datetime, int] = defaultdict(int)
    codes: dict[Any, int] = defaultdict(int)
    for row in rows:
        report.requests += row["count"]
        if row["hour"] is not None:
            hours[row["hour"].astimezone(dt.UTC)] += row["count"]
        codes[row["status"] if row["status"] is not None else "-"] += row["count"]
    if hours:
        report.first, report.last = min(hours), max(hours)
        if report.last - report.first > HOURLY_SPAN:
            report.bucket = "day"
    buckets: dict[dt.datetime, Bucket] = {}
    for hour, count in sorted(hours.items()):
        start = _bucket_of(hour, report.bucket)
        buckets.setdefault(start, Bucket(start)).requests += count
    report.timeline = _filled(buckets, report.bucket)
    classes: dict[Any, int] = defaultdict(int)
    for code, count in codes.items():
        classes[f"{str(code)[0]}xx" if code != "-" else "-"] += count
    report.status_classes = sorted(_ranked(classes, report.requests), key=lambda item: item.name)
    report.status_codes = _ranked(codes, report.requests)


def _filled(buckets: dict[dt.datetime, Bucket], bucket: str) -> list[Bucket]:
    """The buckets with the empty hours or days between them added (a chart's gaps show)."""
    if not buckets:
        return []
    step = dt.timedelta(days=1) if bucket == "day" else dt.timedelta(hours=1)
    moment, last = min(buckets), max(buckets)
    filled = []
    while moment <= last:
        filled.append(buckets.get(moment) or Bucket(moment))
        moment += step
    return filled


def _visitors_and_agents(report: LogReport, runner: _Runner) -> None:
    fields = FORMATS[report.format].fields
    keys = tuple(name for name in ("client", "user_agent") if name in fields)
    rows = runner.run("visitors and agents", (report.bucket, *keys)).table.to_pylist()
    by_bucket: dict[dt.datetime, int] = defaultdict(int)
    daily: set[tuple[Any, ...]] = set()
    hits: dict[str, int] = defaultdict(int)
    agent_visitors: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for row in rows:
        moment = row[report.bucket]
        if moment is None:
            continue
        moment = moment.astimezone(dt.UTC)
        by_bucket[moment] += 1
        day = _bucket_of(moment, "day")
        daily.add((day, row.get("client"), row.get("user_agent")))
        agent = row.get("user_agent") or "-"
        hits[agent] += row["count"]
        agent_visitors[agent].add((day, row.get("client")))
    report.visitors = len(daily)
    for item in report.timeline:
        item.visitors = by_bucket.get(item.start, 0)
    if "user_agent" not in fields:
        report.missing["agents"] = f"{report.format} lines have no user agent"
        return
    report.agents = _ranked(hits, report.requests, runner.ask.top)
    bots: dict[str, int] = defaultdict(int)
    for agent, count in hits.items():
        label = bot_of(agent)
        if label is not None:
            bots[label] += count
    for agent_row in report.agents:
        agent_row.visitors = len(agent_visitors[agent_row.name])
        agent_row.bot = bot_of(agent_row.name)
    report.bot_requests = sum(bots.values())
    report.bots = _ranked(bots, report.requests)


def _bytes(report: LogReport, runner: _Runner) -> None:
    rows = runner.run("bytes", (report.bucket, "bytes")).table.to_pylist()
    by_bucket: dict[dt.datetime, int] = defaultdict(int)
    for row in rows:
        if row[report.bucket] is None or row["bytes"] is None:
            continue
        sent = row["bytes"] * row["count"]
        by_bucket[row[report.bucket].astimezone(dt.UTC)] += sent
        report.bytes += sent
    for item in report.timeline:
        item.bytes = by_bucket.get(item.start, 0)


def _paths(report: LogReport, runner: _Runner) -> None:
    top = runner.ask.top
    timed = "request_time" if report.has_request_time else None
    rows = runner.run("top paths", ("path",), top=top + 1, percentiles=timed).table.to_pylist()
    rows = [row for row in rows if row["path"] is not None][:top]
    report.paths = [
        Ranked(
            row["path"],
            row["count"],
            p95=row.get("p95"),
            share=row["count"] / report.requests,
        )
        for row in rows
    ]
    if not report.paths:
        report.missing["paths"] = "no line has a request path"
        return
    only = (f"path~{_one_of(item.name for item in report.paths)}",)
    keys = tuple(name for name in ("client", "user_agent") if name in FORMATS[report.format].fields)
    seen: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    visitors = runner.run("visitors per path", ("day", "path", *keys), where=only)
    for row in visitors.table.to_pylist():
        seen[row["path"]].add((row["day"], *(row[key] for key in keys)))
    sent: dict[str, int] = defaultdict(int)
    for row in runner.run("bytes per path", ("path", "bytes"), where=only).table.to_pylist():
        if row["bytes"] is not None:
            sent[row["path"]] += row["bytes"] * row["count"]
    for item in report.paths:
        item.visitors = len(seen[item.name])
        item.bytes = sent[item.name]
    if timed and all(item.p95 is None for item in report.paths):
        report.missing["request_time"] = _no_times(report.format)


def _no_times(fmt: str) -> str:
    if fmt in {"nginx", "apache"}:
        return (
            "no line carries a request time (nginx writes one when `$request_time` follows "
            "the user agent in its log_format)"
        )
    return "no line carries a request time"


def _referrers(report: LogReport, runner: _Runner) -> None:
    if "referrer" not in FORMATS[report.format].fields:
        report.missing["referrers"] = f"{report.format} lines have no referrer"
        return
    top = runner.ask.top
    rows = runner.run("referrers", ("referrer",), top=top + 1).table.to_pylist()
    report.referrers = [
        Ranked(row["referrer"], row["count"], share=row["count"] / report.requests)
        for row in rows
        if row["referrer"] is not None
    ][:top]
    if not report.referrers:
        report.missing["referrers"] = "no line names a referrer"


def _slowest(report: LogReport, runner: _Runner) -> None:
    if not report.has_request_time:
        report.missing["slowest"] = f"{report.format} lines have no request time"
        return
    if "request_time" in report.missing:
        report.missing["slowest"] = report.missing["request_time"]
        return
    top = runner.ask.top
    times = runner.run("request times", ("request_time",)).table.to_pylist()
    values = sorted(
        ((row["request_time"], row["count"]) for row in times if row["request_time"] is not None),
        reverse=True,
    )
    slowest: list[float] = []
    covered = 0
    for value, count in values:
        slowest.append(value)
        covered += count
        if covered >= top:
            break
    if not slowest:
        report.missing["slowest"] = _no_times(report.format)
        return
    # DuckDB writes a DOUBLE as text the way Python's repr does (shortest round trip).
    where = (f"request_time~{_one_of(repr(value) for value in slowest)}",)
    rows = runner.run("slowest requests", where=where, top=SLOW_ROWS_CAP).table.to_pylist()
    rows.sort(key=lambda row: -(row.get("request_time") or 0.0))
    report.slowest = [
        SlowRequest(
            ts=row.get("ts"),
            method=row.get("method") or "",
            path=row.get("path") or "",
            status=row.get("status"),
            seconds=row["request_time"],
            client=row.get("client") or "",
        )
        for row in rows[:top]
        if row.get("request_time") is not None
    ]


def render_file(report: LogReport, target: Path) -> None:
    """Write `report` as one self-contained HTML file (inline CSS and SVG, no scripts)."""
    import functools

    import jinja2

    from dutydesk.web.words import iso_moment

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    # The file is read anywhere, by anyone: its moments are in UTC (`+00:00`), as it says.
    environment.filters["iso"] = functools.partial(iso_moment, zone="UTC")
    page = environment.get_template("logs/report_file.html").render(
        report=report, human_bytes=human_bytes
    )
    target.write_text(page, encoding="utf-8")
