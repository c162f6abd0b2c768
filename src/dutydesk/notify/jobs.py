"""Job kinds and due work of notifications: escalations each tick, deliveries by a job, and
the first notice of a ticket started as soon as the transaction that opens it commits."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery.signals import worker_ready
from sqlalchemy import Engine, select
from sqlalchemy.event import listens_for
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.notify import _send, escalation, service, watchdog
from dutydesk.notify.models import EscalationPolicy
from dutydesk.settings import get_settings
from dutydesk.tickets.service import take_opened

log = logging.getLogger(__name__)
# Notices sent at the same time by one delivery job.
_SENDERS = 8


@registry.job_kind("notify.deliver_due")
def deliver_due_job(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Send every due delivery; each is claimed first, so running this twice is harmless."""
    ids = service.due_deliveries(session)
    # Each delivery is claimed and recorded in transactions of its own, on the same database.
    session.commit()
    factory = sessionmaker(
        bind=session.get_bind(), expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    if isinstance(session.get_bind(), Engine) and len(ids) > 1:
        # Receivers answer at their own pace: one slow channel does not hold up the others.
        with ThreadPoolExecutor(min(len(ids), _SENDERS), thread_name_prefix="notify") as pool:
            states = list(pool.map(lambda i: service.deliver(factory, i), ids))
    else:  # a session on one connection (a test's) cannot be shared by threads
        states = [service.deliver(factory, delivery_id) for delivery_id in ids]
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


@worker_ready.connect  # type: ignore[untyped-decorator]
def _load_apprise_plugins(**_signal: Any) -> None:
    """As the worker starts, have apprise find its plugins aside (seconds on a busy machine)."""
    threading.Thread(target=_send.load_apprise_plugins, daemon=True, name="apprise").start()


@registry.job_kind("notify.escalate")
def escalate_job(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Start the escalations of the tickets in `args["tickets"]`, run their due steps and send
    every due notice; running it twice (or after the tick did the same) sends nothing twice."""
    from dutydesk.db import write_phase

    write_phase(session)  # it reads, then writes: with SQLite, hold the write lock from here
    opened_at = dt.datetime.fromisoformat(args["opened_at"]) if "opened_at" in args else None
    ran = escalation.escalate_opened(
        session, [int(i) for i in args.get("tickets", [])], opened_at=opened_at
    )
    return {"steps": ran, **deliver_due_job(session, {})}


@listens_for(Session, "before_commit")
def _escalate_at_commit(session: Session) -> None:
    """A transaction that opened tickets adds, before it commits, the job that escalates them;
    its broker message goes out right after the commit. The job row is the truth: if the
    message is lost, the sweep sends it again, and the beat tick escalates the tickets anyway."""
    from dutydesk.jobs.service import enqueue

    opened = take_opened(session)
    if not opened or session.scalar(select(EscalationPolicy.id).limit(1)) is None:
        return
    # With a group wait, the job runs when the first step falls due, counted from the opening.
    enqueue(
        session,
        "notify.escalate",
        {"tickets": opened, "opened_at": utcnow().isoformat()},
        created_by="notify:ticket opened",
        delay_seconds=get_settings().notify_group_wait_seconds,
    )


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
