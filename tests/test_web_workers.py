"""`dutydesk web --workers 2` for real: two processes on one port writing intake to one SQLite file.

Alerts of the same fingerprint reach both processes at once on different keep-alive
connections; their writers take turns through the lock file beside the database, so nothing
is lost or duplicated: one alarm and one open ticket per fingerprint, every occurrence counted,
every request kept in the inbox, and exactly one answer per fingerprint saying it is new.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.test_processes import healthy
from tests.test_worker import (
    Processes,
    ProcessInfo,
    Started,
    children_of,
    desk_env,
    free_port,
    run_dutydesk,
    still_running,
    wait_until,
)

WORKERS = 2
CONNECTIONS = 8
FINGERPRINTS = 40
PER_FINGERPRINT = 10
ALERTS = FINGERPRINTS * PER_FINGERPRINT
STOP_SECONDS = 20.0


def create_generic_integration(env: dict[str, str]) -> str:
    """Make a generic integration without a practical rate limit; return its hook's path."""
    done = run_dutydesk(
        env,
        "integrations",
        "create",
        "--kind",
        "generic",
        "--name",
        "race",
        "--rate-limit",
        "100000000",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    url = next((line for line in done.stdout.splitlines() if line.startswith("url: ")), None)
    assert url is not None, f"no `url: ` line in:\n{done.stdout}"
    return "/" + url.removeprefix("url: ").split("/", 3)[3]


def web_workers(web: Started) -> list[ProcessInfo]:
    """The uvicorn worker processes under `web` (spawned Python processes serving the app)."""
    return [child for child in children_of(web.pid) if "spawn_main" in " ".join(child.argv)]


def open_connections(port: int, count: int) -> list[http.client.HTTPConnection]:
    """`count` keep-alive connections, each already accepted (one GET /health each)."""
    connections = []
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/health")
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, f"GET /health answered {answer.status}"
        connections.append(connection)
    return connections


def send_alerts(
    connections: list[http.client.HTTPConnection], path: str
) -> list[tuple[str, int, dict[str, Any]]]:
    """Post every alert from one thread per connection; return (key, status, body) of each.

    The alerts are queued fingerprint by fingerprint, so the threads take several alerts of
    the same fingerprint at once and post them on different connections (to both processes).
    """
    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for number in range(FINGERPRINTS):
        for _ in range(PER_FINGERPRINT):
            work.put(f"race-{number:02d}")
    answers: list[tuple[str, int, dict[str, Any]]] = []
    errors: list[str] = []
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}

    def post_from(connection: http.client.HTTPConnection) -> None:
        mine = []
        try:
            while True:
                try:
                    key = work.get_nowait()
                except queue.Empty:
                    break
                body = {"title": f"Race {key}", "dedup_key": key, "severity": "warning"}
                connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
                answer = connection.getresponse()
                raw = answer.read()
                try:
                    content = json.loads(raw)
                except ValueError:
                    content = {"raw": raw.decode(errors="replace")}
                mine.append((key, answer.status, content))
        except Exception as error:  # reported by the test below
            with lock:
                errors.append(f"{type(error).__name__}: {error}")
        finally:
            with lock:
                answers.extend(mine)

    threads = [threading.Thread(target=post_from, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a sender thread hangs"
    assert errors == [], f"sending failed: {errors}"
    return answers


def stop_web(web: Started) -> int:
    """SIGTERM the web process group and return the parent's exit status."""
    os.killpg(web.pid, signal.SIGTERM)
    try:
        return web.popen.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dutydesk web still runs {STOP_SECONDS:.0f} s after SIGTERM")


@pytest.mark.timeout(180)
def test_two_web_workers_racing_on_the_same_fingerprints_lose_and_duplicate_nothing(
    processes: Processes, home: Path
) -> None:
    env = desk_env(home, DUTYDESK_LOG_LEVEL="WARNING")
    upgraded = run_dutydesk(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    port = free_port()
    web = processes.start("web", ["web", "--port", str(port), "--workers", str(WORKERS)], env)
    # The race must span processes. Which worker accepts a connection is the kernel's choice
    # (on a busy machine one may take them all), so half the connections go to a second
    # `dutydesk web` on the same database: at least two processes race whatever happens.
    # Both start now, and the integration is made while they start (each one's start-up is
    # seconds of imports).
    other_port = free_port()
    other = processes.start("web-b", ["web", "--port", str(other_port)], env)
    path = create_generic_integration(env)

    wait_until(lambda: healthy(f"http://127.0.0.1:{port}"), 120, "GET /health to answer 200")

    def both_workers() -> list[ProcessInfo] | None:
        if web.popen.poll() is not None:
            pytest.fail(f"dutydesk web exited with {web.popen.returncode}")
        found = web_workers(web)
        return found if len(found) == WORKERS else None

    workers = wait_until(both_workers, 30, f"{WORKERS} uvicorn workers under dutydesk web")

    wait_until(lambda: healthy(f"http://127.0.0.1:{other_port}"), 120, "the second web's /health")
    connections = open_connections(port, CONNECTIONS // 2) + open_connections(
        other_port, CONNECTIONS - CONNECTIONS // 2
    )

    started = time.monotonic()
    try:
        answers = send_alerts(connections, path)
    finally:
        for connection in connections:
            connection.close()
    sending = time.monotonic() - started

    statuses = Counter(status for _key, status, _content in answers)
    assert len(answers) == ALERTS, f"{len(answers)} answers to {ALERTS} alerts"
    assert statuses == {202: ALERTS}, f"statuses {dict(statuses)}; e.g. " + str(
        [a for a in answers if a[1] != 202][:3]
    )
    inbox_ids = {content["inbox_id"] for _key, _status, content in answers}
    assert len(inbox_ids) == ALERTS, f"{len(inbox_ids)} distinct inbox_ids in {ALERTS} answers"
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, _status, content in answers:
        by_key[key].append(content)
    assert len(by_key) == FINGERPRINTS
    for key, contents in sorted(by_key.items()):
        new = sum(1 for content in contents if content["is_new"] is True)
        assert new == 1, f"{key}: {new} answers with is_new true (want 1): {contents}"
        alarms = {content["alert_id"] for content in contents}
        tickets = {content["ticket_id"] for content in contents}
        assert len(alarms) == 1, f"{key} answered with several alarms: {sorted(alarms)}"
        assert len(tickets) == 1, f"{key} answered with several tickets: {sorted(tickets)}"

    # One uvicorn process ends by the signal it was stopped with, after its graceful shutdown.
    assert stop_web(other) in (0, -signal.SIGTERM), "the second dutydesk web did not stop"
    assert stop_web(web) == 0, "dutydesk web did not exit cleanly on SIGTERM"
    left = [worker.pid for worker in workers if still_running(worker)]
    assert left == [], f"worker processes still running after web stopped: {left}"

    database_path = home / "dutydesk.sqlite"
    assert Path(f"{database_path}.intake-turn").exists(), "no intake turn lock beside the db"
    database = sqlite3.connect(database_path)
    try:
        alarm_rows = database.execute(
            "SELECT fingerprint, occurrences, ticket_id FROM alarms"
        ).fetchall()
        ticket_rows = database.execute(
            "SELECT fingerprint, occurrences, status FROM tickets"
        ).fetchall()
        (accepted,) = database.execute(
            "SELECT count(*) FROM inbox_items WHERE outcome = 'accepted'"
        ).fetchone()
        (inbox_total,) = database.execute("SELECT count(*) FROM inbox_items").fetchone()
    finally:
        database.close()

    assert len(alarm_rows) == FINGERPRINTS, f"{len(alarm_rows)} alarms: {alarm_rows}"
    assert len(ticket_rows) == FINGERPRINTS, f"{len(ticket_rows)} tickets: {ticket_rows}"
    ticket_fingerprints = Counter(fingerprint for fingerprint, _n, _status in ticket_rows)
    duplicated = {fp: n for fp, n in ticket_fingerprints.items() if n > 1}
    assert duplicated == {}, f"fingerprints with several tickets: {duplicated}"
    assert all(status != "closed" for _fp, _n, status in ticket_rows), ticket_rows
    assert sum(n for _fp, n, _ticket in alarm_rows) == ALERTS, f"alarm occurrences: {alarm_rows}"
    assert sum(n for _fp, n, _status in ticket_rows) == ALERTS, f"ticket occurrences: {ticket_rows}"
    assert {n for _fp, n, _ticket in alarm_rows} == {PER_FINGERPRINT}, alarm_rows
    answered_alarms = {contents[0]["alert_id"] for contents in by_key.values()}
    assert len(answered_alarms) == FINGERPRINTS, "two fingerprints answered with one alarm"
    assert accepted == ALERTS, f"{accepted} accepted inbox items of {inbox_total} (want {ALERTS})"
    print(f"{ALERTS} alerts over {CONNECTIONS} connections to 2 ports in {sending:.2f} s")
