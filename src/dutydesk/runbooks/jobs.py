"""The run job of a change request: a thin wrapper around the service."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.runbooks import service


@registry.job_kind(service.RUN_JOB)
def run_change_job(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Re-check the rules, claim the request and execute it (once, however many workers race)."""
    return service.execute_run(session, int(args["change_id"]), args.get("data_version"))
