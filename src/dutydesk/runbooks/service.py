"""The change-request engine: open, submit, revise, sign off, reject, cancel, comment, run.

Service functions never commit; the request or the job owns the transaction. Each refusal is
a `ChangeRefused` carrying the HTTP status it maps to and a reason a person can act on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
from dutydesk.runbooks._moves import MOVES
from dutydesk.runbooks._run import RUN_JOB, abandon_run, execute_run, rules_met, run_change
from dutydesk.runbooks._steps import (
    MAX_COMMENT,
    check_dict,
    check_title,
    event,
    is_operator,
    lock,
    move,
)
from dutydesk.runbooks.models import (
    ChangeComment,
    ChangeEvent,
    ChangeRequest,
    ChangeSignoff,
    ChangeState,
)

__all__ = [
    "MOVES",
    "RUN_JOB",
    "ChangeKind",
    "ChangeRefused",
    "abandon_run",
    "cancel_change",
    "comment_change",
    "evidence_hash",
    "execute_run",
    "get_change",
    "get_kind",
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
    evidence = check_dict(evidence, "evidence")
    if tracker_url is not None and not tracker_url.startswith(("https://", "http://")):
        raise ChangeRefused(422, f"tracker link {tracker_url!r} must be an http(s) URL")
    change = ChangeRequest(
        kind=kind,
        title=check_title(title),
        payload=check_dict(payload, "payload"),
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
    event(session, change, author.username, "opened", data_version=1)
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


def submit_change(session: Session, change: ChangeRequest, actor: User) -> None:
    """draft -> pending; everyone whose signoff is needed is notified with a link."""
    lock(session, change)
    if actor.id != change.author_id and not is_operator(actor):
        raise ChangeRefused(403, "only the author or an operator may submit a change")
    move(session, change, ChangeState.pending, actor.username)
    told = _notices.notify_signers(session, change)
    event(session, change, "desk", "notified", users=told, reason="signoff needed")
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
    lock(session, change)
    if actor.id != change.author_id and not is_operator(actor):
        raise ChangeRefused(403, "only the author or an operator may revise a change")
    if change.state not in (ChangeState.draft, ChangeState.pending, ChangeState.approved):
        raise ChangeRefused(409, f"change #{change.id} is {change.state}; it can no longer change")
    changed = []
    if title is not None and check_title(title) != change.title:
        change.title = check_title(title)
        changed.append("title")
    if payload is not None and check_dict(payload, "payload") != change.payload:
        change.payload = dict(payload)
        changed.append("payload")
    if evidence is not None and evidence_hash(check_dict(evidence, "evidence")) != (
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
        event(session, change, actor.username, "revised", changed=changed)
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
    event(
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
        move(session, change, ChangeState.pending, actor.username, why="revised")
    if change.state == ChangeState.pending:
        told = _notices.notify_signers(session, change)
        event(session, change, "desk", "notified", users=told, reason="signoff needed")
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
    lock(session, change)
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
    event(
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
        move(session, change, ChangeState.approved, "desk", why="every signoff rule is met")
        _notices.notify_author(session, change, ChangeState.approved.value)
        session.flush()


def reject_change(session: Session, change: ChangeRequest, actor: User, *, comment: str) -> None:
    """pending -> rejected by someone who could have signed it; the author is told why."""
    lock(session, change)
    if actor.id == change.author_id:
        raise ChangeRefused(403, "the author cancels their own change instead of rejecting it")
    if not _rules.may_sign(session, change, actor):
        raise ChangeRefused(403, f"your role ({actor.role}) cannot sign or reject this change")
    if not comment.strip():
        raise ChangeRefused(422, "a rejection needs a comment saying why")
    if change.state != ChangeState.pending:
        raise ChangeRefused(409, f"change #{change.id} is {change.state}, not pending")
    move(session, change, ChangeState.rejected, actor.username, comment=comment.strip())
    _notices.notify_author(session, change, ChangeState.rejected.value, comment.strip())
    session.flush()


def cancel_change(
    session: Session, change: ChangeRequest, actor: User, *, comment: str = ""
) -> None:
    """Withdraw a request that has not run (its author, or an admin)."""
    lock(session, change)
    if actor.id != change.author_id and not Role(actor.role).includes(Role.admin):
        raise ChangeRefused(403, "only the author or an admin may cancel a change")
    if change.state not in (ChangeState.draft, ChangeState.pending, ChangeState.approved):
        raise ChangeRefused(409, f"change #{change.id} is {change.state}; it cannot be cancelled")
    move(session, change, ChangeState.cancelled, actor.username, comment=comment.strip())


def comment_change(session: Session, change: ChangeRequest, actor: User, text: str) -> None:
    """A comment on the request's timeline."""
    text = text.strip()
    if not text or len(text) > MAX_COMMENT:
        raise ChangeRefused(422, f"a comment needs 1 to {MAX_COMMENT} characters")
    session.add(ChangeComment(change_id=change.id, author_id=actor.id, body=text))
    event(session, change, actor.username, "comment", text=text)
    session.flush()


def timeline(session: Session, change: ChangeRequest) -> list[ChangeEvent]:
    """Every state change, signoff, revision, notice and comment, oldest first."""
    return list(
        session.scalars(
            select(ChangeEvent).where(ChangeEvent.change_id == change.id).order_by(ChangeEvent.id)
        )
    )
