"""Several processes running jobs on one SQLite file at once, as worker threads, beat and the
demo's exports do: none fails with "database is locked".

A job's transaction reads before it writes. With SQLite, when another process writes in
between, the write is refused at once ("database is locked"; waiting cannot help, the
transaction's snapshot is stale), so the job runner starts such a transaction again.

Run as `python -m tests.test_sqlite_load JOB_ID ...`, this module runs those jobs here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import migrations, registry
from dutydesk.db import build_engine, session_factory, transaction
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from tests.test_worker import desk_env

PROCESSES = 3
JOBS_EACH = 40
READ_THEN_WRITE = "test.read_then_write"


@registry.job_kind(READ_THEN_WRITE)
def read_then_write(session: Session, _args: dict[str, Any]) -> dict[str, Any]:
    """Read the jobs table; the job runner then writes the job's row, as most jobs do."""
    return {"jobs": session.scalar(select(func.count()).select_from(Job))}


def test_processes_running_jobs_on_one_sqlite_file_never_fail_them_as_locked(
    home: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ops.sqlite'}"
    migrations.upgrade(url)
    engine = build_engine(url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        ids = [
            jobs.enqueue(session, READ_THEN_WRITE, dispatch=False).id
            for _ in range(PROCESSES * JOBS_EACH)
        ]
    env = desk_env(home, DUTYDESK_DATABASE_URL=url)

    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_sqlite_load", *map(str, ids[index::PROCESSES])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    outputs = [runner.communicate(timeout=240)[0] for runner in runners]

    assert [runner.returncode for runner in runners] == [0] * PROCESSES, "\n".join(outputs)
    with Session(engine) as session:
        rows = session.execute(select(Job.state, Job.attempts, Job.error)).all()
    engine.dispose()
    assert [row for row in rows if row.error] == []
    assert {(row.state, row.attempts) for row in rows} == {("succeeded", 1)}


def _run_jobs(job_ids: list[int]) -> None:
    factory = session_factory()
    worker = f"load-{os.getpid()}"
    for job_id in job_ids:
        state = jobs.execute(job_id, worker, factory)
        print(f"job {job_id}: {state}")


if __name__ == "__main__":
    _run_jobs([int(value) for value in sys.argv[1:]])
