"""Starting the desk's processes: one each, or all together under `dutydesk up`."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from dutydesk.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 15.0
# How often a child of `dutydesk up` checks that `up` is still there.
SUPERVISOR_CHECK_SECONDS = 1.0
# How long a child whose `up` is gone waits for its process group to stop before killing it.
ORPHAN_GRACE_SECONDS = 10.0


def run_web(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    """Serve the console and API with uvicorn (blocks); `workers` processes share the port
    (default `DUTYDESK_WEB_WORKERS`)."""
    import uvicorn

    from dutydesk.web.limits import MAX_HEADER_BYTES

    workers = workers or settings.web_workers
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        # The app believes forwarded headers itself, from DUTYDESK_FORWARDED_ALLOW_IPS only.
        "proxy_headers": False,
        "log_config": None,
        "server_header": False,
        # h11, when uvicorn runs it rather than httptools, buffers at most this much of a
        # request's head (its URL too); past MAX_HEADER_BYTES of headers the app answers 431.
        "h11_max_incomplete_event_size": 4 * MAX_HEADER_BYTES,
    }
    if workers > 1:
        from dutydesk.web.metrics import multiprocess_dir, use_multiprocess_dir

        # Each process builds its own app from the same environment, and counts its metrics
        # into files a scrape of any of them adds up (emptied now, before they start), unless
        # `dutydesk up` (or the operator) named the directory every desk process shares.
        if multiprocess_dir() is None:
            use_multiprocess_dir(settings.ensure_home() / "metrics" / f"web-{port}")
        uvicorn.run("dutydesk.processes:served_app", factory=True, workers=workers, **common)
    else:
        uvicorn.run(served_app(settings), **common)


def served_app(settings: Settings | None = None) -> FastAPI:
    """The web app of a `dutydesk web` process, its broker connection opened aside as it starts
    (so the first alert's notice job does not wait for it)."""
    from dutydesk.celery_app import warm_up
    from dutydesk.web.app import create_app

    app = create_app(settings)
    threading.Thread(target=warm_up, name="broker-warm-up", daemon=True).start()
    return app


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
    """Runs web, worker, beat and smtp as child processes and stops them all together.

    Each child is told our PID (`DUTYDESK_SUPERVISOR_PID`) and stops itself, with the processes
    it started, once we are gone, even when we were killed with SIGKILL (`watch_supervisor`).
    """

    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        ready_address: tuple[str, int] | None = None,
        when_ready: Callable[[], None] | None = None,
    ) -> None:
        self.commands = commands
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.ready_address = ready_address
        self.when_ready = when_ready

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping web, worker, beat and smtp", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        """Start every child; call `when_ready` once `ready_address` answers; return when a
        signal arrives or a child exits."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        env = {**os.environ, "DUTYDESK_SUPERVISOR_PID": str(os.getpid())}
        for name, command in self.commands.items():
            # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
            self.children[name] = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
            log.info("started %s (pid %s)", name, self.children[name].pid)
        ready = self.ready_address is None
        exit_code = 0
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    waited_for = (
                        "" if ready else f" before {_address_text(self.ready_address)} answered"
                    )
                    log.error(
                        "%s exited with status %s%s; stopping the others",
                        name,
                        child.returncode,
                        waited_for,
                    )
                    exit_code = 1
                    self.stopping = True
                    break
            if not self.stopping and not ready and self.ready_address is not None:
                ready = answers(*self.ready_address)
                if ready and self.when_ready is not None:
                    self.when_ready()
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


def child_commands(
    host: str, port: int, *, demo_mail: bool = False, backupd: bool = False
) -> dict[str, list[str]]:
    """The command lines `dutydesk up` starts (with `demo_mail`, the demo's mail catcher first;
    with `backupd`, the backup daemon that runs Litestream)."""
    base = [sys.executable, "-m", "dutydesk"]
    catcher = {"demo-mail": [sys.executable, "-m", "dutydesk.notify.democatcher"]}
    return {
        **(catcher if demo_mail else {}),
        "web": [*base, "web", "--host", host, "--port", str(port)],
        "worker": [*base, "worker"],
        "beat": [*base, "beat"],
        "smtp": [*base, "smtp"],
        **({"backupd": [*base, "backupd"]} if backupd else {}),
    }


