"""What the engine's steps share: timeline entries, checked state moves, input checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.people.models import Role, User
from dutydesk.runbooks._kinds import ChangeRefused, get_kind
from dutydesk.runbooks._moves import allowed
from dutydesk.runbooks.models import ChangeEvent, ChangeRequest, ChangeState

MAX_TITLE = 300
MAX_COMMENT = 10_000


def event(session: Session, change: ChangeRequest, actor: str, kind: str, **detail: Any) -> None:
    """Add an entry to the request's timeline."""
    session.add(ChangeEvent(change_id=change.id, actor=actor, kind=kind, detail=detail))


def move(
    session: Session, change: ChangeRequest, target: ChangeState, actor: str, **detail: Any
) -> None:
    """Change the state (the move must be in MOVES), on the timeline; the kind is told."""
    source = change.state
    if allowed(source, target) is None:
        raise ChangeRefused(409, f"change #{change.id} is {source}; it cannot become {target}")
    change.state = target.value
    change.updated_at = utcnow()
    event(session, change, actor, target.value, source=source, **detail)
    session.flush()
    kind = get_kind(change.kind)
    if kind.on_state is not None:
        kind.on_state(session, change, target.value)


def is_operator(user: User) -> bool:
    """Whether the user is active and an operator or higher."""
    return user.active and Role(user.role).includes(Role.operator)


def check_title(title: str) -> str:
    """The title, trimmed, or a 422."""
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise ChangeRefused(422, f"a change needs a title of 1 to {MAX_TITLE} characters")
    return title


def check_dict(value: Any, name: str) -> dict[str, Any]:
    """A JSON object as a dict, or a 422 naming it."""
    if not isinstance(value, Mapping):
        raise ChangeRefused(422, f"{name} must be a JSON object")
    return dict(value)


def lock(session: Session, change: ChangeRequest) -> None:
    """Reload the request holding its row lock until the transaction ends (PostgreSQL's
    `FOR UPDATE`; SQLite writers hold the whole file already), so two people acting at once
    (two last signoffs, a revision and a signoff) see each other's work and not a stale state."""
    session.flush()
    session.execute(select(ChangeRequest.id).where(ChangeRequest.id == change.id).with_for_update())
    session.refresh(change)
