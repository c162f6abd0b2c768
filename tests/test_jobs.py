"""Jobs with the database as truth: enqueue after commit, claim once, retry, sweep, tick."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.jobs import service
from dutydesk.jobs.models import DueMark, Job, JobState
from dutydesk.people import service as people
from tests.conftest import make_user, sign_in

calls: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def test_kinds() -> Iterator[None]:
    """Register a job kind that records its calls and one that always fails."""

    def record(session: Session, args: dict[str, Any]) -> dict[str, Any]:
        calls.append(args)
        return {"seen": args}

    def explode(session: Session, args: dict[str, Any]) -> None:
        raise RuntimeError("the disk is full")

    registry.load_domains()
    registry.job_kinds["test.record"] = record
    registry.job_kinds["test.explode"] = explode
    calls.clear()
    yield
    registry.job_kinds.pop("test.record", None)
    registry.job_kinds.pop("test.explode", None)


def broker_messages(home: Path) -> int:
    """Messages waiting in the SQLite broker file (0 when nothing was ever sent)."""
    path = home / "broker.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
        if "kombu_message" not in tables:
            return 0
        return int(connection.execute("select count(*) from kombu_message").fetchone()[0])


def test_unknown_job_kind_is_refused_naming_the_known_ones(db: Session) -> None:
    with pytest.raises(service.JobError, match=r"unknown job kind 'nope'.*people\.prune"):
        service.enqueue(db, "nope")


def test_message_is_sent_only_after_the_creating_transaction_commits(
    db: Session, home: Path
) -> None:
    service.enqueue(db, "test.record", {"n": 1})
    assert broker_messages(home) == 0
    db.commit()
    assert broker_messages(home) == 1


def test_rolled_back_job_sends_no_message(db: Session, home: Path) -> None:
    service.enqueue(db, "test.record", {"n": 1})
    db.rollback()
    db.commit()
    assert broker_messages(home) == 0
    assert db.scalars(select(Job)).all() == []


def test_a_savepoint_rolled_back_after_a_job_was_queued_keeps_its_message(
    db: Session, home: Path
) -> None:
    service.enqueue(db, "test.record", {"n": 1})
    savepoint = db.begin_nested()  # e.g. an insert that lost a race and is retried
    savepoint.rollback()
    db.commit()
    assert broker_messages(home) == 1


def test_a_job_is_claimed_once_however_many_messages_arrive(
    db: Session, factory: sessionmaker[Session]
) -> None:
    job = service.enqueue(db, "test.record", {"n": 7})
    db.commit()
    assert service.execute(job.id, "worker-a", factory) == "succeeded"
    assert service.execute(job.id, "worker-b", factory) == "skipped"
    assert calls == [{"n": 7}]
    db.refresh(job)
    assert (job.state, job.attempts, job.result) == ("succeeded", 1, {"seen": {"n": 7}})
    assert job.worker == "worker-a"
    assert job.finished_at is not None


def test_failed_job_is_queued_again_with_backoff_then_fails_for_good(
    db: Session, factory: sessionmaker[Session]
) -> None:
    job = service.enqueue(db, "test.explode", max_attempts=2)
    db.commit()
    assert service.execute(job.id, "w", factory) == "queued"
    db.refresh(job)
    assert job.state == JobState.queued.value
    assert job.run_after > utcnow() + dt.timedelta(seconds=5)
    assert "the disk is full" in (job.error or "")
    assert service.execute(job.id, "w", factory) == "skipped"  # not due yet

    job.run_after = utcnow()
    db.commit()
    assert service.execute(job.id, "w", factory) == "failed"
    db.refresh(job)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.finished_at is not None


def test_backoff_doubles_with_each_attempt() -> None:
    assert [service.backoff(n) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]


def test_sweep_requeues_a_job_whose_worker_stopped_heartbeating(db: Session, home: Path) -> None:
    job = service.enqueue(db, "test.record")
    db.commit()
    long_ago = utcnow() - dt.timedelta(minutes=10)
    job.state, job.attempts, job.heartbeat_at, job.worker = "running", 1, long_ago, "dead:1"
    db.commit()
    sent_before = broker_messages(home)
    counts = service.sweep(db)
    db.commit()
    db.refresh(job)
    assert counts["requeued"] == 1
    assert job.state == "queued"
    assert "dead:1 stopped heartbeating" in (job.error or "")
    assert broker_messages(home) == sent_before + 1


def test_sweep_fails_a_lost_job_that_used_up_its_attempts(db: Session) -> None:
    job = service.enqueue(db, "test.record", max_attempts=1)
    db.commit()
    job.state, job.attempts = "running", 1
    job.heartbeat_at = utcnow() - dt.timedelta(minutes=10)
    db.commit()
    assert service.sweep(db)["failed"] == 1
    assert job.state == "failed"


def test_sweep_leaves_a_live_job_alone(db: Session) -> None:
    job = service.enqueue(db, "test.record")
    db.commit()
    job.state, job.attempts, job.heartbeat_at = "running", 1, utcnow()
    db.commit()
    assert service.sweep(db) == {"requeued": 0, "resent": 0, "failed": 0}
    assert job.state == "running"


def dead_holder() -> str:
    """The holder name of a process of this machine and namespace that has exited."""
    gone = subprocess.run(
        [sys.executable, "-c", "print(__import__('os').getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host, _pid, thread, namespace = service.holder_name().split(":")
    return f"{host}:{int(gone.stdout)}:{thread}:{namespace}"


def running_job(db: Session, worker: str, **job: Any) -> Job:
    """A job running by `worker` that heartbeat just now."""
    held = service.enqueue(db, "test.record", **job)
    db.commit()
    held.state, held.attempts, held.heartbeat_at, held.worker = "running", 1, utcnow(), worker
    db.commit()
    return held


def test_a_job_of_a_process_gone_from_this_machine_is_taken_back_at_the_sweep(
    db: Session, home: Path
) -> None:
    """A pool process that crashed leaves its job `running` with a fresh heartbeat; waiting
    DUTYDESK_JOB_STALE_SECONDS for it held a whole export run up."""
    worker = dead_holder()
    job = running_job(db, worker)
    sent_before = broker_messages(home)
    assert service.sweep(db)["requeued"] == 1
    db.commit()
    db.refresh(job)
    assert job.state == "queued"
    assert f"worker {worker} stopped heartbeating: its process is gone" == job.error
    assert broker_messages(home) == sent_before + 1


def test_a_dead_holder_out_of_attempts_is_failed_with_its_abandoned_handler(db: Session) -> None:
    abandoned: list[int] = []
    service.abandoned_handlers["test.record"] = lambda _s, job: abandoned.append(job.id)
    try:
        job = running_job(db, dead_holder(), max_attempts=1)
        assert service.sweep(db)["failed"] == 1
    finally:
        service.abandoned_handlers.pop("test.record")
    assert job.state == "failed"
    assert abandoned == [job.id]


@pytest.mark.parametrize(
    "holder",
    ["alive", "this process", "another machine", "another namespace", "an old name"],
)
def test_a_fresh_job_of_a_live_or_unknown_holder_is_left_alone(db: Session, holder: str) -> None:
    host, pid, thread, namespace = service.holder_name().split(":")
    dead = dead_holder().split(":")[1]
    worker = {
        "alive": f"{host}:{os.getppid()}:{thread}:{namespace}",
        "this process": f"{host}:{pid}:{thread}:{namespace}",
        "another machine": f"not-{host}:{dead}:{thread}:{namespace}",
        "another namespace": f"{host}:{dead}:{thread}:1{namespace}",
        "an old name": f"{host}:{dead}:{thread}",
    }[holder]
    job = running_job(db, worker)
    assert service.sweep(db) == {"requeued": 0, "resent": 0, "failed": 0}
    assert job.state == "running"
    assert service.execute(job.id, "another-worker", sessionmaker(bind=db.get_bind())) == "skipped"


def test_a_message_back_from_a_dead_holder_runs_its_job_at_once(db: Session, home: Path) -> None:
    """Celery sends a job's message again when the pool process running it dies; the worker
    that gets it takes the job back and runs it instead of skipping it as someone else's."""
    job = running_job(db, dead_holder())
    factory = sessionmaker(bind=db.get_bind(), expire_on_commit=False)
    sent_before = broker_messages(home)
    assert service.execute(job.id, "another-worker", factory) == "succeeded"
    assert broker_messages(home) == sent_before  # run here, not sent again
    db.refresh(job)
    assert (job.state, job.attempts, job.worker) == ("succeeded", 2, "another-worker")
    assert len(calls) == 1


