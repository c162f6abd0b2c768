"""Starting the desk's processes: one each, or all together under `dutydesk up`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from dutydesk.settings import Settings

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 15.0


def run_web(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    """Serve the console and API with uvicorn (blocks); `workers` processes share the port
    (default `DUTYDESK_WEB_WORKERS`)."""
    import uvicorn

    from dutydesk.web.app import create_app

    workers = workers or settings.web_workers
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        # The app believes forwarded headers itself, from DUTYDESK_FORWARDED_ALLOW_IPS only.
        "proxy_headers": False,
        "log_config": None,
        "server_header": False,
    }
    if workers > 1:
        # Each process builds its own app from the same environment.
        uvicorn.run("dutydesk.web.app:create_app", factory=True, workers=workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)


def run_worker(settings: Settings) -> None:
    """Run a Celery worker with a thread pool (blocks)."""
    from dutydesk.celery_app import get_celery
    from dutydesk.registry import load_domains

    load_domains()
    get_celery().worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.worker_concurrency}",
            f"--hostname=dutydesk-{os.getpid()}@{socket.gethostname()}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


def run_beat(settings: Settings) -> None:
    """Run Celery beat with its one frequent tick (blocks)."""
    from dutydesk.celery_app import get_celery

    home = settings.ensure_home()
    get_celery().start(
        [
            "beat",
            f"--schedule={home / 'beat-schedule'}",
            f"--loglevel={settings.log_level}",
            "--pidfile=",
        ]
    )


class Supervisor:
    """Runs web, worker, beat and smtp as child processes and stops them all together."""

    def __init__(self, commands: dict[str, list[str]]) -> None:
        self.commands = commands
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping web, worker, beat and smtp", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        """Start every child; return when a signal arrives or a child exits."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for name, command in self.commands.items():
            # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
            self.children[name] = subprocess.Popen(command, start_new_session=True)  # noqa: S603
            log.info("started %s (pid %s)", name, self.children[name].pid)
        exit_code = 0
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    log.error(
                        "%s exited with status %s; stopping the others", name, child.returncode
                    )
                    exit_code = 1
                    self.stopping = True
                    break
            time.sleep(0.2)
        self.stop()
        return exit_code

    def stop(self) -> None:
        """SIGTERM every child, wait for them, SIGKILL whoever lingers."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, child in self.children.items():
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                child.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                child.kill()
                child.wait()
        log.info("all processes stopped")


def child_commands(host: str, port: int, *, demo_mail: bool = False) -> dict[str, list[str]]:
    """The command lines `dutydesk up` starts (with `demo_mail`, the demo's mail catcher first)."""
    base = [sys.executable, "-m", "dutydesk"]
    catcher = {"demo-mail": [sys.executable, "-m", "dutydesk.notify.democatcher"]}
    return {
        **(catcher if demo_mail else {}),
        "web": [*base, "web", "--host", host, "--port", str(port)],
        "worker": [*base, "worker"],
        "beat": [*base, "beat"],
        "smtp": [*base, "smtp"],
    }
