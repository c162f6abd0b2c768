"""Scrape targets: Prometheus exposition endpoints (node exporter, any app's `/metrics`) read
on a schedule into the metric series, with the target's labels. A counter is stored as its rate
per second since the previous scrape; a histogram as its p95 over that span. A target that does
not answer keeps its error and leaves a gap in its series, nothing worse."""

from __future__ import annotations

import datetime as dt
import math
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dutydesk.db import Base, utcnow
from dutydesk.diagnose import _exposition
from dutydesk.diagnose.service import NAME_PATTERN, DiagnoseError
from dutydesk.idents import as_id
from dutydesk.metrics import service as metrics
from dutydesk.metrics.models import MetricPoint, Period

# What a node exporter says about load, memory, disk, CPU and network (the default `keep`).
NODE_EXPORTER_DEFAULT = (
    "node_load1",
    "node_load5",
    "node_load15",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_cpu_seconds_total",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
)
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_SERIES_KEY = 300

if TYPE_CHECKING:
    from dutydesk.logs.formats import LogFormat


class ScrapeTarget(Base):
    """An exposition endpoint scraped every `interval_seconds`. `keep` lists the metric names
    kept (empty: every one); `labels` are added to each series. `previous` holds the last
    counter and bucket values, so the next scrape can store rates."""

    __tablename__ = "scrape_targets"
    __audited__ = True
    __audit_quiet__ = ("last_scraped_at", "last_error", "last_series", "previous")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(300))
    interval_seconds: Mapped[int] = mapped_column(default=60)
    keep: Mapped[list[Any]] = mapped_column(JSON, default=list)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    last_scraped_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_series: Mapped[int] = mapped_column(default=0)
    previous: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def create_target(
    session: Session,
    *,
    name: str,
    url: str,
    actor: str,
    interval_seconds: int = 60,
    keep: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> ScrapeTarget:
    """Register an exposition endpoint; `keep` None means the node exporter's default set."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise DiagnoseError(
            "a target name is 1 to 100 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 300:
        raise DiagnoseError("the URL must be http(s)://host:port/metrics, at most 300 characters")
    if not 5 <= interval_seconds <= 86_400:
        raise DiagnoseError("the interval is 5 to 86400 seconds")
    kept = list(NODE_EXPORTER_DEFAULT if keep is None else keep)
    bad = [metric for metric in kept if not METRIC_NAME.fullmatch(metric) or len(metric) > 200]
    if bad or len(kept) > 200:
        raise DiagnoseError(f"metric names to keep must be Prometheus names (not {bad[:3]})")
    # Unlabelled, a target's series carry its `instance` (host:port), as Prometheus does.
    added = dict(labels or {}) or {"instance": parts.netloc}
    if any(
        not LABEL_NAME.fullmatch(k) or len(k) > 50 or len(str(v)) > 100 for k, v in added.items()
    ):
        raise DiagnoseError("labels are name=value, names [a-zA-Z_][a-zA-Z0-9_]*, values short")
    if session.scalar(select(ScrapeTarget.id).where(ScrapeTarget.name == name)):
        raise DiagnoseError(f"a scrape target named {name!r} exists already")
    target = ScrapeTarget(
        name=name,
        url=url,
        interval_seconds=interval_seconds,
        keep=kept,
        labels={k: str(v) for k, v in added.items()},
        created_by=actor,
    )
    session.add(target)
    session.flush()
    return target


def list_targets(session: Session) -> list[ScrapeTarget]:
    """Every scrape target, by name."""
    return list(session.scalars(select(ScrapeTarget).order_by(ScrapeTarget.name)))


def get_target(session: Session, ident: int | str) -> ScrapeTarget:
    """A target by id or name."""
    query = select(ScrapeTarget)
    number = as_id(ident)
    if isinstance(ident, int) or number is not None:
        target = session.get(ScrapeTarget, number) if number is not None else None
    else:
        target = session.scalar(query.where(ScrapeTarget.name == ident))
    if target is None:
        raise DiagnoseError(f"no scrape target {ident!r}")
    return target


def fetch(url: str, timeout: float = 10.0) -> str:
    """The exposition text at `url`; raises ScrapeFailed naming why not."""
    import httpx

    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", url, headers={"Accept": "text/plain"}) as answer,
        ):
            if answer.status_code != 200:
                raise ScrapeFailed(f"HTTP {answer.status_code} from {url}")
            body = bytearray()
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ScrapeFailed(f"more than {MAX_BODY_BYTES} bytes from {url}")
    except httpx.HTTPError as error:
        raise ScrapeFailed(f"{type(error).__name__}: {error or 'no answer'}") from None
    return body.decode("utf-8", errors="replace")


class ScrapeFailed(Exception):
    """The target did not answer with an exposition; the message says why."""


def _key(name: str, labels: _exposition.Labels) -> str:
    return name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"


def scrape(session: Session, target: ScrapeTarget, *, now: dt.datetime | None = None) -> int:
    """Scrape `target` once into the series; returns how many points were written. A failure
    is kept as the target's last error (and written nothing), never raised."""
    now = (now or utcnow()).replace(microsecond=0)
    try:
        samples, histograms = _exposition.parse(
            fetch(target.url, min(10.0, target.interval_seconds)), target.keep or []
        )
    except ScrapeFailed as error:
        return _failed(target, now, str(error))
    except ValueError as error:
        return _failed(target, now, f"not a Prometheus exposition: {error}")
    before = dict(target.previous or {})
    then = before.pop("@", None)
    elapsed = (now - dt.datetime.fromisoformat(then)).total_seconds() if then else 0.0
    remembered: dict[str, Any] = {"@": now.isoformat()}
    points: list[metrics.Point] = []
    for sample in samples:
        labels = {**target.labels, **dict(sample.labels)}
        if sample.kind == "counter":
            key = _key(sample.name, sample.labels)
            remembered[key] = sample.value
            old = before.get(key)
            # A counter that went down was reset: no rate for this span.
            if old is None or elapsed <= 0 or sample.value < old:
                continue
            value = (sample.value - old) / elapsed
            points.append(
                metrics.Point(f"{sample.name.removesuffix('_total')}.rate", value, labels)
            )
        else:
            points.append(metrics.Point(sample.name, sample.value, labels))
    for (name, hist_labels), counts in histograms.items():
        key = _key(f"{name}_bucket", hist_labels)
        remembered[key] = {repr(bound): count for bound, count in counts.items()}
        old_counts = before.get(key)
        if not isinstance(old_counts, dict):
            continue
        delta = {
            bound: count - float(old_counts.get(repr(bound), 0.0))
            for bound, count in counts.items()
        }
        if any(value < 0 for value in delta.values()):
            continue
        p95 = _exposition.quantile(delta)
        if p95 is not None:
            labels = {**target.labels, **dict(hist_labels)}
            points.append(metrics.Point(f"{name}.p95", p95, labels))
    kept = [point for point in points if len(point.series) <= MAX_SERIES_KEY]
    written = metrics.record(session, f"scrape:{target.name}", now, kept)
    target.previous = remembered
    target.last_scraped_at = now
    target.last_error = None
    target.last_series = written
    return written


def _failed(target: ScrapeTarget, now: dt.datetime, error: str) -> int:
    target.last_scraped_at = now
    target.last_error = error[:2000]
    target.last_series = 0
    return 0


def due_targets(session: Session, *, now: dt.datetime | None = None) -> list[ScrapeTarget]:
    """The enabled targets whose interval has passed since their last scrape."""
    now = now or utcnow()
    found = session.scalars(select(ScrapeTarget).where(ScrapeTarget.enabled.is_(True)))
    return [
        target
        for target in found
        if target.last_scraped_at is None
        or now - target.last_scraped_at >= dt.timedelta(seconds=target.interval_seconds)
    ]


def scrape_due(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Scrape every due target; the points written by target name (0 for one that failed)."""
    return {
        target.name: scrape(session, target, now=now) for target in due_targets(session, now=now)
    }


# Upper bounds (seconds) of the request-time buckets an access log's hour is counted into.
REQUEST_TIME_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def access_series(
    session: Session, source: str, text: str, fmt: LogFormat, *, now: dt.datetime | None = None
) -> int:
    """Add the access-log lines of `text` (new lines of the log source `source`) to its
    per-hour series: `http.requests`, `http.5xx` and, when the format has a request time,
    `http.response_time.p95` (from per-hour bucket counts kept as `http.request_time.bucket`).
    Does nothing for a format without a status. Returns how many lines were counted."""
    from dutydesk.logs.formats import parse_line

    if "status" not in fmt.types or fmt.multiline:
        return 0
    timed = "request_time" in fmt.types
    hours: dict[dt.datetime, dict[str, float]] = {}
    counted = 0
    for line in text.splitlines():
        fields = parse_line(fmt, line)
        if not fields or not isinstance(fields.get("status"), int):
            continue
        at = fields.get("ts")
        hour = metrics.bucket_start(
            at if isinstance(at, dt.datetime) else (now or utcnow()), Period.hour
        )
        counts = hours.setdefault(hour, {})
        counts["requests"] = counts.get("requests", 0.0) + 1
        if 500 <= int(fields["status"]) <= 599:  # type: ignore[call-overload]
            counts["5xx"] = counts.get("5xx", 0.0) + 1
        seconds = fields.get("request_time")
        if timed and isinstance(seconds, int | float) and seconds >= 0:
            bound = next((b for b in REQUEST_TIME_BOUNDS if seconds <= b), math.inf)
            counts[f"le={bound!r}"] = counts.get(f"le={bound!r}", 0.0) + 1
        counted += 1
    labels = {"source": source}
    name = f"log:{source}"
    for hour, counts in hours.items():
        had = _hour_points(session, name, hour)
        points = [
            metrics.Point(
                "http.requests", had.get("http.requests", 0.0) + counts.get("requests", 0.0), labels
            ),
            metrics.Point("http.5xx", had.get("http.5xx", 0.0) + counts.get("5xx", 0.0), labels),
        ]
        buckets: dict[float, float] = {}
        for key, count in counts.items():
            if key.startswith("le="):
                buckets[float(key[3:])] = count
        for bound_text, count in had.items():
            if bound_text.startswith("le="):
                bound = float(bound_text[3:])
                buckets[bound] = buckets.get(bound, 0.0) + count
        for bound, count in buckets.items():
            points.append(
                metrics.Point("http.request_time.bucket", count, {**labels, "le": repr(bound)})
            )
        cumulative: dict[float, float] = {}
        running = 0.0
        # Every bound, empty ones too: a quantile interpolates from the bucket below.
        for bound in (*REQUEST_TIME_BOUNDS, math.inf):
            running += buckets.get(bound, 0.0)
            cumulative[bound] = running
        p95 = _exposition.quantile(cumulative)
        if p95 is not None:
            points.append(metrics.Point("http.response_time.p95", p95, labels))
        metrics.record(session, name, hour, points)
    return counted


def _hour_points(session: Session, source: str, hour: dt.datetime) -> dict[str, float]:
    """What `source` wrote at `hour` already: counts by name, buckets as `le=BOUND`."""
    found: dict[str, float] = {}
    rows = session.execute(
        select(MetricPoint.name, MetricPoint.labels, MetricPoint.value).where(
            MetricPoint.source == source, MetricPoint.at == hour
        )
    )
    for name, labels, value in rows:
        if name == "http.request_time.bucket":
            found[f"le={(labels or {}).get('le')}"] = value
        else:
            found[name] = value
    return found
