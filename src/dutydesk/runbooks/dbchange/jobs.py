"""The dry-run job: read what the run needs, run the script with no ops-database transaction
open, then record the result (a thin wrapper around the service)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.people.models import User
from dutydesk.runbooks.dbchange import service


@registry.job_kind(service.DRY_RUN_JOB)
def dry_run_job(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Dry-run change `change_id` as user `user_id`; the figures' outcome."""
    change_id, user_id = int(args["change_id"]), int(args["user_id"])
    # The plan is read with a session of its own, closed before the script runs, so that no
    # transaction of the ops database stays open (and no SQLite lock held) meanwhile.
    with sessionmaker(bind=session.get_bind())() as reader:
        try:
            plan = service.prepare_dry_run(reader, service.change_of(reader, change_id))
        except service.DbChangeError as error:
            return {"skipped": str(error)}
    figures = service.execute_dry_run(plan)
    actor = session.get(User, user_id)
    if actor is None:
        return {"skipped": f"no user #{user_id}"}
    try:
        service.record_dry_run(session, service.change_of(session, change_id), actor, plan, figures)
    except service.DbChangeError as error:
        return {"skipped": str(error)}
    return {"change_id": change_id, "ok": figures["ok"], "error": figures["error"]}
