"""Running an approved request: queue the job, and the job's claim, execute and outcome.

Approval queues nothing; `run_change` queues the job, which re-checks the rules in its own
transaction and claims the request with one conditional UPDATE, so of two workers racing
(a duplicate broker message, a re-sent job) exactly one executes it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from dutydesk.audit.models import AuditEvent
from dutydesk.db import utcnow
from dutydesk.people.models import User
from dutydesk.runbooks import _notices, _rules
from dutydesk.runbooks._kinds import ChangeRefused, get_kind, known_kinds
from dutydesk.runbooks._steps import event, is_operator, lock, move
from dutydesk.runbooks.models import ChangeRequest, ChangeState

log = logging.getLogger(__name__)

RUN_JOB = "runbooks.run_change"


def rules_met(session: Session, change: ChangeRequest) -> tuple[bool, list[str]]:
    """Whether the signoffs on the current data_version meet every rule; what is missing."""
    if change.kind not in known_kinds():
        # A kind whose module this process has not loaded: never met, and said so.
        return False, [f"the kind {change.kind!r} is not known to this desk"]
    missing = _rules.missing(session, change)
    return not missing, missing


def run_change(session: Session, change: ChangeRequest, actor: User) -> int:
    """Queue the run job of an approved request whose rules are met; the job's id."""
    from dutydesk.jobs.models import Job, JobState
    from dutydesk.jobs.service import enqueue

    lock(session, change)
    if actor.id != change.author_id and not is_operator(actor):
        raise ChangeRefused(403, "only the author or an operator may run a change")
    if change.state != ChangeState.approved:
        raise ChangeRefused(
            409, f"change #{change.id} is {change.state}: it runs only once approved"
        )
    met, missing = rules_met(session, change)
    if not met:
        raise ChangeRefused(409, "the signoff rules are not met: " + "; ".join(missing))
    if change.job_id is not None:
        job = session.get(Job, change.job_id)
        if job is not None and job.state in (JobState.queued, JobState.running):
            raise ChangeRefused(409, f"change #{change.id} is already queued as job {job.id}")
    job = enqueue(
        session,
        RUN_JOB,
        {"change_id": change.id, "data_version": change.data_version},
        created_by=actor.username,
        max_attempts=1,
    )
    change.job_id = job.id
    change.updated_at = utcnow()
    event(session, change, actor.username, "run_requested", job_id=job.id)
    session.flush()
    return job.id


def _claim(session: Session, change_id: int) -> bool:
    """approved -> running in one conditional UPDATE: of two racing workers, one gets it."""
    now = utcnow()
    claimed = session.execute(
        update(ChangeRequest)
        .where(ChangeRequest.id == change_id, ChangeRequest.state == ChangeState.approved.value)
        .values(state=ChangeState.running.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return False
    # A bulk UPDATE bypasses the audit hook: record the move the way the hook would.
    session.execute(
        insert(AuditEvent),
        [
            {
                "at": now,
                "actor": str(session.info.get("actor", "system")),
                "action": "update",
                "object_type": ChangeRequest.__tablename__,
                "object_id": str(change_id),
                "before": {"state": ChangeState.approved.value},
                "after": {"state": ChangeState.running.value},
                "diff": {"state": [ChangeState.approved.value, ChangeState.running.value]},
            }
        ],
    )
    return True


def execute_run(
    session: Session, change_id: int, data_version: int | None = None
) -> dict[str, Any]:
    """The run job's work: re-check, claim, execute the kind, record done or failed."""
    change = session.get(ChangeRequest, change_id)
    if change is None:
        return {"skipped": f"no change request #{change_id}"}
    if change.state != ChangeState.approved:
        return {"skipped": f"change #{change_id} is {change.state}"}
    if data_version is not None and data_version != change.data_version:
        return {"skipped": f"change #{change_id} was revised after the run was asked for"}
    met, missing = rules_met(session, change)
    if not met:
        event(session, change, "run job", "run_refused", missing=missing)
        return {"refused": missing}
    if not _claim(session, change_id):
        return {"skipped": f"change #{change_id} was claimed by another worker"}
    session.refresh(change)
    event(session, change, "run job", ChangeState.running.value, source="approved")
    session.flush()
    kind = get_kind(change.kind)
    if kind.on_state is not None:
        kind.on_state(session, change, ChangeState.running.value)
    try:
        with session.begin_nested():
            result = dict(kind.execute(session, change))
    except Exception as error:  # noqa: BLE001 - any failure of the kind fails the request
        log.warning("change #%s (%s) failed: %s", change_id, change.kind, error)
        change.error = f"{type(error).__name__}: {error}"[:8000]
        move(session, change, ChangeState.failed, "run job", error=change.error)
        _notices.notify_author(session, change, ChangeState.failed.value, change.error)
        session.flush()
        return {"state": change.state, "error": change.error}
    change.result = result
    move(session, change, ChangeState.done, "run job")
    _notices.notify_author(session, change, ChangeState.done.value)
    session.flush()
    return {"state": change.state}


def abandon_run(session: Session, change_id: int, why: str) -> None:
    """A running request whose worker stopped heartbeating is failed, with the reason."""
    change = session.get(ChangeRequest, change_id)
    if change is None or change.state != ChangeState.running:
        return
    change.error = (
        f"the run stopped without finishing ({why}); check what it did before asking again"
    )
    move(session, change, ChangeState.failed, "run job", error=change.error)
    _notices.notify_author(session, change, ChangeState.failed.value, change.error)
    session.flush()
