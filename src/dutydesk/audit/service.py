"""One audit mechanism for every domain.

A model opts in with `__audited__ = True` (and hides secrets with `__audit_exclude__`); every
insert, update and delete of it is then written to `audit_events` in the same transaction,
naming the actor found in `session.info["actor"]`. Domains never call the log by hand for
model changes, so none can forget to.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Select, event, insert, inspect, select
from sqlalchemy.orm import Session, UOWTransaction

from dutydesk.audit.models import AuditEvent
from dutydesk.db import utcnow

REDACTED = "[redacted]"


def _plain(value: Any) -> Any:
    """A JSON-safe form of a column value."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def _is_audited(obj: object) -> bool:
    return bool(getattr(type(obj), "__audited__", False))


def _excluded(obj: object) -> tuple[str, ...]:
    return tuple(getattr(type(obj), "__audit_exclude__", ()))


def _quiet(obj: object) -> tuple[str, ...]:
    """Columns whose changes alone are bookkeeping, not a change worth an audit event."""
    return tuple(getattr(type(obj), "__audit_quiet__", ()))


def snapshot(obj: object) -> dict[str, Any]:
    """The object's column values, with excluded (secret) columns redacted."""
    mapper = inspect(type(obj))
    excluded = _excluded(obj)
    return {
        attr.key: REDACTED if attr.key in excluded else _plain(getattr(obj, attr.key))
        for attr in mapper.column_attrs
    }


def _before_values(obj: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values before this flush, and a diff of what changed."""
    state = inspect(obj)
    excluded = _excluded(obj)
    before: dict[str, Any] = {}
    diff: dict[str, Any] = {}
    for attr in inspect(type(obj)).column_attrs:
        history = state.attrs[attr.key].history
        current = getattr(obj, attr.key)
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            before[attr.key] = REDACTED if attr.key in excluded else _plain(old)
            diff[attr.key] = (
                [REDACTED, REDACTED] if attr.key in excluded else [_plain(old), _plain(current)]
            )
        else:
            before[attr.key] = REDACTED if attr.key in excluded else _plain(current)
    return before, diff


def _object_type(obj: object) -> str:
    return str(getattr(type(obj), "__tablename__", type(obj).__name__))


def _object_id(obj: object) -> str:
    key = inspect(type(obj)).primary_key_from_instance(obj)
    return ",".join(str(part) for part in key if part is not None)


@event.listens_for(Session, "after_flush")
def _audit_after_flush(session: Session, _context: UOWTransaction) -> None:
    actor = str(session.info.get("actor", "system"))
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if _is_audited(obj):
            after = snapshot(obj)
            rows.append(_row(now, actor, "create", obj, None, after, {}))
    for obj in session.dirty:
        if _is_audited(obj) and session.is_modified(obj, include_collections=False):
            before, diff = _before_values(obj)
            if set(diff) - set(_quiet(obj)):
                rows.append(_row(now, actor, "update", obj, before, snapshot(obj), diff))
    for obj in session.deleted:
        if _is_audited(obj):
            before, _ = _before_values(obj)
            rows.append(_row(now, actor, "delete", obj, before, None, {}))
    if rows:
        session.connection().execute(insert(AuditEvent), rows)


def _row(
    now: dt.datetime,
    actor: str,
    action: str,
    obj: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    diff: dict[str, Any],
) -> dict[str, Any]:
    if action == "create" and after is not None:
        diff = {key: [None, value] for key, value in after.items() if value is not None}
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "object_type": _object_type(obj),
        "object_id": _object_id(obj),
        "before": before,
        "after": after,
        "diff": diff,
    }


def audit_query(
    *,
    actor: str | None = None,
    object_type: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Select[AuditEvent]:
    """The audit events matching the filters, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if action:
        query = query.where(AuditEvent.action == action)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return query


def object_types(session: Session) -> list[str]:
    """Every object type the log names, for the filter menu."""
    return list(session.scalars(select(AuditEvent.object_type).distinct().order_by("object_type")))
