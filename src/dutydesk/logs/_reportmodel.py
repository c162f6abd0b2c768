"""The model of an access log report: what was asked, each section's rows, the bot list.

Built by `_htmlreport.build`, rendered by the templates `logs/report_file.html` (a file) and
`logs/report.html` (the console page), which share `logs/_report_sections.html`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dutydesk.logs._charts import Series, bar_chart
from dutydesk.logs.formats import FORMATS

if TYPE_CHECKING:
    from markupsafe import Markup

    from dutydesk.logs._files import Problem
    from dutydesk.logs._report import Unparsed

TOP = 20  # rows of each top list

# User agents taken for bots and tools: (label, lower-case text the agent contains), first
# match wins. The last three catch the crawlers that name themselves generically.
BOTS: tuple[tuple[str, str], ...] = (
    ("Googlebot", "googlebot"),
    ("Google (other)", "google-"),
    ("bingbot", "bingbot"),
    ("Applebot", "applebot"),
    ("DuckDuckBot", "duckduckbot"),
    ("Baiduspider", "baiduspider"),
    ("YandexBot", "yandex"),
    ("Yahoo Slurp", "slurp"),
    ("AhrefsBot", "ahrefsbot"),
    ("SemrushBot", "semrushbot"),
    ("MJ12bot", "mj12bot"),
    ("GPTBot", "gptbot"),
    ("ClaudeBot", "claudebot"),
    ("facebookexternalhit", "facebookexternalhit"),
    ("Twitterbot", "twitterbot"),
    ("curl", "curl/"),
    ("Wget", "wget/"),
    ("python-requests", "python-requests"),
    ("Python urllib", "python-urllib"),
    ("aiohttp", "aiohttp"),
    ("Go http client", "go-http-client"),
    ("Java", "java/"),
    ("okhttp", "okhttp"),
    ("libwww-perl", "libwww-perl"),
    ("HeadlessChrome", "headlesschrome"),
    ("Prometheus", "prometheus/"),
    ("other bot", "bot"),
    ("other spider", "spider"),
    ("other crawler", "crawl"),
)


def bot_of(agent: str | None) -> str | None:
    """The bot or tool `agent` names (see BOTS), or None for a browser (or no agent)."""
    if not agent:
        return None
    lowered = agent.lower()
    return next((label for label, text in BOTS if text in lowered), None)


@dataclass(frozen=True)
class ReportAsk:
    """What a report covers: globs, format, time range and filters as `logs query` takes."""

    sources: tuple[str, ...]
    format: str = "auto"
    since: str | None = None
    until: str | None = None
    where: tuple[str, ...] = ()
    top: int = TOP

    def command_line(self) -> str:
        """The `dutydesk logs report` command that makes this report."""
        import shlex

        words = ["dutydesk", "logs", "report", *self.sources, "--format", self.format]
        for option, value in (("--since", self.since), ("--until", self.until)):
            if value is not None:
                words += [option, value]
        for item in self.where:
            words += ["--where", item]
        return shlex.join(words)


@dataclass
class Bucket:
    """One hour or day of the timeline."""

    start: dt.datetime
    requests: int = 0
    visitors: int = 0
    bytes: int = 0


@dataclass
class Ranked:
    """A row of a top list (a path, a referrer, an agent)."""

    name: str
    hits: int
    visitors: int | None = None
    bytes: int | None = None
    p95: float | None = None
    bot: str | None = None
    share: float = 0.0  # of all requests, 0..1


@dataclass
class SlowRequest:
    """One of the slowest requests."""

    ts: dt.datetime | None
    method: str
    path: str
    status: int | None
    seconds: float
    client: str


@dataclass
class LogReport:
    """The report: every section's numbers, and why a section is empty when it is."""

    ask: ReportAsk
    format: str
    files: int
    generated: dt.datetime
    requests: int = 0
    visitors: int = 0
    bytes: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    bucket: str = "hour"
    timeline: list[Bucket] = field(default_factory=list)
    status_classes: list[Ranked] = field(default_factory=list)
    status_codes: list[Ranked] = field(default_factory=list)
    paths: list[Ranked] = field(default_factory=list)
    referrers: list[Ranked] = field(default_factory=list)
    agents: list[Ranked] = field(default_factory=list)
    bots: list[Ranked] = field(default_factory=list)
    bot_requests: int = 0
    slowest: list[SlowRequest] = field(default_factory=list)
    # Section name -> why the format or the lines cannot fill it.
    missing: dict[str, str] = field(default_factory=dict)
    unparsed: list[Unparsed] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    total_bytes_read: int = 0  # the files' size
    parsed_bytes: int = 0  # of which read and parsed (the rest came from the cache)
    cache: bool = True
    seconds: float = 0.0

    @property
    def unparsed_lines(self) -> int:
        """Lines that did not parse, over all files."""
        return sum(item.count for item in self.unparsed)

    @property
    def cached_bytes(self) -> int:
        """Bytes of the files answered from the parsed cache without reading them."""
        return max(0, self.total_bytes_read - self.parsed_bytes) if self.cache else 0

    @property
    def has_request_time(self) -> bool:
        """Whether the format has request times (p95 per path, the slowest requests)."""
        return "request_time" in FORMATS[self.format].fields

    def charts(self) -> dict[str, Markup]:
        """The timeline charts as inline SVG."""
        label = "%Y-%m-%d %H:00" if self.bucket == "hour" else "%Y-%m-%d"
        labels = [item.start.strftime(label) for item in self.timeline]
        return {
            "requests": bar_chart(
                labels,
                [
                    Series("requests", [b.requests for b in self.timeline], "#1565c0"),
                    Series("visitors", [b.visitors for b in self.timeline], "#ef6c00"),
                ],
                chart_id="chart-requests",
            ),
            "bytes": bar_chart(
                labels,
                [Series("bytes", [b.bytes for b in self.timeline], "#2e7d32")],
                chart_id="chart-bytes",
                unit="bytes",
            ),
        }


def human_bytes(count: int | None) -> str:
    """A byte count as B, KB, MB, GB or TB (powers of 1024)."""
    if count is None:
        return ""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
