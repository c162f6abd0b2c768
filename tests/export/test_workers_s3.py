"""The many-machine export: three `dutydesk worker` processes on RabbitMQ, PostgreSQL as ops
database and record store, the warehouse on S3 (moto's server on loopback). One run fans out
over the workers, its studies split in slices by table; one worker is killed with SIGKILL in
the middle of a study; the others end the run; every file of the warehouse is then the same,
cell by cell, as a one-process run's (which exports each study whole).
Runs when DUTYDESK_TEST_POSTGRES_URL and DUTYDESK_TEST_AMQP_URL are set (as `.ci/run` sets)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import duckdb
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.export.models import ExportRun, StudyPart
from dutydesk.jobs.models import Job
from tests.conftest import AMQP_URL, POSTGRES_URL, fresh_database_url
from tests.export.conftest import filled_store
from tests.export.test_runs import END, START
from tests.test_worker import Desk, free_port, run_dutydesk, wait_until

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and AMQP_URL),
    reason="DUTYDESK_TEST_POSTGRES_URL and DUTYDESK_TEST_AMQP_URL are not both set",
)
BUCKET = "dutydesk-workers"


@pytest.fixture
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server with one empty bucket, and the AWS environment naming it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    client(env).create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


def client(env: dict[str, str]) -> object:
    """A boto3 S3 client for the moto server."""
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def warehouse_files(env: dict[str, str], prefix: str, into: Path) -> dict[str, Path]:
    """Every finished file under `prefix` (temporary dot-named ones left out), downloaded."""
    s3 = client(env)
    files: dict[str, Path] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")  # type: ignore[attr-defined]
    for page in pages:
        for item in page.get("Contents", []):
            key = item["Key"]
            relative = key.removeprefix(prefix + "/")
            if relative.rpartition("/")[2].startswith("."):
                continue  # what a killed writer left: readers' *.parquet globs skip it
            local = into / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, key, str(local))  # type: ignore[attr-defined]
            files[relative] = local
    return files


def content(path: Path) -> object:
    """A Parquet file's rows, sorted; any other file's bytes."""
    if path.suffix != ".parquet":
        return path.read_bytes()
    return duckdb.sql(
        f"SELECT * FROM read_parquet('{path}', hive_partitioning = false) ORDER BY ALL"
    ).fetchall()


@pytest.mark.worker
@pytest.mark.timeout(300)
def test_three_workers_on_rabbitmq_and_s3_survive_a_kill_and_match_one_process(
    make_desk: Callable[..., Desk], tmp_path: Path, s3_env: dict[str, str]
) -> None:
    store = filled_store(
        fresh_database_url("postgresql", tmp_path, "records_workers"),
        seed=23,
        studies=6,
        participants=20,
        days=2,
        records_per_day=150,
        attachment_share=0.05,
    )
    pause = tmp_path / "pause"
    desk = make_desk(broker="amqp", database="postgresql")
    desk.env.update(
        s3_env,
        DUTYDESK_RECORDS_URL=store,
        DUTYDESK_WAREHOUSE=f"s3://{BUCKET}/workers",
        DUTYDESK_EXTRA_MODULES="tests.jobkinds,tests.export.pause",
        DUTYDESK_TEST_PAUSE_DIR=str(pause),
        DUTYDESK_WORKER_CONCURRENCY="1",
        # Every study is split by table into slices (at most one per 100 records): the
        # slices fan out over the workers; the one-process run below exports studies whole.
        DUTYDESK_EXPORT_SLICE_RECORDS="100",
    )
    desk.migrate()
    workers = [desk.start_worker(f"worker-{n}") for n in range(3)]
    desk.start_beat()  # its tick sweeps jobs whose worker stopped heartbeating

    queued = run_dutydesk(desk.env, "export", "run", "--start", START, "--end", END, "--queue")
    assert queued.returncode == 0, queued.stderr
    wait_until(lambda: (pause / "paused").exists(), 90, "a study export to stop mid-table")
    paused_pid = int((pause / "paused").read_text().split()[0])
    # The pool process that hangs belongs to one worker's process group: kill that worker.
    group = os.getpgid(paused_pid)
    [killed] = [worker for worker in workers if worker.pid == group]
    os.killpg(group, signal.SIGKILL)

    def finished() -> ExportRun | None:
        with Session(desk.engine) as session:
            run = session.scalars(select(ExportRun)).one()
            return run if run.state not in ("queued", "running", "finishing") else None

    run = wait_until(finished, 180, "the export run to end", interval=0.5)
    assert run.state == "succeeded", run.error
    with Session(desk.engine) as session:
        study_jobs = list(session.scalars(select(Job).where(Job.kind == "export.study")))
    assert len(study_jobs) >= 5  # a job per study with records in the window
    with Session(desk.engine) as session:
        slices = {(p.study_id, p.slice_no) for p in session.scalars(select(StudyPart))}
    assert max(slice_no for _study, slice_no in slices) >= 2, slices
    assert len(study_jobs) >= len(slices)
    assert all(job.state == "succeeded" for job in study_jobs)
    ran_on = {job.worker for job in study_jobs}
    assert len(ran_on) >= 2, ran_on  # the run fanned out
    assert killed.pid not in {p.pid for p in workers if p is not killed}

    clean_env = {
        **desk.env,
        "DUTYDESK_HOME": str(tmp_path / "clean-home"),
        "DUTYDESK_WAREHOUSE": f"s3://{BUCKET}/one-process",
        "DUTYDESK_EXTRA_MODULES": "",
        "DUTYDESK_TEST_PAUSE_DIR": "",
        "DUTYDESK_EXPORT_SLICE_RECORDS": "0",
    }
    clean_env.pop("DUTYDESK_DATABASE_URL", None)
    clean_env.pop("DUTYDESK_BROKER_URL", None)
    assert run_dutydesk(clean_env, "db", "upgrade", timeout=180).returncode == 0
    clean = run_dutydesk(clean_env, "export", "run", "--start", START, "--end", END, timeout=180)
    assert clean.returncode == 0, clean.stderr

    after_kill = warehouse_files(s3_env, "workers", tmp_path / "after-kill")
    one_process = warehouse_files(s3_env, "one-process", tmp_path / "one-process")
    assert sorted(after_kill) == sorted(one_process)
    assert sum(name.endswith(".parquet") for name in after_kill) >= 12
    assert any("/attachments/" in name for name in after_kill)
    for name, path in after_kill.items():
        assert content(path) == content(one_process[name]), name
    for name, path in after_kill.items():
        if name.endswith(".parquet") and "-status/" not in name:
            ids = [row[0] for row in content(path)]  # type: ignore[attr-defined]
            assert len(ids) == len(set(ids)), f"{name} has duplicate records"
