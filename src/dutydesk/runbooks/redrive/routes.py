"""Re-drive API: batches, their IDs, submitting, verifying (approve and run: /api/v1/changes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy.orm import Session

from dutydesk.export.models import ExportRun
from dutydesk.export.service import FINISHED
from dutydesk.records.deps import RecordsDb
from dutydesk.runbooks.redrive import _run, _verify, service
from dutydesk.runbooks.redrive._web import (
    batch_or_404,
    batch_view,
    change_error,
    http_error,
    maybe_person,
    person,
)
from dutydesk.runbooks.redrive.models import RedriveBatch
from dutydesk.runbooks.redrive.pages import router as pages_router
from dutydesk.runbooks.redrive.schemas import (
    AddIdsIn,
    AddReportOut,
    BatchOut,
    BatchSummary,
    ItemOut,
    OpenBatchIn,
    RemoveIdsIn,
    SubmittedOut,
)
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Db, Operator, Principal, Viewer
from dutydesk.web.openapi import answers
from dutydesk.web.params import Offset, RowId

router = APIRouter()
router.include_router(pages_router)

Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/api/v1/redrives")
def list_batches(_who: Viewer, db: Db, limit: Limit = 50, offset: Offset = 0) -> list[BatchSummary]:
    """Re-drive batches, newest first, with how many IDs each holds."""
    batches = service.list_batches(db, limit=limit, offset=offset)
    counts = service.item_counts(db, [batch.id for batch in batches])
    return [BatchSummary.of(batch, counts.get(batch.id, 0)) for batch in batches]


@router.post("/api/v1/redrives", responses=answers(409))
def open_batch(who: Operator, db: Db, body: OpenBatchIn | None = None) -> BatchOut:
    """The month's open batch (this month by default), opened when there is none."""
    try:
        batch = service.open_batch(db, actor=caller_name(who), month=body.month if body else None)
    except service.RedriveError as error:
        raise http_error(error) from None
    return batch_view(db, batch)


def _add(
    db: Session, records: Session, who: Principal, batch: RedriveBatch, body: AddIdsIn
) -> AddReportOut:
    try:
        report = service.add_ids(
            db,
            records,
            batch,
            body.ids,
            study=body.study,
            reason=body.reason,
            source="api",
            actor=caller_name(who),
            user=maybe_person(db, who),
        )
    except service.RedriveError as error:
        raise http_error(error) from None
    return AddReportOut.of(report)


@router.post("/api/v1/redrives/items", responses=answers(404, 409))
def add_to_open_batch(who: Operator, db: Db, records: RecordsDb, body: AddIdsIn) -> AddReportOut:
    """Add IDs (one per list entry) to `batch`, or to this month's open batch. An entry that
    names no record of the store (or of `study`) is refused with its position; the rest are
    added; duplicates are merged and listed."""
    if body.batch is not None:
        batch = batch_or_404(db, body.batch)
    else:
        batch = service.open_batch(db, actor=caller_name(who))
    return _add(db, records, who, batch, body)


@router.get("/api/v1/redrives/{batch_id:int}")
def get_batch(_who: Viewer, db: Db, batch_id: RowId) -> BatchOut:
    """One batch: evidence, counts per study and reason, signoffs, run and verification."""
    return batch_view(db, batch_or_404(db, batch_id))


@router.get("/api/v1/redrives/{batch_id:int}/items")
def list_items(
    _who: Viewer, db: Db, batch_id: RowId, limit: Limit = 100, offset: Offset = 0
) -> list[ItemOut]:
    """The batch's IDs, by study and ID."""
    batch = batch_or_404(db, batch_id)
    return [ItemOut.of(item) for item in service.items(db, batch, limit=limit, offset=offset)]


@router.post("/api/v1/redrives/{batch_id:int}/items", responses=answers(409))
def add_items(
    who: Operator, db: Db, records: RecordsDb, batch_id: RowId, body: AddIdsIn
) -> AddReportOut:
    """Add IDs to this batch (a submitted one: its change request is revised, signoffs dropped)."""
    if body.batch is not None and body.batch != batch_id:
        raise HTTPException(422, f"the body names batch {body.batch}, the path batch {batch_id}")
    return _add(db, records, who, batch_or_404(db, batch_id), body)


@router.post("/api/v1/redrives/{batch_id:int}/items/remove", responses=answers(409))
def remove_items(who: Operator, db: Db, batch_id: RowId, body: RemoveIdsIn) -> BatchOut:
    """Take IDs out of the batch (a submitted one: its change request is revised)."""
    batch = batch_or_404(db, batch_id)
    try:
        service.remove_ids(db, batch, body.ids, user=maybe_person(db, who))
    except service.RedriveError as error:
        raise http_error(error) from None
    return batch_view(db, batch)


@router.post("/api/v1/redrives/{batch_id:int}/submit", responses=answers(409))
def submit(who: Operator, db: Db, batch_id: RowId) -> SubmittedOut:
    """Submit the open batch as a `redrive` change request; its signers are notified."""
    batch = batch_or_404(db, batch_id)
    user = person(db, who, "submitting a batch")
    try:
        change = service.submit(db, batch, user)
    except service.RedriveError as error:
        raise http_error(error) from None
    return SubmittedOut(
        batch=batch.id,
        change_id=change.id,
        change_state=change.state,
        data_version=change.data_version,
        evidence_hash=change.evidence_hash,
    )


def verify_now(db: Session, records: Session, batch: RedriveBatch) -> None:
    """Verify a batch whose export run has ended; a 409 says why it cannot be yet."""
    if batch.export_run_id is None and batch.verification is None:
        raise HTTPException(409, f"batch {batch.id} has not run; there is nothing to verify")
    run = db.get(ExportRun, batch.export_run_id) if batch.export_run_id else None
    if run is not None and run.state not in FINISHED:
        raise HTTPException(409, f"export run {run.id} of batch {batch.id} is still {run.state}")
    try:
        _verify.verify(db, records, batch)
    except service.RedriveError as error:
        raise change_error(error) from None


@router.post("/api/v1/redrives/{batch_id:int}/verify", responses=answers(409))
def verify(_who: Operator, db: Db, records: RecordsDb, batch_id: RowId) -> BatchOut:
    """Check every ID of the batch against its export run again (sharing scopes as they are
    now); the batch becomes done, or failed with a ticket when IDs are missing."""
    batch = batch_or_404(db, batch_id)
    verify_now(db, records, batch)
    return batch_view(db, batch)


@router.post("/api/v1/redrives/{batch_id:int}/export-again", responses=answers(409))
def export_again(who: Operator, db: Db, batch_id: RowId) -> BatchOut:
    """Export a batch that has run (done or failed) once more, the approved list unchanged:
    its files replace the earlier run's of that export date; verified when it ends."""
    batch = batch_or_404(db, batch_id)
    user = person(db, who, "exporting a batch again")
    try:
        _run.export_again(db, batch, user)
    except service.RedriveError as error:
        raise http_error(error) from None
    return batch_view(db, batch)
