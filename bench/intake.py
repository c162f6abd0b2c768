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

`--kill-every SECONDS` measures instead that nothing answered 202 is lost when the desk dies:
while the senders run, after every SECONDS of serving the whole web process group (uvicorn's
master and its workers) gets SIGKILL and is started again at once on the same home and port;
`--seconds` then counts the time the desk serves, not the time it takes to start. A request
the kill cuts off, or a connection refused while the desk starts, is not acknowledged; its
sender opens a new connection and goes on with a new alert (nothing is sent again). Each alert
carries a unique `bench_id`, which the desk keeps in the inbox with the request; only 202
answers count as acknowledged. When the senders are done the desk is killed and started once
more (counted in `kills`), then it counts: `lost` is the acknowledged alerts whose accepted
inbox item (written in the same transaction as the alarm's occurrence) is not in the
database. The last line is then

    intake_kill_runs=<kills> acknowledged=<int> lost=<int>

With `--database-url postgresql+psycopg://postgres@127.0.0.1:5432/dd_bench_intake_kill` the
desk runs on PostgreSQL: the bench drops and creates that database (its name must start with
`dd_bench_`) and drops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
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
from typing import Any
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


def alert_body(key: str, bench_id: str) -> bytes:
    """A generic JSON alert of fingerprint `key`, carrying `bench_id` (kept in the inbox)."""
    return json.dumps(
        {
            "title": f"Synthetic alert {key}",
            "dedup_key": key,
            "severity": "warning",
            "labels": {"service": "bench", "key": key},
            "bench_id": bench_id,
        }
    ).encode()


def send_through_kills(
    url: str, connections: int, stop: Any, out: multiprocessing.Queue[Any]
) -> None:
    """The sender process of `--kill-every`: like `send` until `stop` is set, but a refused or
    broken connection is an alert not acknowledged, and the thread goes on with a new
    connection and a new alert. Reports each acknowledged (202) alert by its `bench_id` and
    fingerprint."""
    lock = threading.Lock()
    keys: list[str] = ["fp-0"]
    acknowledged: list[tuple[str, str]] = []
    statuses: dict[str, int] = {}
    target = urlsplit(url)
    headers = {"Content-Type": "application/json"}

    def count(outcome: str) -> None:
        with lock:
            statuses[outcome] = statuses.get(outcome, 0) + 1

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        connection: http.client.HTTPConnection | None = None
        mine: list[tuple[str, str]] = []
        sent = 0
        while not stop.is_set():
            with lock:
                if rng.random() < 0.10:
                    key = f"fp-{len(keys)}"
                    keys.append(key)
                else:
                    key = rng.choice(keys)
            sent += 1
            bench_id = f"{seed}-{sent}"
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        target.hostname or "127.0.0.1", target.port, timeout=30
                    )
                connection.request(
                    "POST", target.path, body=alert_body(key, bench_id), headers=headers
                )
                answer = connection.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException) as error:
                # Refused while the desk starts, or cut off by the kill: not acknowledged.
                # The pause keeps the senders from taking the CPU the desk needs to start.
                count(type(error).__name__)
                if connection is not None:
                    connection.close()
                    connection = None
                time.sleep(0.2)
                continue
            count(str(answer.status))
            if answer.status == 202:
                mine.append((bench_id, key))
            if answer.will_close:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
        with lock:
            acknowledged.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put({"acknowledged": acknowledged, "statuses": statuses, "keys": len(keys)})


def integration_path(env: dict[str, str]) -> str:
    """Migrate the desk's database and make the generic integration; its hook's path."""
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
    url = next(line for line in made.splitlines() if line.startswith("url: "))
    return "/" + url.split("/", 3)[3]


