"""/metrics of a real `dutydesk web --workers 2`: a scrape of any process sees the counts of
all of them, no counter goes backwards (not even when a worker is killed and replaced), and
Debian's real Prometheus scrapes the desk with a read token.

The module's tests share one desk (the Prometheus test sends no alerts, so the other's exact
count of accepted alerts holds in either order), and its `dutydesk` commands run in this
process: a web with two workers is the expensive part, started once.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from dutydesk.cli import app
from tests.conftest import clear_caches
from tests.test_processes import healthy
from tests.test_web_workers import web_workers
from tests.test_worker import Processes, Started, desk_env, free_port, wait_until

pytestmark = pytest.mark.xdist_group("metrics_scrape_desk")  # one worker starts the shared desk
PROMETHEUS = shutil.which("prometheus")
WORKERS = 2
THREADS = 8
PER_ROUND = 40
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def in_desk(home: Path, *args: str) -> str:
    """Run `dutydesk ARGS` in this process on the desk in `home`; return what it printed."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("DUTYDESK_") and not name.startswith("DUTYDESK_TEST_"):
                patch.delenv(name)
        patch.setenv("DUTYDESK_HOME", str(home))
        clear_caches()
        try:
            done = CliRunner().invoke(app, list(args))
        finally:
            clear_caches()
    assert done.exit_code == 0, f"dutydesk {' '.join(args)}: {done.output}"
    return done.stdout


def read_token(home: Path) -> str:
    """A new API token of the read scope, as `dutydesk tokens create` prints it."""
    return in_desk(home, "tokens", "create", "--name", "prometheus", "--scope", "read").strip()


@dataclass(frozen=True)
class Desk:
    """A running `dutydesk web --workers 2` with a read token and a generic integration."""

    home: Path
    web: Started
    port: int
    token: str
    path: str  # the generic integration's hook


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """One desk for the module's tests, stopped after the last of them."""
    home = tmp_path_factory.mktemp("metrics-desk")
    in_desk(home, "db", "upgrade")
    made = in_desk(
        home,
        *("integrations", "create", "--kind", "generic", "--name", "race"),
        *("--rate-limit", "100000000"),
    )
    url = next((line for line in made.splitlines() if line.startswith("url: ")), None)
    assert url is not None, f"no `url: ` line in:\n{made}"
    token = read_token(home)
    processes = Processes(home / "processes")
    port = free_port()
    env = desk_env(home, DUTYDESK_LOG_LEVEL="WARNING")
    web = processes.start("web", ["web", "--port", str(port), "--workers", str(WORKERS)], env)
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{port}"), 150, "GET /health to answer 200")
        yield Desk(home, web, port, token, "/" + url.removeprefix("url: ").split("/", 3)[3])
    finally:
        processes.kill_all()  # neither test checks how the web stops
        processes.print_logs()


