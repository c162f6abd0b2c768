"""Signal intake benchmark: generic JSON alerts over loopback into a desk on SQLite.

Starts the desk as a real process (`dutydesk web --workers 2`, a fresh home, SQLite, migrated
by `dutydesk db upgrade`) with one generic integration whose rate limit is out of the way,
then a second process sends generic JSON alerts to `/hooks/generic/{token}` for 30 seconds
from 16 concurrent keep-alive HTTP connections: 10% carry a new fingerprint,
the rest repeat one of the fingerprints seen so far. Afterwards it counts what the desk
stored: alarms, their occurrences, and accepted inbox items; `lost` is the number of alerts
answered 202 whose occurrence is not in the database (plus any not answered 202).

The last line is

    intake_alerts_per_s=<int> p99_ms=<float> lost=<int>

Run from the repository root:
`.venv/bin/python bench/intake.py [--seconds N] [--connections N] [--workers N]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dutydesk(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dutydesk", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def send(url: str, seconds: float, connections: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The sender process: `connections` threads posting alerts until the time is up.

    Each thread keeps one HTTP/1.1 connection alive (the standard library's client: the
    sender shares the machine's two cores with the desk, so it should cost little).
    """
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    keys: list[str] = ["fp-0"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    target = urlsplit(url)
    headers = {"Content-Type": "application/json"}

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine: list[float] = []
        while time.monotonic() < stop_at:
            with lock:
                if rng.random() < 0.10:
                    key = f"fp-{len(keys)}"
                    keys.append(key)
                else:
                    key = rng.choice(keys)
            body = json.dumps(
                {
                    "title": f"Synthetic alert {key}",
                    "dedup_key": key,
                    "severity": "warning",
                    "labels": {"service": "bench", "key": key},
                }
            ).encode()
            started = time.perf_counter()
            connection.request("POST", target.path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            mine.append(time.perf_counter() - started)
            with lock:
                statuses[answer.status] = statuses.get(answer.status, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put({"latencies": latencies, "statuses": statuses, "keys": len(keys)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="web processes (`--workers`)")
    options = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dutydesk-bench-intake-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUTYDESK_")}
    env.update(DUTYDESK_HOME=str(home), DUTYDESK_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT / "src"))
    dutydesk(env, "db", "upgrade")
    made = dutydesk(
        env,
        "integrations",
        "create",
        "--kind",
        "generic",
        "--name",
        "bench",
        "--rate-limit",
        "100000000",
    )
    path = next(line for line in made.splitlines() if line.startswith("url: "))
    path = "/" + path.split("/", 3)[3]
    port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dutydesk",
            "web",
            "--port",
            str(port),
            "--workers",
            str(options.workers),
        ],
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        sender = multiprocessing.Process(
            target=send, args=(f"{base}{path}", options.seconds, options.connections, out)
        )
        sender.start()
        result = out.get()
        sender.join()
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)

    latencies = sorted(result["latencies"])
    statuses: dict[int, int] = result["statuses"]
    accepted = statuses.get(202, 0)
    database = sqlite3.connect(home / "dutydesk.sqlite")
    (occurrences,) = database.execute("SELECT coalesce(sum(occurrences), 0) FROM alarms").fetchone()
    (alarms,) = database.execute("SELECT count(*) FROM alarms").fetchone()
    (inbox,) = database.execute(
        "SELECT count(*) FROM inbox_items WHERE outcome = 'accepted'"
    ).fetchone()
    database.close()
    shutil.rmtree(home, ignore_errors=True)
    lost = (len(latencies) - accepted) + max(0, accepted - int(occurrences))
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
    rate = int(accepted / options.seconds)
    print(
        json.dumps(
            {
                "sent": len(latencies),
                "statuses": statuses,
                "alarms": alarms,
                "occurrences": occurrences,
                "inbox_accepted": inbox,
                "fingerprints_sent": result["keys"],
                "p50_ms": round(p50, 2),
                "loadavg": os.getloadavg(),
            }
        )
    )
    print(f"intake_alerts_per_s={rate} p99_ms={p99:.1f} lost={lost}")


if __name__ == "__main__":
    main()
