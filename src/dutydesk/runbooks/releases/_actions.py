"""What a person may do to a release and its steps, as the API and the console both offer it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.runbooks.releases import service
from dutydesk.runbooks.releases.models import Release
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Need, Principal

RELEASE_ACTIONS = ("start", "rollback", "cancel")
STEP_ACTIONS = ("tick", "sign", "retry", "skip", "override")


def person(db: Session, who: Principal) -> User | None:
    """The caller's user row (None for a token without a user, which never signs)."""
    return db.get(User, who.user.id) if who.user is not None else None


def act_on_release(db: Session, release: Release, action: str, who: Principal, text: str) -> None:
    """`start`, `rollback` (text: the reason) or `cancel` a release; ReleaseError otherwise."""
    actor = caller_name(who)
    if action == "start":
        service.start_release(db, release, actor=actor)
    elif action == "rollback":
        service.rollback(db, release, actor=actor, reason=text)
    elif action == "cancel":
        service.cancel_release(db, release, actor=actor, reason=text)
    else:
        raise service.ReleaseError(
            f"no release action {action!r}: {', '.join(RELEASE_ACTIONS)}", 404
        )


def act_on_step(
    db: Session, release: Release, position: int, action: str, who: Principal, text: str
) -> None:
    """`tick` a manual step (text: a note), `sign` a signoff step (text: a comment), `retry` a
    failed step, `skip` one (text: the reason), or `override` the release window for a blocked
    step (approvers only; text: the reason); ReleaseError otherwise."""
    actor = caller_name(who)
    if action == "tick":
        service.tick_step(db, release, position, actor=actor, note=text)
    elif action == "sign":
        service.sign_step(db, release, position, person(db, who), comment=text)
    elif action == "retry":
        service.retry_step(db, release, position, actor=actor)
    elif action == "skip":
        service.skip_step(db, release, position, actor=actor, reason=text)
    elif action == "override":
        if not who.may(Need.approve):
            raise service.ReleaseError("overriding the release window needs an approver", 403)
        service.override_window(db, release, position, person(db, who), reason=text)
    else:
        raise service.ReleaseError(f"no step action {action!r}: {', '.join(STEP_ACTIONS)}", 404)
