"""Continuous replication of the ops database with Litestream, as `dutydesk backupd` and
`dutydesk up` run it: writes acknowledged before a kill -9 of the writer and of the desk are
restored, and `up` stops the daemon and its litestream with everything else."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dutydesk import migrations
from dutydesk.cli import app
from tests.conftest import clear_caches
from tests.test_worker import (
    Processes,
    children_of,
    descendants_of,
    desk_env,
    free_port,
    kill_group,
    still_running,
    wait_until,
)

WRITER = Path(__file__).with_name("writer.py")
MAX_LOSS_SECONDS = 300.0
# Acknowledged writes the writer makes before the kill -9, at least (one every 0.02 s).
WRITES_BEFORE_KILL = 100


def replica_files(home: Path) -> list[Path]:
    """The LTX files Litestream has written for the ops database."""
    return sorted((home / "backups" / "ops" / "litestream").rglob("*.ltx"))


def acknowledged(output: str) -> list[tuple[int, float]]:
    """The writer's acknowledged writes: (id, time), the last line only if complete."""
    lines = output.splitlines()
    if lines and not output.endswith("\n"):
        lines = lines[:-1]
    return [(int(row), float(at)) for row, at in (line.split() for line in lines if line.strip())]


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_writes_acknowledged_before_kill_9_of_writer_and_desk_are_restored(
    home: Path, tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = home / "dutydesk.sqlite"
    migrations.upgrade(f"sqlite:///{database}")
    env = desk_env(home, DUTYDESK_BACKUP_LITESTREAM="true")
    desk = processes.start("backupd", ["backupd"], env)
    snapshot = wait_until(lambda: replica_files(home), 60, "litestream to write its first snapshot")

    log = tmp_path / "writer.out"
    with log.open("wb") as out:
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(database), "0.02"],
            stdout=out,
            start_new_session=True,
        )
    try:
        # Killed in the middle of writing, once litestream has shipped some of the writes
        # (a replica file beyond the first snapshot) and more are acknowledged since.
        wait_until(
            lambda: len(acknowledged(log.read_text())) >= WRITES_BEFORE_KILL // 2,
            60,
            "the writer's first writes",
        )
        wait_until(
            lambda: len(replica_files(home)) > len(snapshot), 60, "litestream to ship writes"
        )
        shipped = len(acknowledged(log.read_text()))
        wait_until(
            lambda: len(acknowledged(log.read_text())) >= max(shipped + 20, WRITES_BEFORE_KILL),
            60,
            "writes since litestream shipped some",
        )
        os.kill(writer.pid, signal.SIGKILL)
        kill_group(desk.pid)
        killed_at = time.time()
    finally:
        writer.kill()
        writer.wait()
    desk.popen.wait(timeout=10)
    acked = acknowledged(log.read_text())
    assert len(acked) > 50, "the writer wrote too little to measure anything"

    restored = tmp_path / "restored.sqlite"
    # `dutydesk backup restore` in this process, on the same home and settings as the desk.
    monkeypatch.setenv("DUTYDESK_BACKUP_LITESTREAM", "true")
    clear_caches()
    answer = CliRunner().invoke(app, ["backup", "restore", "ops", "--to", str(restored)])
    assert answer.exit_code == 0, answer.output
    assert "Litestream replica of ops" in answer.stdout

    connection = sqlite3.connect(restored)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = {
            int(row)
            for (row,) in connection.execute(
                "SELECT id FROM metric_points WHERE series = 'backup.test.writes'"
            )
        }
    finally:
        connection.close()
    acked_ids = [row for row, _at in acked]
    kept = [row for row in acked_ids if row in ids]
    # What was restored is a prefix of the acknowledged writes: nothing in between lost.
    assert kept == acked_ids[: len(kept)]
    lost = acked[len(kept) :]
    loss_seconds = (acked[-1][1] - acked[len(kept) - 1][1]) if lost and kept else 0.0
    if lost and not kept:
        loss_seconds = acked[-1][1] - acked[0][1]
    print(
        f"\nacknowledged {len(acked)} writes; restored {len(kept)}; lost the last {len(lost)}, "
        f"covering {loss_seconds:.2f} s before the kill -9 at {killed_at:.0f}"
    )
    assert loss_seconds <= MAX_LOSS_SECONDS


@pytest.mark.worker
@pytest.mark.timeout(240)
def test_up_runs_backupd_with_litestream_and_stops_them_with_everything_else(
    home: Path, processes: Processes
) -> None:
    env = desk_env(home, DUTYDESK_BACKUP_LITESTREAM="true")
    up = processes.start("up", ["up", "--port", str(free_port())], env)

    def daemon_and_litestream() -> list[object] | None:
        if up.popen.poll() is not None:
            pytest.fail(f"dutydesk up exited with {up.popen.returncode}: {up.output()}")
        daemons = [c for c in children_of(up.pid) if c.argv[3:4] == ["backupd"]]
        below = [d for c in daemons for d in descendants_of(c.pid) if "replicate" in d.argv]
        return [*daemons, *below] if daemons and below else None

    running = wait_until(daemon_and_litestream, 150, "up to start backupd and litestream")
    wait_until(lambda: replica_files(home), 60, "litestream to replicate the ops database")
    everything = descendants_of(up.pid)
    os.kill(up.pid, signal.SIGTERM)
    assert up.popen.wait(timeout=30) == 0
    wait_until(
        lambda: not any(still_running(p) for p in everything), 20, "every child of up to stop"
    )
    assert running
