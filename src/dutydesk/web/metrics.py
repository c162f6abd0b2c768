"""The desk's own Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.jobs.service import state_counts


class JobStateCollector(Collector):
    """Jobs by state, read from the database at scrape time (the truth, not a local count)."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("dutydesk_jobs", "Jobs by state.", labels=["state"])
        with self._factory() as session:
            for state, count in state_counts(session).items():
                family.add_metric([state], count)
        yield family


class DeskMetrics:
    """One registry per app, so tests and several apps in one process do not collide."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "dutydesk_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.registry.register(JobStateCollector(factory))

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
