"""Diagnose's background work: every DUTYDESK_SUPERVISOR_POLL_SECONDS the beat tick enqueues
one poll of the registered Supervisor servers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.diagnose import scrape, supervisors
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


SCRAPE = "diagnose.scrape"


@registry.due(SCRAPE)
def enqueue_scrapes(session: Session) -> None:
    """While any scrape target is due, enqueue one scrape of the due targets (at most one a
    few seconds, since targets' intervals are 5 seconds or more)."""
    if scrape.due_targets(session) and jobs.is_due(session, SCRAPE, dt.timedelta(seconds=5)):
        jobs.enqueue(session, SCRAPE)


@registry.job_kind(SCRAPE)
def scrape_targets(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Scrape every due target into the metric series; one that fails keeps its error."""
    return scrape.scrape_due(session)
