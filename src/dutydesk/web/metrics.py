"""The desk's own Prometheus metrics.

Counters and the request-duration histogram are counted where things happen, in the process
that answers. When the web runs several processes (`dutydesk web --workers N`), the master
names a directory under DUTYDESK_HOME in PROMETHEUS_MULTIPROC_DIR before the workers start
(`use_multiprocess_dir`); prometheus_client then keeps every process's counts in files there, and
a scrape of any worker adds them all up. A worker that dies leaves its files, so its counts stay
in the sums and no counter goes backwards. `dutydesk up` names one such directory for every
process it starts, so the mail counted by the SMTP listener and by the worker's IMAP poll
(`count_mail`) shows in a scrape of the web too. The gauges of the desk's state are read from the
database at scrape time (`DeskStateCollector`), so every process tells the same truth.
"""

from __future__ import annotations

import datetime as dt
import functools
import glob
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.jobs.models import DueMark, Job, JobState
from dutydesk.processes import process_runs

# A counter's `_created` series (when it was first counted) is shown by a single process and
# not in the multiprocess mode `dutydesk up` uses: leave it out everywhere, so a scrape has the
# same series however the desk runs.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How long the database gauges of one scrape are reused by the next (a few cheap queries).
STATE_CACHE_SECONDS = 5.0


def use_multiprocess_dir(directory: Path) -> None:
    """Empty `directory` and name it in PROMETHEUS_MULTIPROC_DIR for the processes started
    after this (the web master calls it before its workers start; they import
    prometheus_client afresh and so count into files there)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def multiprocess_dir() -> str | None:
    """The shared metrics directory when this process counts into one."""
    return os.environ.get(MULTIPROC_ENV) or None


def intake_outcome(status: int) -> str:
    """What became of an intake request, from the status it was answered with."""
    if status < 400:
        return "accepted"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "failed"
    return "refused"


# Mail is counted where it is taken: in `dutydesk smtp` and in the worker's IMAP poll, not in
# the web. In one process these counters show through MAIL_REGISTRY; across processes through
# the shared multiprocess directory.
MAIL_REGISTRY = CollectorRegistry()
MAIL_RECEIVED = Counter(
    "dutydesk_mail_received",
    "Mail messages received, by source (smtp, imap) and listener (the SMTP listener's "
    "address, or the IMAP mailbox as host/folder).",
    ["source", "listener"],
    registry=MAIL_REGISTRY,
)
MAIL_MESSAGES = Counter(
    "dutydesk_mail_messages",
    "Mail messages by source, listener and outcome: accepted (an alarm or a ticket note), "
    "refused (5xx: no integration takes it, too big, unreadable), deferred (4xx: rate limit) "
    "or failed (an error in the desk).",
    ["source", "listener", "outcome"],
    registry=MAIL_REGISTRY,
)


def mail_outcome(reply: str | None) -> str:
    """What became of a mail message, from the SMTP reply the desk gave (None: it failed)."""
    if reply is None:
        return "failed"
    if reply.startswith("2"):
        return "accepted"
    if reply.startswith("4"):
        return "deferred"
    return "refused"


def count_mail(source: str, listener: str, reply: str | None) -> None:
    """Count one message taken by `listener` (received, and its outcome from `reply`)."""
    MAIL_RECEIVED.labels(source, listener).inc()
    MAIL_MESSAGES.labels(source, listener, mail_outcome(reply)).inc()


def _seconds(moment: dt.datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


class DeskStateCollector(Collector):
    """Gauges of the desk's state, read from the database at scrape time and kept a few
    seconds: open tickets, deliveries, dead letters, the watchdog, the export, jobs."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > STATE_CACHE_SECONDS:
                with self._factory() as session:
                    self._cached = (now, list(self._read(session)))
            families = self._cached[1]
        yield from families

    def _read(self, session: Session) -> Iterator[Metric]:
        from dutydesk.notify import watchdog
        from dutydesk.notify.models import Delivery, DeliveryState
        from dutydesk.tickets.models import Severity, Status, Ticket

        tickets = GaugeMetricFamily(
            "dutydesk_open_tickets",
            "Tickets not closed, by severity and status (open or acknowledged).",
            labels=["severity", "status"],
        )
        counts = {(s.value, t.value): 0 for s in Severity for t in Status if t != Status.closed}
        rows = session.execute(
            select(Ticket.severity, Ticket.status, func.count())
            .where(Ticket.status != Status.closed.value)
            .group_by(Ticket.severity, Ticket.status)
        ).all()
        counts.update({(severity, status): int(n) for severity, status, n in rows})
        for (severity, status), n in sorted(counts.items()):
            tickets.add_metric([severity, status], n)
        yield tickets

        deliveries = GaugeMetricFamily(
            "dutydesk_deliveries",
            "Notices by channel kind and state (pending, sent, failed, dead).",
            labels=["channel_kind", "state"],
        )
        rows = session.execute(
            select(Delivery.kind, Delivery.state, func.count()).group_by(
                Delivery.kind, Delivery.state
            )
        ).all()
        dead = 0
        for channel_kind, state, n in sorted(rows):
            deliveries.add_metric([channel_kind, state], int(n))
            dead += int(n) if state == DeliveryState.dead.value else 0
        yield deliveries
        yield GaugeMetricFamily(
            "dutydesk_dead_letters",
            "Notices that failed too often and wait to be retried by hand.",
            value=dead,
        )

        result = watchdog.check(session)
        yield GaugeMetricFamily(
            "dutydesk_watchdog_ok",
            "1 when every critical ticket got a notice in time (the watchdog's check), else 0.",
            value=1 if result.ok else 0,
        )
        yield GaugeMetricFamily(
            "dutydesk_watchdog_unnoticed_tickets",
            "Critical tickets older than DUTYDESK_WATCHDOG_MINUTES that nobody was told about.",
            value=len(result.unnoticed),
        )
        mark = session.get(DueMark, "notify.watchdog")
        last_check = _seconds(mark.last_at if mark else None)
        if last_check is not None:
            yield GaugeMetricFamily(
                "dutydesk_watchdog_last_run_timestamp_seconds",
                "When the periodic watchdog check last ran (Unix time).",
                value=last_check,
            )

        yield from _export_gauges(session)
        yield from backup_gauges(session)

        jobs = GaugeMetricFamily(
            "dutydesk_jobs", "Jobs by kind and state.", labels=["kind", "state"]
        )
        rows = session.execute(
            select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
        ).all()
        by_kind: dict[str, dict[str, int]] = {}
        for kind, state, n in rows:
            by_kind.setdefault(kind, {s.value: 0 for s in JobState})[state] = int(n)
        for kind, states in sorted(by_kind.items()):
            for state, n in sorted(states.items()):
                jobs.add_metric([kind, state], n)
        yield jobs