def start_web(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    """`dutydesk web` in a process group of its own (uvicorn's master and its workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dutydesk", "web", "--port", str(port), "--workers", str(workers)],
        env=env,
        start_new_session=True,
    )


def wait_until_serving(base: str, web: subprocess.Popen[bytes], seconds: float = 120) -> None:
    """Until the desk answers /health (it fails loudly if the desk exits or takes too long)."""
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if web.poll() is not None:
            raise SystemExit(f"dutydesk web exited with {web.returncode} while starting")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"dutydesk web did not answer /health within {seconds:.0f} s")


def scratch_database(url: str, *, create: bool) -> None:
    """Drop the PostgreSQL database `url` names, and create it afresh when `create`."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or ""
    if not name.startswith("dd_bench_"):
        raise SystemExit(f"--database-url must name a scratch database dd_bench_...; got {name!r}")
    with psycopg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if create:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def kill_run(options: argparse.Namespace, env: dict[str, str], url: str, path: str) -> None:
    """The `--kill-every` run: SIGKILL the web process group under load, count what is lost."""
    from sqlalchemy import create_engine, text

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(env, port, options.workers)
    restarts: list[float] = []

    def kill_and_restart() -> None:
        nonlocal web
        killed_at = time.monotonic()
        os.killpg(web.pid, signal.SIGKILL)
        web.wait()
        web = start_web(env, port, options.workers)
        wait_until_serving(base, web)
        restarts.append(time.monotonic() - killed_at)

    try:
        wait_until_serving(base, web)
        out: multiprocessing.Queue[Any] = multiprocessing.Queue()
        stop = multiprocessing.Event()
        sender = multiprocessing.Process(
            target=send_through_kills,
            args=(f"{base}{path}", options.connections, stop, out),
        )
        sender.start()
        # `--seconds` counts the time the desk serves: a start takes seconds on a busy
        # machine, and every kill should land on a desk taking alerts.
        serving_left = options.seconds
        while True:
            stretch = min(options.kill_every, serving_left)
            time.sleep(stretch)
            serving_left -= stretch
            if serving_left <= 0:
                break
            kill_and_restart()
        stop.set()
        result = out.get()
        sender.join()
        kill_and_restart()  # the last: what was acknowledged must survive it too
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)

    acknowledged: dict[str, str] = dict(result["acknowledged"])
    engine = create_engine(url)
    with engine.connect() as connection:
        items = connection.execute(
            text("SELECT body, alarm_ids FROM inbox_items WHERE outcome = 'accepted'")
        ).all()
        alarms = connection.execute(text("SELECT labels, occurrences FROM alarms")).all()
    engine.dispose()
    stored: set[str] = set()
    for body, alarm_ids in items:
        landed = alarm_ids if isinstance(alarm_ids, list) else json.loads(alarm_ids)
        if landed:
            stored.add(json.loads(body)["bench_id"])
    lost = sum(1 for bench_id in acknowledged if bench_id not in stored)
    # The same from the alarms' side: per fingerprint, occurrences short of the acknowledged.
    occurrences: dict[str, int] = {}
    for labels, count in alarms:
        key = (labels if isinstance(labels, dict) else json.loads(labels))["key"]
        occurrences[key] = int(count)
    per_key: dict[str, int] = {}
    for key in acknowledged.values():
        per_key[key] = per_key.get(key, 0) + 1
    short = sum(max(0, n - occurrences.get(key, 0)) for key, n in per_key.items())
    kills = len(restarts)
    print(
        json.dumps(
            {
                "database": url.split(":", 1)[0],
                "seconds": options.seconds,
                "kill_every_s": options.kill_every,
                "answers": result["statuses"],
                "acknowledged": len(acknowledged),
                "inbox_accepted": len(items),
                "stored_not_acknowledged": len(stored - acknowledged.keys()),
                "occurrences": sum(occurrences.values()),
                "occurrences_short_of_acknowledged": short,
                "fingerprints_sent": result["keys"],
                "restart_s": [round(seconds, 1) for seconds in restarts],
                "loadavg": os.getloadavg(),
            }
        )
    )
    print(f"intake_kill_runs={kills} acknowledged={len(acknowledged)} lost={lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="web processes (`--workers`)")
    parser.add_argument(
        "--kill-every",
        type=float,
        metavar="SECONDS",
        help="SIGKILL the web processes every SECONDS under load and count what is lost",
    )
    parser.add_argument(
        "--database-url",
        help="with --kill-every: PostgreSQL scratch database (dd_bench_...) instead of SQLite",
    )
    options = parser.parse_args()
    if options.database_url and options.kill_every is None:
        parser.error("--database-url is for the --kill-every run")
    if options.kill_every is not None and options.kill_every <= 0:
        parser.error("--kill-every must be a positive number of seconds")

    home = Path(tempfile.mkdtemp(prefix="dutydesk-bench-intake-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUTYDESK_")}
    env.update(DUTYDESK_HOME=str(home), DUTYDESK_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT / "src"))
    if options.kill_every is not None:
        try:
            if options.database_url:
                scratch_database(options.database_url, create=True)
                env.update(DUTYDESK_DATABASE_URL=options.database_url)
            url = options.database_url or f"sqlite:///{home / 'dutydesk.sqlite'}"
            kill_run(options, env, url, integration_path(env))
        finally:
            if options.database_url:
                scratch_database(options.database_url, create=False)
            shutil.rmtree(home, ignore_errors=True)
        return
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
