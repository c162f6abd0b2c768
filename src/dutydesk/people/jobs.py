"""People's periodic clean-up."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.jobs import service as jobs
from dutydesk.people.models import LoginFailure, WebSession


@registry.due("people.prune")
def enqueue_prune(session: Session) -> None:
    """Hourly: enqueue the removal of expired sessions and old failed logins."""
    if jobs.is_due(session, "people.prune", dt.timedelta(hours=1)):
        jobs.enqueue(session, "people.prune")


@registry.job_kind("people.prune")
def prune_sessions(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Delete expired console sessions and failed logins older than an hour."""
    now = utcnow()
    sessions = session.execute(delete(WebSession).where(WebSession.expires_at < now))
    failures = session.execute(
        delete(LoginFailure).where(LoginFailure.at < now - dt.timedelta(hours=1))
    )
    return {
        "sessions": int(getattr(sessions, "rowcount", 0)),
        "login_failures": int(getattr(failures, "rowcount", 0)),
    }
