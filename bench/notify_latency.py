"""Notice latency benchmark: from an alert posted to intake to its notice at the receiver.

Starts the desk as real processes (`dutydesk web`, `dutydesk worker` and `dutydesk beat` on a
fresh home: SQLite database, SQLite broker, the default 10 s tick, migrated by `dutydesk db
upgrade`) with five channels pointing at a local HTTP receiver and a local SMTP server
(aiosmtpd): Slack format, Discord format, Grafana OnCall format (a `webhook` channel), a
generic apprise `json://` webhook, and e-mail. One escalation policy for every severity
notifies the five channels in steps without a wait, the default group wait (0 s) applies.

Cold starts: the three processes are started `--cold-starts` times (3) on the same home; each
time, once the web answers and the worker says it is ready, one alert is posted a random 0 to
2 s later: the first after start-up, when nothing is warm yet (the web's broker connection, the
worker's first job, the first beat tick running the day's maintenance at the same time). The
processes are stopped in between.

Then, on the last start, one at a time and a random 0 to 2 s apart (so the alerts do not line
up with the tick), it posts `--alerts` generic JSON alerts, each with a title of its own, to
`/hooks/generic/{token}` and waits until all five channels have its notice. The latency of a
channel is the time from sending the alert to the notice arriving there.

The last line is

    notify_latency_max_s=<float> first_alert_max_s=<float> target_s=2 baseline_s=<float>

`first_alert_max_s` is the largest latency of the cold starts' first alerts; `baseline_s` the
largest latency this benchmark measured before a ticket's opening queued its escalation (each
notice then waited for a beat tick, and each step of the policy for one more).

Run from the repository root: `.venv/bin/python bench/notify_latency.py [--alerts N]`.
`--source DIR` runs the desk's processes from another checkout's `src` (to measure a
baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
# Measured by this script on the commit before the change (`--source` of that checkout).
BASELINE_S = 49.9
TARGET_S = 2.0
CHANNELS = ("slack", "discord", "oncall", "apprise", "email")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Arrivals:
    """When each (channel, text) first arrived; texts are the raw bodies or mail subjects."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, float, str]] = []

    def add(self, channel: str, text: str) -> None:
        with self.lock:
            self.seen.append((channel, time.time(), text))

    def first(self, channel: str, marker: str) -> float | None:
        with self.lock:
            return next((at for c, at, text in self.seen if c == channel and marker in text), None)


def start_receiver(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, int]:
    port = free_port()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode(errors="replace")
            arrivals.add(self.path.strip("/"), body)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


class Inbox:
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        self.arrivals.add("email", str(message["Subject"]))
        return "250 OK"


