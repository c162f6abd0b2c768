"""The change-request engine: open, submit, revise, sign off, reject, cancel, comment, run.

Service functions never commit; the request or the job owns the transaction. Each refusal is
a `ChangeRefused` carrying the HTTP status it maps to and a reason a person can act on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dutydesk.audit.models import AuditEvent
from dutydesk.db import utcnow
from dutydesk.people.models import Role, User
from dutydesk.runbooks import _notices, _rules
from dutydesk.runbooks._kinds import (
    ChangeKind,
    ChangeRefused,
    evidence_hash,
    get_kind,
    known_kinds,
    register_kind,
)
from dutydesk.runbooks._moves import MOVES, allowed
from dutydesk.runbooks.models import (
    ENDED_STATES,
    ChangeComment,
    ChangeEvent,
    ChangeRequest,
    ChangeSignoff,
    ChangeState,
)

__all__ = [
    "MOVES",
    "ChangeKind",
    "ChangeRefused",
    "cancel_change",
    "comment_change",
    "evidence_hash",
    "get_change",
    "known_kinds",
    "list_changes",
    "open_change",
    "register_kind",
    "reject_change",
    "revise_change",
    "rules_met",
    "run_change",
    "sign_off",
    "submit_change",
    "timeline",
]

log = logging.getLogger(__name__)

RUN_JOB = "runbooks.run_change"
MAX_TITLE = 300
MAX_COMMENT = 10_000


def _event(session: Session, change: ChangeRequest, actor: str, kind: str, **detail: Any) -> None:
    session.add(ChangeEvent(change_id=change.id, actor=actor, kind=kind, detail=detail))


def _move(
    session: Session, change: ChangeRequest, target: ChangeState, actor: str, **detail: Any
) -> None:
    """Change the state (the move must be in MOVES), on the timeline; the kind is told."""
    source = change.state
    if allowed(source, target) is None:
        raise ChangeRefused(409, f"change #{change.id} is {source}; it cannot become {target}")
    change.state = target.value
    change.updated_at = utcnow()
    _event(session, change, actor, target.value, source=source, **detail)
    session.flush()
    kind = get_kind(change.kind)
    if kind.on_state is not None:
        kind.on_state(session, change, target.value)


def _is_operator(user: User) -> bool:
    return user.active and Role(user.role).includes(Role.operator)


def _check_title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise ChangeRefused(422, f"a change needs a title of 1 to {MAX_TITLE} characters")
    return title


def _check_dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ChangeRefused(422, f"{name} must be a JSON object")
    return dict(value)


def open_change(
    session: Session,
    *,
    kind: str,
    title: str,
    payload: dict[str, Any],
    evidence: dict[str, Any],
    author: User,
    tracker_url: str | None = None,
) -> ChangeRequest:
    """A new request in `draft`, at data_version 1."""
    get_kind(kind)
    evidence = _check_dict(evidence, "evidence")
    if tracker_url is not None and not tracker_url.startswith(("https://", "http://")):
        raise ChangeRefused(422, f"tracker link {tracker_url!r} must be an http(s) URL")
    change = ChangeRequest(
        kind=kind,
        title=_check_title(title),
        payload=_check_dict(payload, "payload"),
        evidence=evidence,
        evidence_hash=evidence_hash(evidence),
        data_version=1,
        state=ChangeState.draft.value,
        author_id=author.id,
        tracker_url=tracker_url or None,
    )
    change.author = author
    session.add(change)
    session.flush()
    _event(session, change, author.username, "opened", data_version=1)
    session.flush()
    return change


def get_change(session: Session, change_id: int) -> ChangeRequest:
    """The request with this id; LookupError when there is none."""
    change = session.get(ChangeRequest, change_id)
    if change is None:
        raise LookupError(f"no change request #{change_id}")
    return change


def list_changes(
    session: Session,
    *,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ChangeRequest]:
    """Requests, newest first, optionally of one state and kind."""
    query = select(ChangeRequest).order_by(ChangeRequest.id.desc())
    if state:
        query = query.where(ChangeRequest.state == state)
    if kind:
        query = query.where(ChangeRequest.kind == kind)
    return list(session.scalars(query.limit(limit).offset(offset)))


def rules_met(session: Session, change: ChangeRequest) -> tuple[bool, list[str]]:
    """Whether the signoffs on the current data_version meet every rule; what is missing."""
    missing = _rules.missing(session, change)
    return not missing, missing


def submit_change(session: Session, change: ChangeRequest, actor: User) -> None:
    """draft -> pending; everyone whose signoff is needed is notified with a link."""
    if actor.id != change.author_id and not _is_operator(actor):
        raise ChangeRefused(403, "only the author or an operator may submit a change")
    _move(session, change, ChangeState.pending, actor.username)
    told = _notices.notify_signers(session, change)
    _event(session, change, "desk", "notified", users=told, reason="signoff needed")
    session.flush()


def revise_change(
    session: Session,
    change: ChangeRequest,
    actor: User,
    *,
    payload: dict[str, Any] | None = None,
    evidence: dict[str, Any] | None = None,
    title: str | None = None,
) -> None:
    """A new data_version: every signoff is dropped and an approved request is pending again."""
    if actor.id != change.author_id and not _is_operator(actor):
        raise ChangeRefused(403, "only the author or an operator may revise a change")
    if change.state not in (ChangeState.draft, ChangeState.pending, ChangeState.approved):
        raise ChangeRefused(409, f"change #{change.id} is {change.state}; it can no longer change")
    changed = []
    if title is not None and _check_title(title) != change.title:
        change.title = _check_title(title)
        changed.append("title")
    if payload is not None and _check_dict(payload, "payload") != change.payload:
        change.payload = dict(payload)
        changed.append("payload")
    if evidence is not None and evidence_hash(_check_dict(evidence, "evidence")) != (
        change.evidence_hash
    ):
        change.evidence = dict(evidence)
        change.evidence_hash = evidence_hash(evidence)
        changed.append("evidence")
    if not changed:
        return
    if changed == ["title"]:
        # A title is not what a signer approves: renaming keeps the signoffs.
        change.updated_at = utcnow()
        _event(session, change, actor.username, "revised", changed=changed)
        session.flush()
        return
    now = utcnow()
    dropped = []
    for signoff in change.active_signoffs:
        signoff.dropped_at = now
        dropped.append(signoff.user.username)
    change.data_version += 1
    change.revised_by_id = None if actor.id == change.author_id else actor.id
    change.updated_at = now
    _event(
        session,
        change,
        actor.username,
        "revised",
        changed=changed,
        data_version=change.data_version,
        evidence_hash=change.evidence_hash,
        dropped_signoffs=dropped,
    )
    session.flush()
    if change.state == ChangeState.approved:
        _move(session, change, ChangeState.pending, actor.username, why="revised")
    if change.state == ChangeState.pending:
        told = _notices.notify_signers(session, change)
        _event(session, change, "desk", "notified", users=told, reason="signoff needed")
        session.flush()


def sign_off(
    session: Session,
    change: ChangeRequest,
    actor: User | None,
    *,
    data_version: int,
    evidence_hash: str,
    comment: str = "",
) -> None:
    """The actor approves what they saw (data_version and evidence hash); once every rule is
    met the request becomes approved. Nothing is queued: running is a separate step."""
    if actor is None:
        raise ChangeRefused(403, "a token without a user cannot sign off: a signoff needs a person")
    if actor.id == change.author_id:
        raise ChangeRefused(403, "nobody signs off their own change request")
    if actor.id == change.revised_by_id:
        raise ChangeRefused(403, "you made this version of the change; someone else must sign")
    if not _rules.may_sign(session, change, actor):
        wanted = " or ".join(r.describe() for r in _rules.rules_for(session, change.kind))
        raise ChangeRefused(
            403, f"your role ({actor.role}) cannot sign this change; it needs {wanted}"
        )
    if change.state != ChangeState.pending:
        raise ChangeRefused(409, f"change #{change.id} is {change.state}, not pending")
    if data_version != change.data_version:
        raise ChangeRefused(
            409,
            f"stale data_version: you signed version {data_version} but change #{change.id} is "
            f"at version {change.data_version} (it was revised); review it again and sign the "
            "current version",
        )
    if evidence_hash != change.evidence_hash:
        raise ChangeRefused(
            409,
            f"evidence hash {evidence_hash[:12]}... is not the evidence of version "
            f"{change.data_version} ({change.evidence_hash[:12]}...); review it again",
        )
    if any(s.user_id == actor.id for s in change.active_signoffs):
        raise ChangeRefused(409, f"you have already signed off version {change.data_version}")
    if len(comment) > MAX_COMMENT:
        raise ChangeRefused(422, f"a comment may have at most {MAX_COMMENT} characters")
    signoff = ChangeSignoff(
        change_id=change.id,
        user_id=actor.id,
        role=actor.role,
        data_version=data_version,
        evidence_hash=evidence_hash,
        comment=comment.strip(),
    )
    signoff.user = actor
    change.signoffs.append(signoff)
    _event(
        session,
        change,
        actor.username,
        "signed_off",
        role=actor.role,
        data_version=data_version,
        evidence_hash=evidence_hash,
        comment=comment.strip(),
    )
    session.flush()
    met, _missing = rules_met(session, change)
    if met:
        _move(session, change, ChangeState.approved, "desk", why="every signoff rule is met")
        _notices.notify_author(session, change, ChangeState.approved.value)
        session.flush()


def reject_change(session: Session, change: ChangeRequest, actor: User, *, comment: str) -> None:
    """pending -> rejected by someone who could have signed it; the author is told why."""
    if actor.id == change.author_id:
        raise ChangeRefused(403, "the author cancels their own change instead of rejecting it")
    if not _rules.may_sign(session, change, actor):
        raise ChangeRefused(403, f"your role ({actor.role}) cannot sign or reject this change")
    if not comment.strip():
        raise ChangeRefused(422, "a rejection needs a comment saying why")
    if change.state != ChangeState.pending:
        raise ChangeRefused(409, f"change #{change.id} is {change.state}, not pending")
    _move(session, change, ChangeState.rejected, actor.username, comment=comment.strip())
    _notices.notify_author(session, change, ChangeState.rejected.value, comment.strip())
    session.flush()


def cancel_change(
    session: Session, change: ChangeRequest, actor: User, *, comment: str = ""
) -> None:
    """Withdraw a request that has not run (its author, or an admin)."""
    if actor.id != change.author_id and not Role(actor.role).includes(Role.admin):
        raise ChangeRefused(403, "only the author or an admin may cancel a change")
    if change.state not in (ChangeState.draft, ChangeState.pending, ChangeState.approved):
        raise ChangeRefused(409, f"change #{change.id} is {change.state}; it cannot be cancelled")
    _move(session, change, ChangeState.cancelled, actor.username, comment=comment.strip())


def comment_change(session: Session, change: ChangeRequest, actor: User, text: str) -> None:
    """A comment on the request's timeline."""
    text = text.strip()
    if not text or len(text) > MAX_COMMENT:
        raise ChangeRefused(422, f"a comment needs 1 to {MAX_COMMENT} characters")
    session.add(ChangeComment(change_id=change.id, author_id=actor.id, body=text))
    _event(session, change, actor.username, "comment", text=text)
    session.flush()


