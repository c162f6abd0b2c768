"""Jobs with the database as truth: enqueue after commit, claim, heartbeat, retry, sweep.

A broker message only says "run job N". A job row is created in the caller's transaction and
its message is sent after that transaction commits; a worker claims the row atomically, so a
duplicate message is harmless; a sweep re-sends jobs whose message or worker was lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from dutydesk import registry
from dutydesk.db import describe_database_error, retry_when_locked, transaction, utcnow
from dutydesk.jobs.models import DueMark, Job, JobState
from dutydesk.processes import process_runs
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)

_PENDING_KEY = "dutydesk_jobs_to_send"

AbandonedHandler = Callable[[Session, "Job"], None]
# What to do when the sweep gives up a job of a kind for good because its process stopped
# heartbeating (a job run in the process that asked for it has nobody to retry it).
abandoned_handlers: dict[str, AbandonedHandler] = {}


def when_abandoned(kind: str) -> Callable[[AbandonedHandler], AbandonedHandler]:
    """Register what the sweep does, in its transaction, when it fails a job of `kind` whose
    process stopped heartbeating."""

    def register(handler: AbandonedHandler) -> AbandonedHandler:
        abandoned_handlers[kind] = handler
        return handler

    return register


class JobError(ValueError):
    """A job request that cannot be done; the message says why."""


def enqueue(
    session: Session,
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    created_by: str | None = None,
    max_attempts: int | None = None,
    delay_seconds: float = 0.0,
    dispatch: bool = True,
) -> Job:
    """Add a job; its broker message is sent once this session's transaction commits.

    With `delay_seconds`, the job waits that long before any worker may run it. With
    `dispatch=False` no message is sent: the caller runs the job itself (`execute`).
    """
    if kind not in registry.job_kinds:
        known = ", ".join(sorted(registry.job_kinds)) or "none"
        raise JobError(f"unknown job kind {kind!r}; known kinds: {known}")
    job = Job(
        kind=kind,
        args=args or {},
        state=JobState.queued.value,
        max_attempts=max_attempts or get_settings().job_max_attempts,
        created_by=created_by or str(session.info.get("actor", "system")),
        enqueued_at=utcnow(),
        run_after=utcnow() + dt.timedelta(seconds=delay_seconds),
    )
    session.add(job)
    session.flush()
    if dispatch:
        session.info.setdefault(_PENDING_KEY, []).append((job.id, delay_seconds))
    return job


def send(job_id: int, delay_seconds: float = 0.0) -> None:
    """Send the broker message for a job. A failure is logged: the sweep will re-send."""
    from dutydesk.celery_app import RUN_JOB_TASK, get_celery

    try:
        get_celery().send_task(RUN_JOB_TASK, args=[job_id], countdown=delay_seconds or None)
    except Exception as error:  # noqa: BLE001 - any broker failure; the row stays queued
        log.warning("could not send job %s to the broker (%s); the sweep will retry", job_id, error)


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    for job_id, delay in session.info.pop(_PENDING_KEY, []):
        send(job_id, delay)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    # Only when the whole transaction is rolled back: jobs queued before a savepoint that
    # rolled back (a lost insert race, retried) are still to be sent.
    if previous.parent is None:
        session.info.pop(_PENDING_KEY, None)


def claim(session: Session, job_id: int, worker: str) -> Job | None:
    """Mark a queued, due job as running by `worker`; None if someone else has it or it waits."""
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.queued.value, Job.run_after <= now)
        .values(
            state=JobState.running.value,
            attempts=Job.attempts + 1,
            heartbeat_at=now,
            started_at=now,
            worker=worker,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    return session.get(Job, job_id, populate_existing=True)


def run_here(session: Session, kind: str, args: dict[str, Any], worker: str) -> Job:
    """A job row for work the calling process does itself (no worker runs it): already running
    as `worker`, with one attempt, so the sweep fails it, and calls the kind's
    `when_abandoned` handler, once it stops heartbeating (see `Heartbeat`, `end_here`)."""
    now = utcnow()
    job = Job(
        kind=kind,
        args=args,
        state=JobState.running.value,
        attempts=1,
        max_attempts=1,
        created_by=str(session.info.get("actor", "system")),
        enqueued_at=now,
        run_after=now,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
    )
    session.add(job)
    session.flush()
    return job


def end_here(
    factory: sessionmaker[Session], job_id: int, worker: str, error: str | None = None
) -> bool:
    """End a `run_here` job: succeeded, or failed with `error`; False if it was no longer ours
    (the sweep took it as lost)."""
    with transaction(factory) as session:
        ended = session.execute(
            update(Job)
            .where(_still_ours(job_id, worker))
            .values(
                state=JobState.failed.value if error else JobState.succeeded.value,
                error=error,
                finished_at=utcnow(),
            )
        )
        return getattr(ended, "rowcount", 0) == 1


def _beat(factory: sessionmaker[Session], job_id: int, worker: str) -> bool:
    """Record that the job is alive; False once the job is no longer ours."""
    with transaction(factory) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.running.value, Job.worker == worker)
            .values(heartbeat_at=utcnow())
        )
        return getattr(result, "rowcount", 0) == 1


class Heartbeat:
    """A thread that heartbeats a running job until stopped."""

    def __init__(self, factory: sessionmaker[Session], job_id: int, worker: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(factory, job_id, worker), daemon=True, name=f"hb-{job_id}"
        )

    def _run(self, factory: sessionmaker[Session], job_id: int, worker: str) -> None:
        interval = get_settings().job_heartbeat_seconds
        while not self._stop.wait(interval):
            try:
                if not _beat(factory, job_id, worker):
                    return
            except OperationalError as error:
                log.warning(
                    "heartbeat of job %s delayed: %s", job_id, describe_database_error(error)
                )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def holder_name() -> str:
    """This thread's name as the holder of a job: host, process, thread, and the process's
    pid namespace (containers sharing the host's name and network keep their own pids)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{_pid_namespace()}"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # no /proc: the name then never claims a holder gone
        return "?"


def holder_gone(worker: str | None) -> bool:
    """Whether `worker` (a `holder_name`) is a process of this machine and pid namespace that
    no longer runs: its job died with it (a pool process killed, or crashed in native code),
    and can be taken back at once instead of after `DUTYDESK_JOB_STALE_SECONDS`."""
    parts = (worker or "").split(":")
    if len(parts) != 4 or parts[3] == "?" or not parts[1].isdigit():
        return False
    host, pid, _thread, namespace = parts
    if host != socket.gethostname() or namespace != _pid_namespace() or int(pid) == os.getpid():
        return False
    return not process_runs(int(pid))


def backoff(attempts: int) -> float:
    """Seconds to wait before retrying after `attempts` failures."""
    return float(get_settings().job_backoff_seconds * 2 ** max(attempts - 1, 0))


class LostJob(Exception):
    """The job stopped being ours while it ran (the sweep gave it to another worker)."""


def _still_ours(job_id: int, worker: str) -> Any:
    return (Job.id == job_id) & (Job.state == JobState.running.value) & (Job.worker == worker)


def execute(job_id: int, worker: str, factory: sessionmaker[Session] | None = None) -> str:
    """Run one job if it is ours to run; returns the state it ended in (or 'skipped')."""
    from dutydesk.db import session_factory

    factory = factory or session_factory()

    def claimed() -> tuple[str, dict[str, Any], int, int] | None:
        with transaction(factory, immediate=True) as session:
            job = claim(session, job_id, worker)
            if job is None:
                held = session.get(Job, job_id)
                if (
                    held is not None
                    and held.state == JobState.running.value
                    and holder_gone(held.worker)
                ):
                    # Its message came back because the process running it died: take it
                    # back now, as the sweep would once the heartbeat ran out.
                    why = f"worker {held.worker} died"
                    _take_back(session, held, utcnow(), why, {}, send=False)
                    session.flush()
                    job = claim(session, job_id, worker)
            if job is None:
                return None
            return job.kind, dict(job.args), job.attempts, job.max_attempts

    found = retry_when_locked(claimed, what=f"claiming job {job_id}")
    if found is None:
        return "skipped"
    kind, args, attempts, max_attempts = found
    function = registry.job_kinds.get(kind)

    def run_once() -> None:
        assert function is not None
        with transaction(factory, actor=f"job:{kind}") as s:
            result = function(s, args)
            done = s.execute(
                update(Job)
                .where(_still_ours(job_id, worker))
                .values(
                    state=JobState.succeeded.value,
                    result=result,
                    error=None,
                    finished_at=utcnow(),
                )
            )
            if getattr(done, "rowcount", 0) != 1:
                # Raising rolls back what this stale run wrote; the new owner's run counts.
                raise LostJob(f"job {job_id} was given to another worker while {worker} ran it")

    try:
        if function is None:
            raise JobError(f"no job kind {kind!r} is registered in this worker")
        # Other processes write the same SQLite file: a job whose transaction read before one
        # of them wrote is rolled back and run again (jobs may run twice), not failed.
        with Heartbeat(factory, job_id, worker):
            retry_when_locked(run_once, what=f"job {job_id} ({kind})")
        log.info("job %s (%s) succeeded", job_id, kind)
        return JobState.succeeded.value
    except LostJob as lost:
        log.warning("%s; its work here was rolled back", lost)
        return "lost"
    except Exception:  # any failure of the job is recorded on its row and retried
        error = traceback.format_exc(limit=20)
        log.exception("job %s (%s) failed on attempt %s", job_id, kind, attempts)
        return _record_failure(factory, job_id, worker, attempts, max_attempts, error)


def _record_failure(
    factory: sessionmaker[Session],
    job_id: int,
    worker: str,
    attempts: int,
    max_attempts: int,
    error: str,
) -> str:
    return retry_when_locked(
        lambda: _record_failure_once(factory, job_id, worker, attempts, max_attempts, error),
        what=f"recording the failure of job {job_id}",
    )


def _record_failure_once(
    factory: sessionmaker[Session],
    job_id: int,
    worker: str,
    attempts: int,
    max_attempts: int,
    error: str,
) -> str:
    with transaction(factory, immediate=True) as session:
        job = session.scalar(select(Job).where(_still_ours(job_id, worker)))
        if job is None:
            log.warning("job %s failed here but is no longer ours; leaving it alone", job_id)
            return "lost"
        job.error = error[-8000:]
        job.heartbeat_at = None
        if attempts < max_attempts:
            delay = backoff(attempts)
            job.state = JobState.queued.value
            job.run_after = utcnow() + dt.timedelta(seconds=delay)
            job.enqueued_at = utcnow()
            session.info.setdefault(_PENDING_KEY, []).append((job_id, delay))
            return JobState.queued.value
        job.state = JobState.failed.value
        job.finished_at = utcnow()
        return JobState.failed.value


def sweep(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Re-queue jobs whose worker stopped heartbeating; re-send queued jobs nobody picked up."""
    now = now or utcnow()
    stale = dt.timedelta(seconds=get_settings().job_stale_seconds)
    counts = {"requeued": 0, "resent": 0, "failed": 0}
    for job in session.scalars(select(Job).where(Job.state == JobState.running.value)).all():
        if job.heartbeat_at is not None and job.heartbeat_at < now - stale:
            why = f"worker {job.worker} stopped heartbeating at {job.heartbeat_at}"
        elif holder_gone(job.worker):
            why = f"worker {job.worker} stopped heartbeating: its process is gone"
        else:
            continue
        _take_back(session, job, now, why, counts)
    forgotten = session.scalars(
        select(Job).where(
            Job.state == JobState.queued.value,
            Job.run_after <= now - stale,
            Job.enqueued_at <= now - stale,
        )
    ).all()
    for job in forgotten:
        job.enqueued_at = now
        session.info.setdefault(_PENDING_KEY, []).append((job.id, 0.0))
        counts["resent"] += 1
    if any(counts.values()):
        log.info("job sweep: %s", counts)
    return counts


def _take_back(
    session: Session,
    job: Job,
    now: dt.datetime,
    why: str,
    counts: dict[str, int],
    *,
    send: bool = True,
) -> None:
    """A running job whose worker is lost: queued again (its message sent after commit unless
    the caller runs it itself), or failed once out of attempts."""
    job.error = why
    if job.attempts >= job.max_attempts:
        job.state = JobState.failed.value
        job.finished_at = now
        counts["failed"] = counts.get("failed", 0) + 1
        handler = abandoned_handlers.get(job.kind)
        if handler is not None:
            handler(session, job)
        return
    job.state = JobState.queued.value
    job.run_after = now
    job.enqueued_at = now
    if send:
        session.info.setdefault(_PENDING_KEY, []).append((job.id, 0.0))
    counts["requeued"] = counts.get("requeued", 0) + 1


def is_due(
    session: Session, name: str, every: dt.timedelta, *, now: dt.datetime | None = None
) -> bool:
    """True (and marked) when the periodic work `name` last ran at least `every` ago."""
    now = now or utcnow()
    mark = session.get(DueMark, name)
    if mark is not None and now - mark.last_at < every:
        return False
    if mark is None:
        session.add(DueMark(name=name, last_at=now))
    else:
        mark.last_at = now
    return True


def tick(factory: sessionmaker[Session] | None = None) -> list[str]:
    """Run every registered piece of due work, each in its own transaction."""
    ran = []
    for name, work in sorted(registry.due_work.items()):
        try:
            retry_when_locked(partial(_run_due, factory, name, work), what=f"due work {name!r}")
            ran.append(name)
        except Exception:
            log.exception("due work %r failed; the next tick tries again", name)
    return ran


def _run_due(factory: sessionmaker[Session] | None, name: str, work: registry.DueWork) -> None:
    with transaction(factory, immediate=True, actor=f"tick:{name}") as session:
        work(session)


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Job]:
    """The newest jobs (after skipping `offset`), optionally of one state or kind."""
    query = select(Job).order_by(Job.id.desc()).offset(offset).limit(limit)
    if state:
        query = query.where(Job.state == state)
    if kind:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def state_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each state."""
    from sqlalchemy import func

    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    counts = {state.value: 0 for state in JobState}
    counts.update({state: int(count) for state, count in rows})
    return counts
