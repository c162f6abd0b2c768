"""The run job of a change request: a thin wrapper around the service."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.jobs.models import Job
from dutydesk.jobs.service import when_abandoned
from dutydesk.runbooks import service


@registry.job_kind(service.RUN_JOB)
def run_change_job(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Re-check the rules, claim the request and execute it (once, however many workers race)."""
    return service.execute_run(session, int(args["change_id"]), args.get("data_version"))


@when_abandoned(service.RUN_JOB)
def run_abandoned(session: Session, job: Job) -> None:
    """The worker running a request stopped: the request fails, saying so (it may have taken
    effect in part, so it is not run again by itself)."""
    service.abandon_run(session, int(job.args["change_id"]), job.error or "")