def scrape(port: int, token: str) -> tuple[Samples, str]:
    """One scrape on a new connection (so any worker may answer): samples and raw text."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    assert answer.status == 200, text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, text


def post_round(port: int, path: str) -> None:
    """PER_ROUND alerts from THREADS threads, each on connections of its own."""
    errors: list[str] = []

    def send(count: int) -> None:
        for number in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                body = json.dumps({"title": "Load", "dedup_key": f"k{number % 5}"})
                connection.request(
                    "POST", path, body=body, headers={"Content-Type": "application/json"}
                )
                answer = connection.getresponse()
                answer.read()
                if answer.status != 202:
                    errors.append(str(answer.status))
            finally:
                connection.close()

    threads = [threading.Thread(target=send, args=(PER_ROUND // THREADS,)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [], f"answers other than 202: {errors}"


def counters(samples: Samples) -> Iterator[tuple[tuple[str, tuple[tuple[str, str], ...]], float]]:
    for key, number in samples.items():
        if key[0].endswith(("_total", "_count", "_bucket", "_sum")) and not key[0].startswith(
            "process_"
        ):
            yield key, number


def pids(samples: Samples) -> set[str]:
    return {dict(labels)["pid"] for name, labels in samples if name == "process_cpu_seconds_total"}


@pytest.mark.timeout(240)
def test_any_worker_answers_the_sum_of_all_and_no_counter_goes_backwards(desk: Desk) -> None:
    web, port, token, path = desk.web, desk.port, desk.token, desk.path
    wait_until(lambda: len(web_workers(web)) == WORKERS, 30, "both uvicorn workers")

    accepted = {"integration": "race", "kind": "generic", "outcome": "accepted"}
    key = ("dutydesk_intake_requests_total", tuple(sorted(accepted.items())))
    sent = 0
    seen: Samples = {}
    answered_by: set[str] = set()

    def check(samples: Samples) -> None:
        assert samples.get(key, 0) == sent, f"{samples.get(key)} accepted counted, {sent} sent"
        for name, number in counters(samples):
            assert number >= seen.get(name, 0), f"{name} went back from {seen[name]} to {number}"
            seen[name] = number

    def load_until_both_answered() -> None:
        nonlocal sent
        for _ in range(30):
            post_round(port, path)
            sent += PER_ROUND
            for _scrape in range(4):
                samples, _text = scrape(port, token)
                check(samples)
                answered_by.update(pids(samples))
            if len(answered_by & {str(w.pid) for w in web_workers(web)}) == WORKERS:
                return
        files = sorted(file.name for file in (desk.home / "metrics" / f"web-{port}").iterdir())
        pytest.fail(
            f"the requests never reached both workers {web_workers(web)} "
            f"(pids seen: {answered_by}; files {files})"
        )

    load_until_both_answered()

    # A worker killed outright leaves its counts behind: uvicorn starts another, and the sums
    # still hold everything (a counter that went backwards would fail `check`), whichever
    # process answers.
    victim = web_workers(web)[0]
    os.kill(victim.pid, signal.SIGKILL)
    wait_until(
        lambda: len(web_workers(web)) == WORKERS and victim not in web_workers(web),
        60,
        "uvicorn to replace the killed worker",
    )
    for _ in range(3):
        post_round(port, path)
        sent += PER_ROUND
        for _scrape in range(4):
            check(scrape(port, token)[0])

    samples, text = scrape(port, token)
    for name in (
        "dutydesk_http_request_duration_seconds",
        "dutydesk_intake_requests_total",
        "dutydesk_open_tickets",
        "dutydesk_jobs",
        "process_cpu_seconds_total",
        "python_info",
    ):
        assert f"# HELP {name} " in text, f"no HELP of {name}"
    assert "# TYPE dutydesk_http_request_duration_seconds histogram" in text
    assert "# TYPE dutydesk_intake_requests_total counter" in text
    assert str(victim.pid) not in pids(samples), "the killed worker's process_* are still shown"


@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus (make system-packages)")
@pytest.mark.timeout(240)
def test_debian_prometheus_scrapes_the_desk_with_a_read_token(desk: Desk, tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    token, port = desk.token, desk.port

    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: dutydesk\n"
        "    authorization:\n"
        f"      credentials: {json.dumps(token)}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
    )
    prometheus_port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{prometheus_port}/api/v1/query"

    def query(expression: str) -> list[dict[str, object]] | None:
        try:
            answer = httpx.get(api, params={"query": expression}, timeout=5)
        except httpx.TransportError:
            return None
        if answer.status_code != 200:
            return None
        result: list[dict[str, object]] = answer.json()["data"]["result"]
        return result or None

    try:
        up = wait_until(lambda: query('up{job="dutydesk"} == 1'), 120, "Prometheus to see up == 1")
        assert up[0]["value"][1] == "1"  # type: ignore[index]
        for series in (
            "dutydesk_http_request_duration_seconds_count",
            "dutydesk_open_tickets",
            "dutydesk_dead_letters",
            "dutydesk_watchdog_ok",
            "process_cpu_seconds_total",
        ):
            wait_until(lambda series=series: query(series), 60, f"Prometheus to hold {series}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        print((tmp_path / "prometheus.log").read_text(errors="replace")[-3000:])
