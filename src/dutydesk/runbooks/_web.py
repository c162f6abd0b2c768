"""What the change API and pages share: the caller as a user, errors as HTTP answers, and a
request's full view."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path
from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.runbooks import _rules, service
from dutydesk.runbooks.models import ChangeRequest
from dutydesk.runbooks.schemas import ChangeOut, ChangeSummary, EventOut, RuleOut, SignoffOut
from dutydesk.web.access import Principal

ChangeId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The request's number.")]


def http_error(error: service.ChangeRefused) -> HTTPException:
    """The HTTP answer for a refused action, with its reason."""
    return HTTPException(error.status, str(error))


def caller(db: Session, who: Principal) -> User | None:
    """The calling person (None for a token without a user)."""
    if who.user is None:
        return None
    return db.get(User, who.user.id)


def person(db: Session, who: Principal) -> User:
    """The calling person, or a 403: this action needs one."""
    user = caller(db, who)
    if user is None:
        raise HTTPException(403, "a token without a user cannot act on a change: use a person's")
    return user


def change_or_404(db: Session, change_id: int) -> ChangeRequest:
    """The request named in the path, or a 404 naming it."""
    try:
        return service.get_change(db, change_id)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None


def detail_path(change: ChangeRequest) -> str | None:
    """The kind's own page for the request, when the kind has one."""
    kinds = service.known_kinds()
    kind = kinds.get(change.kind)
    if kind is None or kind.detail_path is None:
        return None
    return kind.detail_path(change)


def rules_out(rules: list[_rules.Rule]) -> list[RuleOut]:
    """Rules in their API form."""
    return [RuleOut(kind=r.kind, role=r.role, count=r.count, default=r.default) for r in rules]


def change_out(db: Session, change: ChangeRequest) -> ChangeOut:
    """The full view of a request."""
    met, missing = service.rules_met(db, change)
    rules = _rules.rules_for(db, change.kind) if change.kind in service.known_kinds() else []
    return ChangeOut(
        **ChangeSummary.of(change).model_dump(),
        payload=change.payload,
        evidence=change.evidence,
        evidence_hash=change.evidence_hash,
        tracker_url=change.tracker_url,
        result=change.result,
        error=change.error,
        job_id=change.job_id,
        detail_path=detail_path(change),
        rules=rules_out(rules),
        rules_met=met,
        missing=missing,
        signoffs=[SignoffOut.of(s, change) for s in change.signoffs],
        timeline=[EventOut.of(e) for e in service.timeline(db, change)],
    )