def timeline(session: Session, change: ChangeRequest) -> list[ChangeEvent]:
    """Every state change, signoff, revision, notice and comment, oldest first."""
    return list(
        session.scalars(
            select(ChangeEvent).where(ChangeEvent.change_id == change.id).order_by(ChangeEvent.id)
        )
    )


def run_change(session: Session, change: ChangeRequest, actor: User) -> int:
    """Queue the run job of an approved request whose rules are met; the job's id."""
    from dutydesk.jobs.models import Job, JobState
    from dutydesk.jobs.service import enqueue

    if actor.id != change.author_id and not _is_operator(actor):
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
    _event(session, change, actor.username, "run_requested", job_id=job.id)
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
        _event(session, change, "run job", "run_refused", missing=missing)
        return {"refused": missing}
    if not _claim(session, change_id):
        return {"skipped": f"change #{change_id} was claimed by another worker"}
    session.refresh(change)
    _event(session, change, "run job", ChangeState.running.value, source="approved")
    session.flush()
    kind = get_kind(change.kind)
    if kind.on_state is not None:
        kind.on_state(session, change, ChangeState.running.value)
    try:
        with session.begin_nested():
            result = kind.execute(session, change)
    except Exception as error:  # noqa: BLE001 - any failure of the kind fails the request
        log.warning("change #%s (%s) failed: %s", change_id, change.kind, error)
        change.error = f"{type(error).__name__}: {error}"[:8000]
        _move(session, change, ChangeState.failed, "run job", error=change.error)
        _notices.notify_author(session, change, ChangeState.failed.value, change.error)
        session.flush()
        return {"state": change.state, "error": change.error}
    change.result = dict(result)
    _move(session, change, ChangeState.done, "run job")
    _notices.notify_author(session, change, ChangeState.done.value)
    session.flush()
    return {"state": change.state}


def is_ended(change: ChangeRequest) -> bool:
    """Whether the request has reached a state it never leaves."""
    return ChangeState(change.state) in ENDED_STATES


def since(change: ChangeRequest) -> dt.timedelta:
    """How long ago the request last changed."""
    return utcnow() - change.updated_at