def test_sweep_resends_a_queued_job_whose_message_was_lost(db: Session, home: Path) -> None:
    job = service.enqueue(db, "test.record")
    db.commit()
    long_ago = utcnow() - dt.timedelta(minutes=10)
    job.run_after, job.enqueued_at = long_ago, long_ago
    db.commit()
    assert service.sweep(db)["resent"] == 1
    db.commit()
    assert job.enqueued_at is not None and job.enqueued_at > long_ago


def test_is_due_marks_periodic_work(db: Session) -> None:
    now = utcnow()
    assert service.is_due(db, "nightly", dt.timedelta(hours=1), now=now)
    assert not service.is_due(db, "nightly", dt.timedelta(hours=1), now=now)
    assert service.is_due(db, "nightly", dt.timedelta(hours=1), now=now + dt.timedelta(hours=2))
    mark = db.get(DueMark, "nightly")
    assert mark is not None and mark.last_at == now + dt.timedelta(hours=2)


def test_tick_runs_every_registered_piece_of_due_work(
    db: Session, factory: sessionmaker[Session]
) -> None:
    ran = service.tick(factory)
    assert {"jobs.sweep", "jobs.prune", "people.prune"} <= set(ran)
    kinds = {job.kind for job in db.scalars(select(Job))}
    assert kinds == {
        "jobs.prune",
        "people.prune",
        "intake.prune",
        "tickets.prune",
        "metrics.roll_up",
    }
    service.tick(factory)  # not due again yet
    assert len(db.scalars(select(Job)).all()) == 5