def _export_gauges(session: Session) -> Iterator[Metric]:
    from dutydesk.export.models import ExportRun, RunState

    succeeded = session.scalar(
        select(func.max(ExportRun.finished_at)).where(ExportRun.state == RunState.succeeded.value)
    )
    last_success = _seconds(succeeded)
    if last_success is not None:
        yield GaugeMetricFamily(
            "dutydesk_export_last_success_timestamp_seconds",
            "When the last export run that fully succeeded finished (Unix time).",
            value=last_success,
        )
    ended_states = [RunState.succeeded.value, RunState.partial.value, RunState.failed.value]
    last = session.scalars(
        select(ExportRun)
        .where(ExportRun.state.in_(ended_states), ExportRun.finished_at.is_not(None))
        .order_by(ExportRun.finished_at.desc(), ExportRun.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return
    started = _seconds(last.started_at)
    ended = _seconds(last.finished_at)
    if started is not None and ended is not None:
        yield GaugeMetricFamily(
            "dutydesk_export_last_run_duration_seconds",
            "How long the last finished export run took.",
            value=max(ended - started, 0.0),
        )
    counters = (last.metrics or {}).get("counters") or {}
    yield GaugeMetricFamily(
        "dutydesk_export_last_run_records",
        "Records the last finished export run read (its numTotal counter).",
        value=float(counters.get("numTotal", 0)),
    )


class WebProcessesCollector(Collector):
    """process_* of every live process that counts into the shared directory (the web's
    workers; under `dutydesk up` the worker and the SMTP listener too), labelled by pid
    (prometheus_client's own process collector sees only the one that answers the scrape)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def _pids(self) -> list[int]:
        pids = set()
        for path in glob.glob(os.path.join(self._directory, "*.db")):
            tail = Path(path).stem.rsplit("_", 1)[-1]
            if tail.isdigit():
                pids.add(int(tail))
        pids.add(os.getpid())
        return sorted(pid for pid in pids if process_runs(pid))

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self._pids():
            for family in ProcessCollector(
                pid=functools.partial(int, pid), registry=None
            ).collect():
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    into.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()


class DeskMetrics:
    """One set of counters per app (so tests and several apps in one process do not collide);
    `render` builds the scrape from them, or from every web process's files."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "dutydesk_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "dutydesk_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.intake_requests = Counter(
            "dutydesk_intake_requests",
            "Intake requests by integration, kind and outcome "
            "(accepted, refused, rate_limited, failed).",
            ["integration", "kind", "outcome"],
            registry=self.registry,
        )
        self.state = DeskStateCollector(factory)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        scrape = CollectorRegistry(auto_describe=False)
        directory = multiprocess_dir()
        if directory:
            MultiProcessCollector(scrape, path=directory)  # type: ignore[no-untyped-call]
            scrape.register(WebProcessesCollector(directory))
        else:
            scrape.register(_Registered(self.registry))
            scrape.register(_Registered(MAIL_REGISTRY))
            ProcessCollector(registry=scrape)
            scrape.register(GC_COLLECTOR)
        PlatformCollector(registry=scrape)
        scrape.register(self.state)
        return generate_latest(scrape)


class _Registered(Collector):
    """Everything of another registry, as one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def backup_gauges(session: Session) -> Iterator[Metric]:
    """Per backup target: the newest backup, the newest drill's outcome, RPO and RTO, freshness."""
    from dutydesk.backups import service as backups

    families = {
        "last_success": GaugeMetricFamily(
            "dutydesk_backup_last_success_timestamp_seconds",
            "When the target's newest stored backup was taken (Unix time).",
            labels=["target"],
        ),
        "size": GaugeMetricFamily(
            "dutydesk_backup_last_size_bytes",
            "Size of the target's newest stored backup as stored (compressed).",
            labels=["target"],
        ),
        "drill_ok": GaugeMetricFamily(
            "dutydesk_backup_drill_ok",
            "1 when the target's newest restore drill passed, 0 when it failed.",
            labels=["target"],
        ),
        "drill_at": GaugeMetricFamily(
            "dutydesk_backup_drill_last_timestamp_seconds",
            "When the target's newest restore drill ended (Unix time).",
            labels=["target"],
        ),
        "rpo": GaugeMetricFamily(
            "dutydesk_backup_drill_rpo_seconds",
            "Recovery point of the newest drill: age of the newest restorable change.",
            labels=["target"],
        ),
        "rto": GaugeMetricFamily(
            "dutydesk_backup_drill_rto_seconds",
            "Recovery time of the newest drill: how long its restore took.",
            labels=["target"],
        ),
        "fresh": GaugeMetricFamily(
            "dutydesk_backup_fresh",
            "1 when the target has a verified backup within its maximum age, else 0.",
            labels=["target"],
        ),
    }
    for target in backups.list_targets(session):
        name = [target.name]
        newest = backups.newest_backup(session, target)
        taken = _seconds(newest.started_at) if newest else None
        if newest is not None and taken is not None:
            families["last_success"].add_metric(name, taken)
            families["size"].add_metric(name, float(newest.size_bytes or 0))
        drill = backups.newest_drill(session, target)
        ended = _seconds(drill.finished_at) if drill else None
        if drill is not None:
            families["drill_ok"].add_metric(name, 1 if drill.state == "passed" else 0)
            if ended is not None:
                families["drill_at"].add_metric(name, ended)
            if drill.rpo_seconds is not None:
                families["rpo"].add_metric(name, drill.rpo_seconds)
            if drill.rto_seconds is not None:
                families["rto"].add_metric(name, drill.rto_seconds)
        families["fresh"].add_metric(name, 1 if backups.is_fresh(session, target) else 0)
    yield from families.values()