def share_metrics(settings: Settings, port: int) -> Path:
    """Name one empty metrics directory for every process `dutydesk up` starts after this:
    web workers, worker and smtp count into it, and a scrape of the web adds them all up (the
    mail the SMTP listener and the IMAP poll take, too)."""
    from dutydesk.web.metrics import use_multiprocess_dir

    directory = settings.ensure_home() / "metrics" / f"up-{port}"
    use_multiprocess_dir(directory)
    return directory


def wants_backupd(settings: Settings) -> bool:
    """Whether `dutydesk up` runs the backup daemon: Litestream is turned on and the ops
    database is a SQLite file."""
    return settings.backup_litestream and settings.effective_database_url.startswith("sqlite")


def watch_supervisor(supervisor_pid: int) -> threading.Thread:
    """In a child of `dutydesk up`: stop this process and the ones it started once `up` is gone.

    `up` starts each child as the leader of a process group of its own; the uvicorn workers
    of the web process are in that group too. When our parent is no longer `supervisor_pid`
    (it died, even by SIGKILL, and we were handed to init), the whole group gets SIGTERM, and
    SIGKILL if it is still there `ORPHAN_GRACE_SECONDS` later.
    """
    watcher = threading.Thread(
        target=_stop_when_orphaned, args=(supervisor_pid,), daemon=True, name="supervisor-watch"
    )
    watcher.start()
    return watcher


def _stop_when_orphaned(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(SUPERVISOR_CHECK_SECONDS)
    # Only a group we lead is ours to stop; otherwise (started by hand) just this process.
    group = os.getpgrp()
    ours = group == os.getpid()
    log.warning(
        "dutydesk up (pid %s) is gone; stopping %s",
        supervisor_pid,
        f"process group {group}" if ours else f"pid {os.getpid()}",
    )
    _signal_group_or_self(ours, signal.SIGTERM)
    time.sleep(ORPHAN_GRACE_SECONDS)
    log.warning("still running %.0f s after SIGTERM; killing", ORPHAN_GRACE_SECONDS)
    _signal_group_or_self(ours, signal.SIGKILL)


def _signal_group_or_self(group: bool, signum: signal.Signals) -> None:
    if group:
        os.killpg(os.getpgrp(), signum)
    else:
        os.kill(os.getpid(), signum)


def process_runs(pid: int) -> bool:
    """The process runs: it exists and is not a zombie (a killed web worker stays one until
    uvicorn's supervisor reaps it, after it has already started the replacement)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid at all)
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: existing is all that can be told
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (a wildcard host: this machine)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    try:
        with socket.create_connection((target, port), timeout=1):
            return True
    except OSError:
        return False


def _address_text(address: tuple[str, int] | None) -> str:
    return "?" if address is None else f"{address[0]}:{address[1]}"


def port_in_use(host: str, port: int) -> str | None:
    """None when we could listen on host:port; otherwise why not, naming the PID that holds
    the port when this machine lets us see it (a listener left over from an earlier run)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers do: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f"cannot listen on {host}:{port}: {error.strerror}"
        else:
            return None
    holders = listening_pids(port)
    if not holders:
        return f"port {port} on {host} is in use by another process (its PID is not visible)"
    named = ", ".join(f"pid {pid} ({_command_line(pid)})" for pid in holders)
    return f"port {port} on {host} is in use by {named}"


def listening_pids(port: int) -> list[int]:
    """The PIDs of the processes with a socket listening on TCP `port` (from /proc; Linux)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:  # gone meanwhile, or another user's process
            continue
        if links & wanted:
            pids.append(int(entry.name))
    return sorted(pids)


def _command_line(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in argv if part)[:200]
