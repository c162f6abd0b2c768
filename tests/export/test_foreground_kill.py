"""A run in the foreground (`dutydesk export run` without --queue) heartbeats like a job: killed
outright, it is marked failed by the sweep instead of staying "running"; stopped by an error
here, it is marked failed at once; and its end of stream is done once however often it is asked.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import build_engine, session_factory
from dutydesk.export import service
from dutydesk.export.models import ExportRun, StudyPart
from dutydesk.jobs.models import Job
from dutydesk.settings import get_settings
from tests.conftest import clear_caches, fresh_database_url
from tests.export.conftest import generated_store
from tests.export.test_runs import END, START
from tests.test_worker import Desk, drop_postgres_database, wait_until


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_a_foreground_run_killed_mid_study_is_marked_failed_with_the_reason(
    make_desk: Callable[..., Desk], tmp_path: Path
) -> None:
    store = generated_store(
        tmp_path / "records.sqlite",
        seed=5,
        studies=2,
        participants=10,
        days=2,
        records_per_day=30,
        attachment_share=0.05,
    )
    pause = tmp_path / "pause"
    desk = make_desk()  # a stale time of 3 s and a tick of 1 s
    desk.env.update(
        DUTYDESK_RECORDS_URL=store,
        DUTYDESK_WAREHOUSE=str(tmp_path / "warehouse"),
        DUTYDESK_EXTRA_MODULES="tests.jobkinds,tests.export.pause",
        DUTYDESK_TEST_PAUSE_DIR=str(pause),
    )
    desk.migrate()
    desk.start_worker()  # runs beat's tick, which sweeps
    desk.start_beat()

    foreground = desk.processes.start(
        "export-run", ["export", "run", "--start", START, "--end", END], desk.env
    )
    wait_until(lambda: (pause / "paused").exists(), 60, "the export to stop mid-table")
    with Session(desk.engine) as session:
        assert session.scalars(select(ExportRun)).one().state == "running"
    os.kill(foreground.pid, signal.SIGKILL)
    foreground.popen.wait(timeout=10)

    def ended() -> ExportRun | None:
        with Session(desk.engine) as session:
            run = session.scalars(select(ExportRun)).one()
            return run if run.state != "running" else None

    run = wait_until(ended, 60, "the sweep to end the killed run", interval=0.5)
    assert run.state == "failed"
    assert run.error is not None
    assert f":{foreground.pid}:" in run.error
    assert "stopped heartbeating" in run.error
    assert "Run the export again" in run.error
    assert run.final_line is None
    with Session(desk.engine) as session:
        parts = session.scalars(select(StudyPart).where(StudyPart.run_id == run.id)).all()
        assert parts and all(part.state in ("succeeded", "failed") for part in parts)
        held = session.scalars(select(Job).where(Job.kind == "export.foreground")).one()
        assert held.state == "failed"


@pytest.fixture
def own_factory(
    records: Path, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated ops database of `backend`, used by several threads
    (the conftest's `factory` shares one connection)."""
    from dutydesk import migrations

    url = fresh_database_url(backend, tmp_path, f"foreground_{os.getpid()}")
    monkeypatch.setenv("DUTYDESK_DATABASE_URL", url)
    clear_caches()
    migrations.upgrade(url)
    engine = build_engine(url)
    yield session_factory(engine)
    engine.dispose()
    if backend == "postgresql":
        drop_postgres_database(url)


def start_foreground_run(factory: sessionmaker[Session], **body: object) -> int:
    with factory() as session:
        run = service.start_run(
            session,
            {"useLastExportTime": False, "startDateTime": START, "endDateTime": END, **body},
            created_by="test",
            queue=False,
        )
        session.commit()
        return run.id


def test_a_foreground_run_that_stops_with_an_error_is_marked_failed_at_once(
    own_factory: sessionmaker[Session],
) -> None:
    run_id = start_foreground_run(own_factory)

    def progress(study: str, done: int, total: int) -> None:
        raise KeyboardInterrupt  # as Ctrl-C does after the first study

    with pytest.raises(KeyboardInterrupt):
        service.run_in_foreground(
            own_factory, run_id, get_settings().effective_records_url, progress
        )

    with own_factory() as session:
        run = session.get(ExportRun, run_id)
        assert run is not None
        assert run.state == "failed"
        assert run.error is not None and "KeyboardInterrupt" in run.error
        assert "Failed: the run stopped in the foreground process" in run.log
        held = session.scalars(select(Job).where(Job.kind == "export.foreground")).one()
        assert held.state == "failed"


def test_a_foreground_run_ends_its_heartbeat_job_as_succeeded(
    own_factory: sessionmaker[Session],
) -> None:
    run_id = start_foreground_run(own_factory)

    done = service.run_in_foreground(own_factory, run_id, get_settings().effective_records_url)

    assert done.state == "succeeded"
    with own_factory() as session:
        held = session.scalars(select(Job).where(Job.kind == "export.foreground")).one()
        assert (held.state, held.args) == ("succeeded", {"run_id": run_id})


def test_a_run_asked_to_finish_twice_at_once_ends_once(
    own_factory: sessionmaker[Session],
) -> None:
    run_id = start_foreground_run(own_factory)
    records_url = get_settings().effective_records_url
    done = service.run_in_foreground(own_factory, run_id, records_url)
    first_log = done.log
    with own_factory() as session:  # back to where the last study ended, before the finish
        run = session.get(ExportRun, run_id)
        assert run is not None
        run.state = "running"
        session.commit()

    answers: list[bool] = []
    start = threading.Barrier(2)

    def finish() -> None:
        start.wait()
        with own_factory() as session:
            answers.append(service.finish_run_if_done(session, run_id, records_url))
            session.commit()

    threads = [threading.Thread(target=finish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [False, True]
    with own_factory() as session:
        run = session.get(ExportRun, run_id)
        assert run is not None
        assert run.state == "succeeded"
        # One more end of stream, not two: the final line is logged once more, not twice.
        assert run.log.count("Finished processing request in ") == (
            first_log.count("Finished processing request in ") + 1
        )