def test_one_broken_piece_of_due_work_does_not_stop_the_others(
    factory: sessionmaker[Session],
) -> None:
    def broken(session: Session) -> None:
        raise RuntimeError("boom")

    registry.due_work["aaa.broken"] = broken
    try:
        ran = service.tick(factory)
    finally:
        registry.due_work.pop("aaa.broken")
    assert "aaa.broken" not in ran
    assert "jobs.sweep" in ran


def test_prune_deletes_old_succeeded_jobs_but_keeps_failures(
    db: Session, factory: sessionmaker[Session]
) -> None:
    old = utcnow() - dt.timedelta(days=40)
    db.add_all(
        [
            Job(kind="test.record", state="succeeded", finished_at=old, args={}),
            Job(kind="test.record", state="failed", finished_at=old, args={}),
            Job(kind="test.record", state="succeeded", finished_at=utcnow(), args={}),
        ]
    )
    db.commit()
    prune = service.enqueue(db, "jobs.prune", {"keep_days": 30})
    db.commit()
    assert service.execute(prune.id, "w", factory) == "succeeded"
    db.refresh(prune)
    assert prune.result == {"deleted": 1}
    assert len(db.scalars(select(Job).where(Job.state == "failed")).all()) == 1


def test_api_queues_a_job_and_reports_its_state(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "ops", ["write"])
    db.commit()
    headers = {"Authorization": f"Bearer {made.secret}"}
    created = client.post(
        "/api/v1/jobs", json={"kind": "test.record", "args": {"n": 3}}, headers=headers
    )
    assert created.status_code == 202
    body = created.json()
    assert (body["state"], body["args"], body["created_by"]) == ("queued", {"n": 3}, "(token ops)")
    fetched = client.get(f"/api/v1/jobs/{body['id']}", headers=headers)
    assert fetched.json()["id"] == body["id"]
    listed = client.get("/api/v1/jobs", params={"state": "queued"}, headers=headers).json()
    assert [job["id"] for job in listed] == [body["id"]]


