"""Watch the watcher: every critical ticket must get a notice or escalation step in time."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import httpx
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.settings import get_settings
from dutydesk.tickets.models import EventKind, Severity, Ticket, TicketEvent

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    """The self-check's answer: ok, or the keys of critical tickets nobody was told about."""

    at: dt.datetime
    unnoticed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every critical ticket got a notice or escalation step in time."""
        return not self.unnoticed


def check(session: Session, *, now: dt.datetime | None = None) -> CheckResult:
    """Critical open tickets older than DUTYDESK_WATCHDOG_MINUTES without a notice."""
    now = now or utcnow()
    limit = now - dt.timedelta(minutes=get_settings().watchdog_minutes)
    noticed = exists().where(
        TicketEvent.ticket_id == Ticket.id, TicketEvent.kind == EventKind.notified.value
    )
    keys = session.scalars(
        select(Ticket.id)
        .where(
            Ticket.severity == Severity.critical.value,
            Ticket.status != "closed",
            Ticket.first_seen_at <= limit,
            ~noticed,
        )
        .order_by(Ticket.id)
    ).all()
    return CheckResult(at=now, unnoticed=[f"DD-{key}" for key in keys])


def ping(result: CheckResult) -> None:
    """Tell the outside heartbeat URL how the self-check went, when one is set."""
    url = get_settings().watchdog_url
    if not url:
        return
    target = url if result.ok else url.rstrip("/") + "/fail"
    try:
        httpx.post(target, json={"ok": result.ok, "unnoticed": result.unnoticed}, timeout=10)
    except httpx.HTTPError as error:
        log.warning("could not ping the watchdog URL: %s", error)
