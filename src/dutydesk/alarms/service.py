"""The one entry intake calls: a signal fires or resolves its alarm and lands on a ticket.

Functions take a session and never commit; the request, job or command owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm, AlarmState
from dutydesk.db import utcnow
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


@dataclass(frozen=True)
class SignalOutcome:
    """What a signal did: its alarm, the ticket it landed on (if any), whether that is new."""

    alarm: Alarm
    ticket: Ticket | None
    is_new: bool


def _find(session: Session, fingerprint: str) -> Alarm | None:
    return session.scalar(
        select(Alarm)
        .where(Alarm.fingerprint == fingerprint)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _new_alarm(session: Session, signal: Signal, fingerprint: str, at: dt.datetime) -> Alarm | None:
    alarm = Alarm(
        fingerprint=fingerprint,
        ticket_key=(signal.ticket_key or fingerprint)[:MAX_FINGERPRINT],
        integration_id=signal.integration_id,
        source=signal.source[:100],
        title=" ".join(signal.title.split())[:MAX_TITLE] or fingerprint,
        description=signal.description,
        severity=tickets.parse_severity(signal.severity),
        labels=signal.labels,
        annotations=signal.annotations,
        state=AlarmState.resolved.value if signal.resolved else AlarmState.firing.value,
        first_fired_at=at,
        last_fired_at=at,
        resolved_at=at if signal.resolved else None,
        occurrences=0 if signal.resolved else 1,
    )
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
    if not created:
        _update(alarm, signal, at)
    if signal.resolved and (not was_firing or _others_firing(session, alarm)):
        # Nothing to tell the ticket: the alarm was not firing (a repeated or unknown
        # resolve), or another alarm of the same ticket still is.
        return SignalOutcome(alarm, None, is_new=False)
    if not signal.resolved and signal.check_silences:
        from dutydesk.alarms.silences import silencing

        if silencing(session, alarm, at) is not None:
            # Kept firing, not told: when the silence ends, `land_on_ticket` tells it at once.
            return SignalOutcome(alarm, None, is_new=False)
    return land_on_ticket(
        session,
        alarm,
        at,
        payload=signal.payload,
        resolved=signal.resolved,
        close_on_resolve=signal.close_on_resolve,
    )


def land_on_ticket(
    session: Session,
    alarm: Alarm,
    at: dt.datetime,
    *,
    payload: dict[str, Any] | None = None,
    resolved: bool = False,
    close_on_resolve: bool = False,
) -> SignalOutcome:
    """Open or update the alarm's ticket with the alarm as it stands (or resolve it)."""
    outcome = tickets.open_or_update_ticket(
        session,
        tickets.Alarm(
            source=alarm.source,
            fingerprint=alarm.ticket_key,
            title=alarm.title,
            description=alarm.description,
            severity=alarm.severity,
            payload=payload or {"labels": alarm.labels},
            occurred_at=at,
            resolved=resolved,
            close_on_resolve=close_on_resolve,
        ),
    )
    if outcome.ticket is not None:
        alarm.ticket_id = outcome.ticket.id
    return SignalOutcome(alarm, outcome.ticket, outcome.is_new)


def _update(alarm: Alarm, signal: Signal, at: dt.datetime) -> None:
    if signal.resolved:
        if alarm.state == AlarmState.firing.value:
            alarm.state = AlarmState.resolved.value
            alarm.resolved_at = at
        return
    alarm.state = AlarmState.firing.value
    alarm.resolved_at = None
    alarm.occurrences += 1
    alarm.last_fired_at = max(alarm.last_fired_at, at)
    alarm.title = " ".join(signal.title.split())[:MAX_TITLE] or alarm.title
    alarm.severity = tickets.parse_severity(signal.severity)
    if signal.description:
        alarm.description = signal.description
    if signal.labels != alarm.labels:
        alarm.labels = signal.labels
    if signal.annotations != alarm.annotations:
        alarm.annotations = signal.annotations


def list_alarms(session: Session, *, state: str | None = None, limit: int = 100) -> list[Alarm]:
    """Alarms, most recently fired first, optionally in one state."""
    statement = select(Alarm).order_by(Alarm.last_fired_at.desc(), Alarm.id.desc())
    if state:
        statement = statement.where(Alarm.state == state)
    return list(session.scalars(statement.limit(limit)))
