"""Exception intake benchmark: Sentry envelopes (gzip, one event each) over loopback into a
desk on SQLite.

Starts `dutydesk web` as a real process (a fresh home, SQLite, migrated by `dutydesk db
upgrade`, one exception project whose rate limit is out of the way), then sends gzip
envelopes to `/api/{project}/envelope/` for `--seconds` (20) from `--connections` (8)
keep-alive connections, one thread each. Each event raises one of `--groups` (50) exceptions
(a new group opens a ticket, a repeat adds an occurrence). Afterwards it counts the events the
desk kept: `lost` is the envelopes answered 200 whose event is not counted in a group.

The last line is

    exception_events_per_s=<int> p99_ms=<float> lost=<int>

Run from the repository root: `.venv/bin/python bench/exception_intake.py [--seconds N]
[--connections N] [--workers N]`.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def envelope(group: int) -> bytes:
    event = {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "platform": "python",
        "release": "bench@1",
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"bad input {group}",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "app/views.py",
                                "function": "handle",
                                "lineno": group,
                                "context_line": f"raise ValueError({group})",
                                "in_app": True,
                            }
                        ]
                    },
                }
            ]
        },
    }
    payload = json.dumps(event).encode()
    header = json.dumps({"type": "event", "length": len(payload)}).encode()
    return gzip.compress(b'{"sdk": {"name": "bench"}}\n' + header + b"\n" + payload + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--groups", type=int, default=50)
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dd-bench-exc-"))
    env = {**os.environ, "DUTYDESK_HOME": str(home)}
    run = [sys.executable, "-m", "dutydesk"]
    subprocess.run([*run, "db", "upgrade"], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [*run, "diagnose", "project-add", "bench", "--rate-limit", "1000000"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    dsn = made.split("dsn: ", 1)[1].strip()
    key, project = dsn.split("//", 1)[1].split("@", 1)[0], dsn.rsplit("/", 1)[1]
    port = free_port()
    web = subprocess.Popen(
        [*run, "web", "--port", str(port), "--workers", str(options.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/health")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
            if time.monotonic() > deadline:
                raise SystemExit("the desk did not start")
        latencies: list[float] = []
        ok = failed = 0
        lock = threading.Lock()
        stop_at = time.monotonic() + options.seconds
        headers = {
            "Content-Encoding": "gzip",
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}",
        }

        def sender() -> None:
            nonlocal ok, failed
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < stop_at:
                body = envelope(random.randrange(options.groups))
                started = time.perf_counter()
                connection.request("POST", f"/api/{project}/envelope/", body, headers)
                answer = connection.getresponse()
                answer.read()
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    if answer.status == 200:
                        ok += 1
                    else:
                        failed += 1

        threads = [threading.Thread(target=sender) for _ in range(options.connections)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
    finally:
        web.terminate()
        web.wait(timeout=30)
    with sqlite3.connect(home / "dutydesk.sqlite") as database:
        counted = database.execute(
            "select coalesce(sum(count), 0) from exception_groups"
        ).fetchone()[0]
        groups = database.execute("select count(*) from exception_groups").fetchone()[0]
    shutil.rmtree(home, ignore_errors=True)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"{ok} events answered 200, {failed} not, {groups} groups, {counted} counted")
    print(f"p50 {p50:.1f} ms over {elapsed:.1f} s")
    print(
        f"exception_events_per_s={ok / elapsed:.0f} p99_ms={p99:.1f} lost={ok - counted + failed}"
    )


if __name__ == "__main__":
    main()
