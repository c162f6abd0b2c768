"""Job kinds and due work of notifications: escalations each tick, deliveries by a job."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.notify import escalation, service, watchdog

log = logging.getLogger(__name__)


@registry.job_kind("notify.deliver_due")
def deliver_due_job(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Send every due delivery; each is claimed first, so running this twice is harmless."""
    ids = service.due_deliveries(session)
    # Each delivery is claimed and recorded in transactions of its own, on the same database.
    session.commit()
    factory = sessionmaker(
        bind=session.get_bind(), expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    counts: dict[str, int] = {}
    for delivery_id in ids:
        state = service.deliver(factory, delivery_id)
        counts[state] = counts.get(state, 0) + 1
    return counts


@registry.due("notify")
def notify_due(session: Session) -> None:
    """Run escalation steps that are due and start a delivery job when notices wait."""
    from dutydesk.jobs.service import enqueue

    escalation.run_escalations(session)
    if service.due_deliveries(session, limit=1):
        enqueue(session, "notify.deliver_due", {}, created_by="tick:notify")


@registry.due("notify.watchdog")
def watchdog_due(session: Session) -> None:
    """Check every critical ticket was noticed in time, at most once a minute."""
    from dutydesk.jobs.service import is_due

    if is_due(session, "notify.watchdog", dt.timedelta(minutes=1)):
        watchdog.ping(watchdog.check(session))
