"""A real worker killed in the middle of a study's export: another worker redoes the study and
the tables end up exactly as a clean run makes them, with no duplicate rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.export.models import ExportRun
from tests.export.conftest import generated_store
from tests.export.test_runs import END, START
from tests.test_worker import Desk, kill_group, run_dutydesk, wait_until


def tables(warehouse: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, sorted, read the way researchers read them."""
    found = {}
    for folder in sorted(p for p in warehouse.glob("*/*") if p.is_dir()):
        if not list(folder.rglob("*.parquet")):
            continue
        found[folder.name] = duckdb.sql(
            f"SELECT * FROM read_parquet('{folder}/**/*.parquet', hive_partitioning=true, "
            "union_by_name=true) ORDER BY ALL"
        ).fetchall()
    return found


@pytest.mark.worker
@pytest.mark.timeout(240)
def test_a_worker_killed_mid_study_leaves_complete_tables_without_duplicates(
    make_desk: Callable[..., Desk], tmp_path: Path
) -> None:
    store = generated_store(
        tmp_path / "records.sqlite",
        seed=11,
        studies=3,
        participants=20,
        days=2,
        records_per_day=60,
        attachment_share=0.05,
    )
    pause = tmp_path / "pause"
    desk = make_desk()
    desk.env.update(
        DUTYDESK_RECORDS_URL=store,
        DUTYDESK_WAREHOUSE=str(tmp_path / "warehouse"),
        DUTYDESK_EXTRA_MODULES="tests.jobkinds,tests.export.pause",
        DUTYDESK_TEST_PAUSE_DIR=str(pause),
    )
    desk.migrate()
    worker = desk.start_worker()
    desk.start_beat()  # its tick sweeps jobs whose worker stopped heartbeating

    queued = run_dutydesk(desk.env, "export", "run", "--start", START, "--end", END, "--queue")
    assert queued.returncode == 0, queued.stderr
    wait_until(lambda: (pause / "paused").exists(), 60, "a study export to stop mid-table")
    kill_group(worker.pid)
    leftover = list((tmp_path / "warehouse").rglob("*.tmp"))
    assert leftover, "the killed worker should have left its half-written file"
    desk.start_worker("second-worker")

    def finished() -> ExportRun | None:
        with Session(desk.engine) as session:
            run = session.scalars(select(ExportRun)).one()
            return run if run.state not in ("queued", "running", "finishing") else None

    run = wait_until(finished, 120, "the export run to end", interval=0.5)
    assert run.state == "succeeded", run.error

    clean_env = {
        **desk.env,
        "DUTYDESK_HOME": str(tmp_path / "clean-home"),
        "DUTYDESK_WAREHOUSE": str(tmp_path / "clean-warehouse"),
        "DUTYDESK_EXTRA_MODULES": "",
        "DUTYDESK_TEST_PAUSE_DIR": "",
    }
    clean_env.pop("DUTYDESK_DATABASE_URL", None)
    assert run_dutydesk(clean_env, "db", "upgrade").returncode == 0
    clean = run_dutydesk(clean_env, "export", "run", "--start", START, "--end", END, timeout=120)
    assert clean.returncode == 0, clean.stderr

    after_kill = tables(tmp_path / "warehouse")
    assert after_kill == tables(tmp_path / "clean-warehouse")
    for key, rows in after_kill.items():
        if not key.endswith("-status"):
            ids = [row[0] for row in rows]
            assert len(ids) == len(set(ids)), f"{key} has duplicate records"