def dutydesk(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dutydesk", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def set_up(hook_port: int) -> str:
    """Channels, the policy and a generic integration in the desk's database; the hook path."""
    from dutydesk.db import session_factory, transaction
    from dutydesk.intake import service as intake
    from dutydesk.notify import escalation
    from dutydesk.notify import service as notify
    from dutydesk.registry import load_domains

    load_domains()
    hook = f"http://127.0.0.1:{hook_port}"
    urls = {
        "slack": (f"{hook}/slack", "slack"),
        "discord": (f"{hook}/discord", "discord"),
        "oncall": (f"{hook}/oncall", "webhook"),
        "apprise": (f"json://127.0.0.1:{hook_port}/apprise", "apprise"),
        "email": ("ops@bench.example", None),
    }
    with transaction(session_factory(), actor="bench") as session:
        for name, (url, kind) in urls.items():
            notify.create_channel(session, name=name, url=url, kind=kind)
        escalation.create_policy(
            session,
            name="everything",
            steps=[{"target": "channel", "name": name, "wait_minutes": 0} for name in CHANNELS],
            severities=["critical", "warning", "info"],
        )
        made = intake.create_integration(
            session, name="bench", kind="generic", actor="bench", rate_limit=100_000
        )
        path = made.path
    assert path is not None
    return path


def start(env: dict[str, str], logs: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    with (logs / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dutydesk", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_desk(env: dict[str, str], logs: Path, port: int) -> list[subprocess.Popen[bytes]]:
    """Start web, worker and beat; return once the web answers and the worker is ready."""
    worker_log = logs / "worker.log"
    ready_before = worker_log.read_text().count("ready.") if worker_log.exists() else 0
    processes = [
        start(env, logs, "web", "web", "--port", str(port)),
        start(env, logs, "worker", "worker"),
        start(env, logs, "beat", "beat"),
    ]

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for("the web process", healthy, 300)
        wait_for("the worker", lambda: worker_log.read_text().count("ready.") > ready_before, 300)
    except BaseException:
        stop_desk(processes)
        raise
    return processes


def stop_desk(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group, SIGKILL what is left after 30 s."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def alert_latencies(arrivals: Arrivals, url: str, marker: str, timeout: float) -> dict[str, float]:
    """Post one alert titled `marker`; seconds until its notice arrived, by channel."""
    time.sleep(random.uniform(0, 2))
    sent_at = time.time()
    answer = httpx.post(
        url, json={"title": marker, "severity": "critical", "dedup_key": marker}, timeout=30
    )
    answer.raise_for_status()
    wait_for(
        f"the notices of {marker!r}",
        lambda: all(arrivals.first(c, marker) is not None for c in CHANNELS),
        timeout,
    )
    found = {channel: arrivals.first(channel, marker) for channel in CHANNELS}
    return {channel: round(at - sent_at, 3) for channel, at in found.items() if at is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10)
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per alert")
    parser.add_argument("--source", type=Path, default=ROOT / "src")
    parser.add_argument("--keep", action="store_true", help="keep the desk's home and logs")
    options = parser.parse_args()

    arrivals = Arrivals()
    receiver, hook_port = start_receiver(arrivals)
    smtp_port = free_port()
    smtp = Controller(Inbox(arrivals), hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    home = Path(tempfile.mkdtemp(prefix="dutydesk-bench-notify-"))
    logs = home / "logs"
    logs.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUTYDESK_")}
    env.update(
        DUTYDESK_HOME=str(home),
        DUTYDESK_LOG_LEVEL="INFO",
        DUTYDESK_MAIL_HOST="127.0.0.1",
        DUTYDESK_MAIL_PORT=str(smtp_port),
        DUTYDESK_MAIL_STARTTLS="false",
        DUTYDESK_BASE_URL="http://desk.bench.example",
        DUTYDESK_SMTP_PORT=str(free_port()),
        PYTHONPATH=str(options.source.resolve()),
    )
    dutydesk(env, "db", "upgrade")
    os.environ.update({k: v for k, v in env.items() if k.startswith("DUTYDESK_")})
    sys.path.insert(0, str(options.source.resolve()))  # the set-up runs the same code
    path = set_up(hook_port)

    port = free_port()
    url = f"http://127.0.0.1:{port}{path}"
    run = f"{os.getpid()}-{int(time.time())}"
    latencies: dict[str, list[float]] = {channel: [] for channel in CHANNELS}
    firsts: list[dict[str, float]] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for start_number in range(max(options.cold_starts, 1)):
            if processes:
                stop_desk(processes)
            processes = start_desk(env, logs, port)
            marker = f"bench alert {run}-start-{start_number}"
            firsts.append(alert_latencies(arrivals, url, marker, options.timeout))
            print(f"first alert after start {start_number + 1}: {json.dumps(firsts[-1])}")
        for number in range(options.alerts):
            marker = f"bench alert {run}-{number}"
            for channel, seconds in alert_latencies(arrivals, url, marker, options.timeout).items():
                latencies[channel].append(seconds)
    finally:
        stop_desk(processes)
        receiver.shutdown()
        smtp.stop()

    report = {
        channel: {
            "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3),
        }
        for channel, values in latencies.items()
    }
    print(json.dumps({"alerts": options.alerts, "loadavg": os.getloadavg(), **report}))
    for channel, figures in report.items():
        first_max = max(first[channel] for first in firsts)
        print(
            f"{channel:8} median {figures['median_s']:6.2f} s  max {figures['max_s']:6.2f} s  "
            f"first after start-up max {first_max:6.2f} s"
        )
    worst = max(max(values) for values in latencies.values())
    first_worst = max(max(first.values()) for first in firsts)
    if options.keep:
        print(f"home kept at {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"notify_latency_max_s={worst:.2f} first_alert_max_s={first_worst:.2f} "
        f"target_s={TARGET_S:g} baseline_s={BASELINE_S}"
    )


if __name__ == "__main__":
    main()
