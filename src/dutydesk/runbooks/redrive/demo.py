"""Demo: this month's re-drive batch, open, with a dozen records of the demo studies."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.records.models import Record
from dutydesk.records.store import records_session_factory
from dutydesk.runbooks.redrive import service
from dutydesk.runbooks.redrive.models import RedriveBatch

DEMO_STUDY = "study-b"
DEMO_IDS = 12
DEMO_REASON = "DEMO-1: uploads received while the attachment store was read-only"


@registry.demo_seeder("runbooks.redrive")
def seed_redrive(session: Session, context: registry.DemoContext) -> None:
    """This month's open batch with some of one study's records, once."""
    if session.scalar(select(func.count()).select_from(RedriveBatch)):
        return
    with records_session_factory()() as records:
        ids = list(
            records.scalars(
                select(Record.id)
                .where(Record.study_id == DEMO_STUDY)
                .order_by(Record.uploaded_on.desc(), Record.id)
                .limit(DEMO_IDS)
            )
        )
        if not ids:
            return
        batch = service.open_batch(session, actor="demo")
        report = service.add_ids(
            session,
            records,
            batch,
            ids,
            study=DEMO_STUDY,
            reason=DEMO_REASON,
            source="form",
            actor="olga",
        )
    context.note(f"re-drive batch {batch.id} ({batch.month}) with {len(report.added)} IDs")
