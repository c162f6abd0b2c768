"""Scrape targets read into the metric series: a real Debian node exporter started on a
loopback port fills the host series, an app's histogram gives a p95 and its counter a rate,
and a target that does not answer keeps its error without a 5xx."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.diagnose import jobs as diagnose_jobs
from dutydesk.diagnose import scrape
from dutydesk.intake import log_sources
from dutydesk.jobs.models import Job
from dutydesk.metrics import service as metrics
from dutydesk.people.models import Role
from tests.conftest import make_user, sign_in
from tests.intake.desk_server import free_port

T0 = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.UTC)
COLLECTORS = ("loadavg", "meminfo", "filesystem", "cpu", "netdev")


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    """The URL of a real prometheus-node-exporter on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [
            "/usr/bin/prometheus-node-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            *(f"--collector.{name}" for name in COLLECTORS),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, "the node exporter exited"
            assert time.monotonic() < deadline, "the node exporter did not answer"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class AppMetrics:
    """An app's `/metrics` on loopback: a request-time histogram and a request counter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.seconds = Histogram(
            "http_request_duration_seconds",
            "Request time",
            ["route"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.requests = Counter("http_requests", "Requests", ["status"], registry=self.registry)


@pytest.fixture
def app_metrics() -> Iterator[tuple[str, AppMetrics]]:
    """An HTTP server answering the app's exposition, and the metrics to move."""
    served = AppMetrics()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(served.registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", served
    finally:
        server.shutdown()
        server.server_close()


def test_a_scrape_of_a_real_node_exporter_fills_the_host_series(
    db: Session, node_exporter: str
) -> None:
    target = scrape.create_target(
        db, name="host-1", url=node_exporter, actor="test", labels={"host": "host-1"}
    )
    assert scrape.scrape(db, target, now=T0) > 0
    assert target.last_error is None
    load = metrics.series(db, "node_load1[host-1]")
    assert len(load) == 1 and load[0][1] >= 0
    available = metrics.series(db, "node_memory_MemAvailable_bytes[host-1]")[0][1]
    total = metrics.series(db, "node_memory_MemTotal_bytes[host-1]")[0][1]
    assert 0 < available <= total
    disks = [key for key, _ in metrics.series_names(db, "node_filesystem_avail_bytes")]
    assert any(
        labels.get("mountpoint") == "/"
        for _, labels in metrics.series_names(db, "node_filesystem_size_bytes")
    ), disks
    # A counter is a rate: none after one scrape, one per CPU mode after the second.
    assert metrics.series_names(db, "node_cpu_seconds.rate") == []
    scrape.scrape(db, target, now=T0 + dt.timedelta(seconds=15))
    modes = {
        labels["mode"]: labels for _, labels in metrics.series_names(db, "node_cpu_seconds.rate")
    }
    assert {"idle", "user", "system"} <= set(modes)
    assert modes["idle"]["host"] == "host-1" and "cpu" not in modes["idle"]
    idle = metrics.series(db, "node_cpu_seconds.rate[host-1,idle]")
    assert len(idle) == 1 and idle[0][1] >= 0
    assert metrics.series_names(db, "node_network_receive_bytes.rate")
    # Only the kept names are written.
    assert metrics.series_names(db, "node_memory_Buffers_bytes") == []
    assert len(metrics.series(db, "node_load1[host-1]")) == 2


def test_a_histogram_gives_its_p95_and_a_counter_its_rate_per_second(
    db: Session, app_metrics: tuple[str, AppMetrics]
) -> None:
    url, served = app_metrics
    target = scrape.create_target(
        db,
        name="shop",
        url=url,
        actor="test",
        keep=["http_request_duration_seconds", "http_requests_total"],
        labels={"app": "shop"},
    )
    served.requests.labels("500").inc(3)
    served.seconds.labels("/cart").observe(5.0)  # before the first scrape: not in the span
    scrape.scrape(db, target, now=T0)
    for _ in range(90):
        served.seconds.labels("/cart").observe(0.05)
    for _ in range(10):
        served.seconds.labels("/cart").observe(0.4)
    served.requests.labels("500").inc(20)
    scrape.scrape(db, target, now=T0 + dt.timedelta(seconds=10))
    rate = metrics.series(db, "http_requests.rate[shop,500]")
    assert rate == [(T0 + dt.timedelta(seconds=10), 2.0)]
    p95 = metrics.series(db, "http_request_duration_seconds.p95[shop,/cart]")
    # 95th of 100: 5 of the 10 in (0.25, 0.5] -> halfway through that bucket.
    assert len(p95) == 1 and p95[0][1] == pytest.approx(0.375)


def test_a_dead_target_keeps_its_error_and_nothing_answers_5xx(
    client: TestClient, db: Session
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    csrf = sign_in(client, db, make_user(db, Role.viewer))
    body = {"name": "gone", "url": dead, "interval_seconds": 30, "labels": {"host": "gone"}}
    assert (
        client.post("/api/v1/scrape-targets", json=body, headers={"X-CSRF-Token": csrf}).status_code
        == 403
    )
    csrf = sign_in(client, db, make_user(db, Role.admin))
    headers = {"X-CSRF-Token": csrf}
    made = client.post("/api/v1/scrape-targets", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["keep"] == list(scrape.NODE_EXPORTER_DEFAULT)
    assert client.post("/api/v1/scrape-targets", json=body, headers=headers).status_code == 409
    wrong = client.post(
        "/api/v1/scrape-targets", json={**body, "name": "x", "url": "ftp://h/"}, headers=headers
    )
    assert wrong.status_code == 422 and "http(s)://" in wrong.text
    bad_keep = client.post(
        "/api/v1/scrape-targets", json={**body, "name": "y", "keep": ["no spaces"]}, headers=headers
    )
    assert bad_keep.status_code == 422 and "Prometheus names" in bad_keep.text
    scraped = client.post(f"/api/v1/scrape-targets/{made.json()['id']}/scrape", headers=headers)
    assert scraped.status_code == 200
    assert "ConnectError" in scraped.json()["last_error"]
    assert scraped.json()["last_scraped_at"] is not None
    assert client.post("/api/v1/scrape-targets/999/scrape", headers=headers).status_code == 404
    listed = client.get("/api/v1/scrape-targets").json()
    assert listed[0]["name"] == "gone" and "ConnectError" in listed[0]["last_error"]
    page = client.get("/scrape-targets")
    assert page.status_code == 200 and "ConnectError" in page.text and dead in page.text
    db.expire_all()
    assert metrics.series_names(db, "node_load1") == []


def test_the_page_form_adds_a_target_and_names_what_was_wrong(
    client: TestClient, db: Session
) -> None:
    csrf = sign_in(client, db, make_user(db, Role.admin))
    form = {
        "csrf_token": csrf,
        "name": "host-2",
        "url": "http://10.0.0.2:9100/metrics",
        "interval": "15",
        "keep": "node_load1, node_load5",
        "labels": "host=host-2 role=db",
    }
    added = client.post("/scrape-targets", data=form)
    assert added.status_code == 303
    db.expire_all()
    target = scrape.get_target(db, "host-2")
    assert target.keep == ["node_load1", "node_load5"]
    assert target.labels == {"host": "host-2", "role": "db"} and target.interval_seconds == 15
    again = client.post("/scrape-targets", data={**form, "name": "h3", "interval": "soon"})
    assert again.status_code == 400 and "whole number" in again.text
    label = client.post("/scrape-targets", data={**form, "name": "h3", "labels": "oops"})
    assert label.status_code == 400 and "name=value" in label.text
    csrf = sign_in(client, db, make_user(db, Role.operator))
    assert (
        client.post("/scrape-targets", data={**form, "csrf_token": csrf, "name": "h4"}).status_code
        == 403
    )


def test_the_beat_enqueues_a_scrape_while_a_target_is_due(db: Session, node_exporter: str) -> None:
    diagnose_jobs.enqueue_scrapes(db)
    assert db.scalar(select(Job).where(Job.kind == diagnose_jobs.SCRAPE)) is None
    target = scrape.create_target(
        db, name="host-1", url=node_exporter, actor="test", interval_seconds=30
    )
    diagnose_jobs.enqueue_scrapes(db)
    assert db.scalar(select(Job).where(Job.kind == diagnose_jobs.SCRAPE)) is not None
    assert diagnose_jobs.scrape_targets(db, {}) == {"host-1": target.last_series}
    assert target.last_series > 0
    instance = node_exporter.split("/")[2]
    assert target.labels == {"instance": instance}
    assert metrics.series(db, f"node_load1[{instance}]")
    assert scrape.due_targets(db) == []  # scraped just now; due again in 30 s
    later = target.last_scraped_at + dt.timedelta(seconds=30)
    assert scrape.due_targets(db, now=later) == [target]


def test_scrape_commands_add_list_and_scrape_a_real_node_exporter(node_exporter: str) -> None:
    def dutydesk(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, ["diagnose", *args])

    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    added = dutydesk(
        "scrape-add", "host-1", node_exporter, "--label", "host=h1", "--interval", "15"
    )
    assert added.exit_code == 0, added.output
    assert dutydesk("scrape-add", "dead", f"http://127.0.0.1:{free_port()}/m").exit_code == 0
    now = dutydesk("scrape-now", "host-1")
    assert now.exit_code == 0 and "series written" in now.stdout
    failed = dutydesk("scrape-now", "dead")
    assert failed.exit_code == 1 and "ConnectError" in failed.stderr
    listed = dutydesk("scrape-list").stdout
    assert "host-1" in listed and "ConnectError" in listed
    assert dutydesk("scrape-add", "bad", "http://h/m", "--label", "oops").exit_code == 2
    with transaction() as session:
        assert metrics.series(session, "node_load1[h1]")


def _json_lines(hour: int, statuses_and_times: list[tuple[int, float]]) -> str:
    return "".join(
        json.dumps(
            {
                "ts": f"2026-12-07T{hour:02d}:{index % 60:02d}:00Z",
                "method": "GET",
                "path": "/cart",
                "status": status,
                "request_time": seconds,
            }
        )
        + "\n"
        for index, (status, seconds) in enumerate(statuses_and_times)
    )


def test_an_access_log_source_gives_hourly_requests_5xx_and_p95(
    db: Session, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.write_text(_json_lines(3, [(200, 0.02)] * 90 + [(502, 0.4)] * 10))
    source = log_sources.create_log_source(
        db, name="shop-web", glob=str(tmp_path / "*.log"), actor="test", fmt="json"
    )
    log_sources.scan_source(db, source, T0)
    hour = dt.datetime(2026, 12, 7, 3, tzinfo=dt.UTC)
    assert metrics.series(db, "http.requests[shop-web]") == [(hour, 100.0)]
    assert metrics.series(db, "http.5xx[shop-web]") == [(hour, 10.0)]
    # 95th of 100: 5 of the 10 in (0.25, 0.5] -> halfway through that bucket.
    assert metrics.series(db, "http.response_time.p95[shop-web]") == [(hour, pytest.approx(0.375))]
    # The next scan adds its new lines to the same hour and starts the next.
    with log.open("a") as handle:
        handle.write(_json_lines(3, [(500, 3.0)] * 100) + _json_lines(4, [(200, 0.01)]))
    log_sources.scan_source(db, source, T0)
    assert metrics.series(db, "http.requests[shop-web]") == [
        (hour, 200.0),
        (hour + dt.timedelta(hours=1), 1.0),
    ]
    assert metrics.series(db, "http.5xx[shop-web]")[0] == (hour, 110.0)
    assert metrics.series(db, "http.response_time.p95[shop-web]")[0][1] == pytest.approx(4.75)


def test_an_access_log_without_request_times_gives_counts_only(db: Session, tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text(
        '10.0.0.1 - - [07/Dec/2026:03:10:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"\n'
        '10.0.0.1 - - [07/Dec/2026:03:11:00 +0000] "GET /pay HTTP/1.1" 503 5 "-" "x"\n'
    )
    source = log_sources.create_log_source(
        db, name="edge", glob=str(tmp_path / "*.log"), actor="test", fmt="nginx"
    )
    log_sources.scan_source(db, source, T0)
    assert [v for _, v in metrics.series(db, "http.requests[edge]")] == [2.0]
    assert [v for _, v in metrics.series(db, "http.5xx[edge]")] == [1.0]
    assert metrics.series(db, "http.response_time.p95[edge]") == []
