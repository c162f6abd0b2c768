"""Job kinds and due work of the audit: change notices at once, and the daily digest."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.audit import notices


@registry.job_kind("audit.change_notices")
def change_notices_job(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Record the notices of new changes and send the due deliveries; running it twice (or
    after a tick did the same) sends nothing twice."""
    from dutydesk.db import write_phase
    from dutydesk.notify.jobs import deliver_due_job

    write_phase(session)  # it reads, then writes: with SQLite, hold the write lock from here
    counts = notices.record_notices(session)
    return {**counts, **deliver_due_job(session, {})}


@registry.due("audit.change_notices")
def change_notices_due(session: Session) -> None:
    """Record notices of changes no job recorded yet, and send yesterday's digest once; the
    notify tick then sends their deliveries."""
    notices.record_notices(session)
    notices.send_digest(session)
