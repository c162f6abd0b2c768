"""Re-drive registrations: the `redrive` change kind, the export's end-of-run listener, and the
tick that opens each month's batch on the 1st (and verifies batches whose run failed)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.export import service as export_service
from dutydesk.export.models import ExportRun
from dutydesk.jobs import service as jobs
from dutydesk.runbooks.redrive import _run, _verify, service
from dutydesk.runbooks.redrive.models import BatchState, RedriveBatch

TICK_ACTOR = "beat"
CHECK_EVERY = dt.timedelta(minutes=5)

_run.register()
if _run.when_export_ends not in export_service.when_run_ends:
    export_service.when_run_ends.append(_run.when_export_ends)


@registry.due("redrive.month")
def open_month_batch(session: Session) -> None:
    """Open this month's batch when there is none (on the 1st, or when the last was submitted
    in the month); verify running batches whose export run has ended without verifying them
    (it failed outright, or the batch could not be verified at its end)."""
    if not jobs.is_due(session, "redrive.month", CHECK_EVERY):
        return
    service.open_batch(session, actor=TICK_ACTOR)
    stuck = session.scalars(
        select(RedriveBatch)
        .join(ExportRun, ExportRun.id == RedriveBatch.export_run_id)
        .where(
            RedriveBatch.state == BatchState.running.value,
            ExportRun.state.in_(export_service.FINISHED),
        )
    )
    for batch in list(stuck):
        with _run.records_session() as records:
            _verify.verify(session, records, batch)
