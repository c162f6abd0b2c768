"""Celery tasks (thin wrappers over the job service) and the foundation's due work."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.celery_app import RUN_JOB_TASK, TICK_TASK, get_celery
from dutydesk.db import utcnow
from dutydesk.jobs import service
from dutydesk.jobs.models import Job, JobState

celery = get_celery()
FINISHED_JOBS_KEPT_DAYS = 30


def worker_name() -> str:
    """Host, process, thread and pid namespace: enough to tell which worker holds a job, and
    whether it still runs."""
    return service.holder_name()


@celery.task(name=RUN_JOB_TASK)  # type: ignore[untyped-decorator]
def run_job(job_id: int) -> str:
    """Run job `job_id` if it is still queued."""
    return service.execute(int(job_id), worker_name())


@celery.task(name=TICK_TASK)  # type: ignore[untyped-decorator]
def tick() -> list[str]:
    """Beat's one frequent tick: ask the database what is due."""
    return service.tick()


@registry.due("jobs.sweep")
def sweep_lost_jobs(session: Session) -> None:
    """Every tick: re-queue jobs whose worker died, re-send lost messages."""
    service.sweep(session)


@registry.due("jobs.prune")
def enqueue_prune(session: Session) -> None:
    """Once a day: enqueue the clean-up of old finished jobs."""
    if service.is_due(session, "jobs.prune", dt.timedelta(days=1)):
        service.enqueue(session, "jobs.prune", {"keep_days": FINISHED_JOBS_KEPT_DAYS})


@registry.job_kind("jobs.prune")
def prune_finished_jobs(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Delete succeeded jobs older than `keep_days` (failed ones stay for inspection)."""
    keep_days = int(args.get("keep_days", FINISHED_JOBS_KEPT_DAYS))
    cutoff = utcnow() - dt.timedelta(days=keep_days)
    result = session.execute(
        delete(Job).where(Job.state == JobState.succeeded.value, Job.finished_at < cutoff)
    )
    return {"deleted": int(getattr(result, "rowcount", 0))}
