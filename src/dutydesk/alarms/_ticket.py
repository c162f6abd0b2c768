"""An alarm onto its ticket: what the alarm service and silences (which tell tickets when a
silence ends) both need, below both of them.

Functions take a session and never commit; the request, job or command owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket


@dataclass(frozen=True)
class SignalOutcome:
    """What a signal did: its alarm, the ticket it landed on (if any), whether that is new."""

    alarm: Alarm
    ticket: Ticket | None
    is_new: bool


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


def labels_of(labels: dict[str, Any], source: str, severity: str) -> dict[str, str]:
    """The labels silences match an alarm from intake by: its own, plus source and severity."""
    plain = {str(k): str(v) for k, v in labels.items()}
    return {**plain, "source": source, "severity": severity}
