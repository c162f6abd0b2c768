"""Diagnose's background work: every DUTYDESK_SUPERVISOR_POLL_SECONDS the beat tick enqueues
one poll of the registered Supervisor servers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.diagnose import supervisors
from dutydesk.diagnose.models import SupervisorServer
from dutydesk.jobs import service as jobs
from dutydesk.settings import get_settings

POLL = "diagnose.supervisor_poll"


@registry.due(POLL)
def enqueue_supervisor_poll(session: Session) -> None:
    """While any Supervisor server is enabled, enqueue a poll every poll interval."""
    every = dt.timedelta(seconds=get_settings().supervisor_poll_seconds)
    anything = session.scalar(
        select(SupervisorServer.id).where(SupervisorServer.enabled.is_(True)).limit(1)
    )
    if anything is not None and jobs.is_due(session, POLL, every):
        jobs.enqueue(session, POLL)


@registry.job_kind(POLL)
def poll_supervisors(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Poll every enabled Supervisor server; its process-state troubles become signals."""
    return supervisors.poll_all(session)