def test_api_rejects_bad_job_requests_with_a_reason(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "ops", ["write"])
    db.commit()
    headers = {"Authorization": f"Bearer {made.secret}"}
    unknown = client.post("/api/v1/jobs", json={"kind": "nope"}, headers=headers)
    assert unknown.status_code == 422
    assert "unknown job kind 'nope'" in unknown.json()["detail"]
    extra = client.post("/api/v1/jobs", json={"kind": "test.record", "x": 1}, headers=headers)
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["field"] == "body.x"
    broken = client.post(
        "/api/v1/jobs",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert broken.status_code == 422
    assert client.get("/api/v1/jobs/987654", headers=headers).status_code == 404
    assert (
        client.get("/api/v1/jobs", params={"state": "zombie"}, headers=headers).status_code == 422
    )


def test_jobs_page_shows_jobs_and_lets_operators_queue_one(client: TestClient, db: Session) -> None:
    operator = make_user(db, "operator", "olga")
    token = sign_in(client, db, operator)
    response = client.post("/jobs", data={"kind": "people.prune", "csrf_token": token})
    assert response.status_code == 303
    page = client.get("/jobs")
    assert "people.prune" in page.text
    assert "olga" in page.text
    assert 'action="/jobs"' in page.text


def test_viewers_see_jobs_without_the_queue_form(client: TestClient, db: Session) -> None:
    viewer = make_user(db, "viewer", "vera")
    sign_in(client, db, viewer)
    page = client.get("/jobs")
    assert page.status_code == 200
    assert 'method="post" action="/jobs"' not in page.text


def test_a_run_that_lost_its_job_to_another_worker_rolls_its_work_back(
    db: Session, factory: sessionmaker[Session]
) -> None:
    def taken_over(session: Session, args: dict[str, Any]) -> None:
        session.add(DueMark(name="written-by-the-stale-run", last_at=utcnow()))
        # What the sweep and a second worker do while this run is stalled:
        session.execute(update(Job).where(Job.state == "running").values(worker="worker-b"))

    registry.job_kinds["test.taken_over"] = taken_over
    try:
        job = service.enqueue(db, "test.taken_over")
        db.commit()
        assert service.execute(job.id, "worker-a", factory) == "lost"
    finally:
        registry.job_kinds.pop("test.taken_over")
    assert db.get(DueMark, "written-by-the-stale-run") is None
    db.refresh(job)
    assert job.state != "succeeded"


def test_a_failure_of_a_job_no_longer_ours_leaves_the_row_alone(
    db: Session, factory: sessionmaker[Session]
) -> None:
    def explode_after_takeover(session: Session, args: dict[str, Any]) -> None:
        raise RuntimeError("stalled and then crashed")

    registry.job_kinds["test.late_crash"] = explode_after_takeover
    try:
        job = service.enqueue(db, "test.late_crash")
        db.commit()
        with factory() as claimer:
            assert service.claim(claimer, job.id, "worker-a") is not None
            claimer.commit()
        job.worker = "worker-b"  # the sweep re-queued it and worker-b claimed it
        db.commit()
        assert service._record_failure(factory, job.id, "worker-a", 1, 3, "boom") == "lost"
    finally:
        registry.job_kinds.pop("test.late_crash")
    db.refresh(job)
    assert (job.state, job.worker, job.error) == ("running", "worker-b", None)


def test_backoff_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import clear_caches

    monkeypatch.setenv("DUTYDESK_JOB_BACKOFF_SECONDS", "1.5")
    clear_caches()
    assert [service.backoff(n) for n in (1, 2, 3)] == [1.5, 3.0, 6.0]


def test_messages_go_to_the_configured_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    from dutydesk.celery_app import get_celery
    from tests.conftest import clear_caches

    monkeypatch.setenv("DUTYDESK_BROKER_QUEUE", "desk-two")
    clear_caches()
    assert get_celery().conf.task_default_queue == "desk-two"
