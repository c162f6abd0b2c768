"""The one entry intake calls: a signal fires or resolves its alarm and lands on a ticket.

Functions take a session and never commit; the request, job or command owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# Below both this module and silences (which tells tickets when a silence ends); still part
# of this module's surface.
from dutydesk.alarms._ticket import SignalOutcome as SignalOutcome
from dutydesk.alarms._ticket import labels_of as labels_of
from dutydesk.alarms._ticket import land_on_ticket as land_on_ticket
from dutydesk.alarms.models import Alarm, AlarmState
from dutydesk.alarms.silences import covering_intake
from dutydesk.db import occurrence_update, utcnow
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket

MAX_FINGERPRINT = 200
MAX_TITLE = 300
INSERT_ATTEMPTS = 5


@dataclass(frozen=True)
class Signal:
    """One signal as intake hands it over: an alarm firing or resolving.

    `fingerprint` names the alarm; `ticket_key` (default: the fingerprint) names the ticket,
    so several alarms can share one. `resolved` is the source saying the problem is gone;
    `close_on_resolve` closes the ticket then (the integration's choice).
    """

    source: str
    fingerprint: str
    title: str
    severity: str = "warning"
    description: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    resolved: bool = False
    occurred_at: dt.datetime | None = None
    integration_id: int | None = None
    close_on_resolve: bool = False
    ticket_key: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    # Rule evaluation checks silences itself (with the rule's own labels); intake's signals
    # are checked here.
    check_silences: bool = True
    # The sender re-sends standing alerts (Alertmanager sends the whole group again every
    # group_interval and repeat_interval): a firing signal whose alarm is firing already since
    # the same moment (`occurred_at`) is that occurrence again, not a new one.
    resent_unchanged: bool = False


def _find(session: Session, fingerprint: str) -> Alarm | None:
    return session.scalar(
        select(Alarm)
        .where(Alarm.fingerprint == fingerprint)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _new_alarm_values(signal: Signal, fingerprint: str, at: dt.datetime) -> dict[str, Any]:
    """The columns of the alarm a signal makes on first sight."""
    return {
        "fingerprint": fingerprint,
        "ticket_key": (signal.ticket_key or fingerprint)[:MAX_FINGERPRINT],
        "integration_id": signal.integration_id,
        "source": signal.source[:100],
        "title": " ".join(signal.title.split())[:MAX_TITLE] or fingerprint,
        "description": signal.description,
        "severity": tickets.parse_severity(signal.severity),
        "labels": signal.labels,
        "annotations": signal.annotations,
        "state": AlarmState.resolved.value if signal.resolved else AlarmState.firing.value,
        "first_fired_at": at,
        "last_fired_at": at,
        "resolved_at": at if signal.resolved else None,
        "occurrences": 0 if signal.resolved else 1,
    }


def _new_alarm(session: Session, signal: Signal, fingerprint: str, at: dt.datetime) -> Alarm | None:
    alarm = Alarm(**_new_alarm_values(signal, fingerprint, at))
    try:
        with session.begin_nested():
            session.add(alarm)
            session.flush()
    except IntegrityError:
        return None  # a concurrent writer made it first: update theirs
    return alarm


def _others_firing(session: Session, alarm: Alarm) -> bool:
    """Whether another alarm sharing this one's ticket is still firing."""
    other = session.scalar(
        select(Alarm.id)
        .where(
            Alarm.ticket_key == alarm.ticket_key,
            Alarm.state == AlarmState.firing.value,
            Alarm.id != alarm.id,
        )
        .limit(1)
    )
    return other is not None


def raise_signal(session: Session, signal: Signal) -> SignalOutcome:
    """Fire or resolve the signal's alarm (made on first sight) and land it on its ticket.

    A firing signal adds an occurrence (or fires a resolved alarm again) and opens or updates
    the ticket. A resolving signal resolves the alarm and, once no other alarm of the same
    ticket is firing, tells the ticket (which closes it if the integration says so).
    """
    fingerprint = signal.fingerprint.strip()[:MAX_FINGERPRINT]
    if not fingerprint:
        raise tickets.TicketInputError("the signal has no fingerprint")
    at = signal.occurred_at or utcnow()
    if not signal.resolved:
        landed = _fire(session, signal, fingerprint, at)
        fired = session.get(Alarm, landed.alarm_id, populate_existing=True)
        assert fired is not None
        ticket = None
        if landed.told and landed.ticket_id is not None:
            ticket = session.get(Ticket, landed.ticket_id, populate_existing=True)
        return SignalOutcome(fired, ticket, landed.is_new)
    alarm: Alarm | None = None
    created = False
    for _attempt in range(INSERT_ATTEMPTS):
        alarm = _find(session, fingerprint)
        if alarm is not None:
            break
        alarm = _new_alarm(session, signal, fingerprint, at)
        if alarm is not None:
            created = True
            break
    if alarm is None:
        raise tickets.TicketConflict(f"could not record the alarm {fingerprint!r}; try again")
    was_firing = not created and alarm.state == AlarmState.firing.value
    if was_firing:
        alarm.state = AlarmState.resolved.value
        alarm.resolved_at = at
    if not was_firing or _others_firing(session, alarm):
        # Nothing to tell the ticket: the alarm was not firing (a repeated or unknown
        # resolve), or another alarm of the same ticket still is.
        return SignalOutcome(alarm, None, is_new=False)
    return land_on_ticket(
        session,
        alarm,
        at,
        payload=signal.payload,
        resolved=True,
        close_on_resolve=signal.close_on_resolve,
    )


def firing_changes(current: Mapping[str, Any], signal: Signal, at: dt.datetime) -> dict[str, Any]:
    """What a firing signal changes on its alarm, besides one more occurrence. `current` is
    the alarm's `last_fired_at`, `title`, `labels` and `annotations`."""
    changes: dict[str, Any] = {
        "state": AlarmState.firing.value,
        "resolved_at": None,
        "last_fired_at": max(current["last_fired_at"], at),
        "title": " ".join(signal.title.split())[:MAX_TITLE] or current["title"],
        "severity": tickets.parse_severity(signal.severity),
    }
    if signal.description:
        changes["description"] = signal.description
    if signal.labels != current["labels"]:
        changes["labels"] = signal.labels
    if signal.annotations != current["annotations"]:
        changes["annotations"] = signal.annotations
    return changes


_CURRENT = ("last_fired_at", "title", "labels", "annotations")
_alarms = cast(Table, Alarm.__table__)
_ALARM = (
    select(
        _alarms.c.id,
        _alarms.c.state,
        _alarms.c.ticket_key,
        _alarms.c.source,
        _alarms.c.description,
        _alarms.c.ticket_id,
        *(_alarms.c[name] for name in _CURRENT),
    )
    .where(_alarms.c.fingerprint == bindparam("fingerprint"))
    .with_for_update()
)
_NEW_ALARM = insert(_alarms).returning(_alarms.c.id)
_SET_TICKET = (
    update(_alarms)
    .where(_alarms.c.id == bindparam("alarm"))
    .values(ticket_id=bindparam("new_ticket_id"))
)


@dataclass(frozen=True)
class Landed:
    """A signal's outcome by id: its alarm, the alarm's ticket, whether the signal told that
    ticket (a silenced or repeated resolve does not) and whether it opened it."""

    alarm_id: int
    ticket_id: int | None
    is_new: bool
    told: bool


def land_signal(session: Session, signal: Signal) -> Landed:
    """`raise_signal`, answered by id: a firing signal loads neither alarm nor ticket."""
    fingerprint = signal.fingerprint.strip()[:MAX_FINGERPRINT]
    if signal.resolved or not fingerprint:
        outcome = raise_signal(session, signal)
        told = outcome.ticket is not None
        ticket_id = outcome.ticket.id if outcome.ticket is not None else outcome.alarm.ticket_id
        return Landed(outcome.alarm.id, ticket_id, outcome.is_new, told)
    return _fire(session, signal, fingerprint, signal.occurred_at or utcnow())


def _fire(session: Session, signal: Signal, fingerprint: str, at: dt.datetime) -> Landed:
    """A firing signal, by plain statements: the alarm made or updated (another occurrence, or
    firing again after a resolve), then, unless a silence covers it, landed on its ticket
    through `open_or_update_ticket`."""
    session.flush()  # the statements below must see, and not be undone by, pending changes
    connection = session.connection()
    changes: dict[str, Any] | None = None  # of an alarm that was there (None: made now)
    repeat = False  # the signal is an occurrence the alarm has counted already
    for _attempt in range(INSERT_ATTEMPTS):
        row = connection.execute(_ALARM, {"fingerprint": fingerprint}).first()
        if row is not None:
            changes = firing_changes(dict(row._mapping), signal, at)
            repeat = (
                signal.resent_unchanged
                and row.state == AlarmState.firing.value
                and row.last_fired_at == at
            )
            alarm_id, ticket_key, source = int(row.id), row.ticket_key, row.source
            labels = changes.get("labels", row.labels)
            description = changes.get("description", row.description)
            title, severity = changes["title"], changes["severity"]
            ticket_id: int | None = row.ticket_id
            break
        values = _new_alarm_values(signal, fingerprint, at)
        try:
            with connection.begin_nested():
                alarm_id = int(connection.scalar(_NEW_ALARM, values))
        except IntegrityError:
            continue  # a concurrent writer made it first: update theirs
        ticket_key, source, labels = values["ticket_key"], values["source"], values["labels"]
        title, severity, description = values["title"], values["severity"], values["description"]
        ticket_id = None
        break
    else:
        raise tickets.TicketConflict(f"could not record the alarm {fingerprint!r}; try again")
    # A silenced alarm is kept firing and its ticket not told: when the silence ends,
    # `land_on_ticket` tells it at once.
    told = not _silenced(session, signal, labels_of(labels, source, severity), at)
    is_new = False
    if told:
        outcome = tickets.open_or_update_ticket(
            session,
            tickets.Alarm(
                source=source,
                fingerprint=ticket_key,
                title=title,
                description=description,
                severity=severity,
                payload=signal.payload or {"labels": labels},
                occurred_at=at,
                repeat=repeat,
            ),
            load=False,
        )
        ticket_id, is_new = outcome.ticket_id, outcome.is_new
    if changes is not None:
        changes["ticket_id"] = ticket_id
        if repeat:  # the same occurrence: the alarm's changes, its count as it was
            connection.execute(update(_alarms).where(_alarms.c.id == alarm_id).values(changes))
        else:
            parameters = {f"new_{name}": value for name, value in changes.items()}
            connection.execute(
                occurrence_update(_alarms, frozenset(changes)), {"row_id": alarm_id, **parameters}
            )
    elif ticket_id is not None:
        connection.execute(_SET_TICKET, {"alarm": alarm_id, "new_ticket_id": ticket_id})
    return Landed(alarm_id, ticket_id, is_new=is_new, told=told)


def _silenced(session: Session, signal: Signal, labels: dict[str, str], at: dt.datetime) -> bool:
    if not signal.check_silences:
        return False
    return covering_intake(session, labels, at) is not None


def list_alarms(session: Session, *, state: str | None = None, limit: int = 100) -> list[Alarm]:
    """Alarms, most recently fired first, optionally in one state."""
    statement = select(Alarm).order_by(Alarm.last_fired_at.desc(), Alarm.id.desc())
    if state:
        statement = statement.where(Alarm.state == state)
    return list(session.scalars(statement.limit(limit)))
