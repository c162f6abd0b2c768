"""Tickets' periodic clean-up: the timeline entries of old alarm occurrences."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import delete_in_batches, utcnow
from dutydesk.jobs import service as jobs
from dutydesk.settings import get_settings
from dutydesk.tickets.models import EventKind, TicketEvent

BATCH = 10_000  # rows per delete: short write locks


@registry.due("tickets.prune")
def enqueue_prune(session: Session) -> None:
    """Hourly, when DUTYDESK_OCCURRENCE_EVENTS_KEEP_DAYS is set: enqueue the clean-up."""
    if get_settings().occurrence_events_keep_days and jobs.is_due(
        session, "tickets.prune", dt.timedelta(hours=1)
    ):
        jobs.enqueue(session, "tickets.prune")


def prune_occurrence_events(session: Session, *, before: dt.datetime) -> int:
    """Delete the timeline entries of alarm occurrences older than `before` (every other kind
    of entry stays, and each ticket keeps its count and first and last seen)."""
    events = cast(Table, TicketEvent.__table__)
    old = (events.c.kind == EventKind.occurrence.value) & (events.c.at < before)
    return delete_in_batches(session, events, old, batch=BATCH)


@registry.job_kind("tickets.prune")
def prune(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Delete occurrence entries older than DUTYDESK_OCCURRENCE_EVENTS_KEEP_DAYS."""
    keep_days = get_settings().occurrence_events_keep_days
    if not keep_days:
        return {"occurrence_events_deleted": 0}
    before = utcnow() - dt.timedelta(days=keep_days)
    return {"occurrence_events_deleted": prune_occurrence_events(session, before=before)}
