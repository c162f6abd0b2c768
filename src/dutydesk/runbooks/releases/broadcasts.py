"""Broadcasts: messages to the application's users, shown while active as a banner on every
console page and served to the team's own application by the public endpoint."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.runbooks.releases.models import Broadcast, BroadcastLevel

MAX_MESSAGE = 2000


class BroadcastError(ValueError):
    """A broadcast that cannot be made or ended; the message says why."""


def create_broadcast(
    session: Session,
    *,
    message: str,
    actor: str,
    level: str = BroadcastLevel.info.value,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    release_id: int | None = None,
) -> Broadcast:
    """Start a broadcast (now, or at `starts_at`) until `ends_at` or until someone ends it."""
    text = message.strip()
    if not text:
        raise BroadcastError("a broadcast needs a message")
    if len(text) > MAX_MESSAGE:
        raise BroadcastError(f"a broadcast message is at most {MAX_MESSAGE} characters")
    if level not in {item.value for item in BroadcastLevel}:
        raise BroadcastError(
            f"level {level!r} is not one of {', '.join(item.value for item in BroadcastLevel)}"
        )
    starts = starts_at or utcnow()
    if ends_at is not None and ends_at <= starts:
        raise BroadcastError("a broadcast must end after it starts")
    broadcast = Broadcast(
        message=text,
        level=level,
        starts_at=starts,
        ends_at=ends_at,
        release_id=release_id,
        created_by=actor,
    )
    session.add(broadcast)
    session.flush()
    return broadcast


def get_broadcast(session: Session, broadcast_id: int) -> Broadcast:
    """The broadcast with this id; LookupError when there is none."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise LookupError(f"no broadcast {broadcast_id}")
    return broadcast


def is_active(broadcast: Broadcast, at: dt.datetime | None = None) -> bool:
    """Whether the broadcast shows at `at` (now)."""
    at = at or utcnow()
    return broadcast.starts_at <= at and (broadcast.ends_at is None or broadcast.ends_at > at)


def end_broadcast(
    session: Session, broadcast: Broadcast, *, actor: str, at: dt.datetime | None = None
) -> None:
    """End a broadcast now; one that has ended already is refused."""
    at = at or utcnow()
    if broadcast.ends_at is not None and broadcast.ends_at <= at:
        raise BroadcastError(f"broadcast {broadcast.id} has ended already")
    broadcast.ends_at = max(at, broadcast.starts_at)
    broadcast.ended_by = actor
    session.flush()


def active_broadcasts(session: Session, at: dt.datetime | None = None) -> list[Broadcast]:
    """The broadcasts showing at `at` (now), the most recent first."""
    at = at or utcnow()
    query = (
        select(Broadcast)
        .where(Broadcast.starts_at <= at, or_(Broadcast.ends_at.is_(None), Broadcast.ends_at > at))
        .order_by(Broadcast.starts_at.desc(), Broadcast.id.desc())
    )
    return list(session.scalars(query))


def list_broadcasts(session: Session, *, limit: int = 100) -> list[Broadcast]:
    """The latest broadcasts, active or not, the most recent first."""
    query = select(Broadcast).order_by(Broadcast.starts_at.desc(), Broadcast.id.desc())
    return list(session.scalars(query.limit(limit)))


def public_view(broadcast: Broadcast) -> dict[str, Any]:
    """What the public endpoint says of a broadcast (no names of people)."""
    return {
        "id": broadcast.id,
        "message": broadcast.message,
        "level": broadcast.level,
        "starts_at": broadcast.starts_at.isoformat(),
        "ends_at": broadcast.ends_at.isoformat() if broadcast.ends_at else None,
    }


def active_document(session: Session, at: dt.datetime | None = None) -> tuple[dict[str, Any], str]:
    """The public endpoint's JSON and its strong ETag (a hash of that JSON)."""
    document = {"broadcasts": [public_view(item) for item in active_broadcasts(session, at)]}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return document, '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'
