"""API to put records and attachments into the record store, and to list its studies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dutydesk.records import service
from dutydesk.records.deps import RecordsDb
from dutydesk.records.models import Study
from dutydesk.records.schemas import AttachmentStoredOut, RecordStoredOut, StudyOut
from dutydesk.web.access import Upload, Viewer
from dutydesk.web.openapi import answers

router = APIRouter()


def _refusal(error: service.RecordError) -> HTTPException:
    """404 for an unknown study or schema, 409 for a stored id, 422 for anything else wrong."""
    if isinstance(error, service.UnknownReference):
        return HTTPException(404, str(error))
    return HTTPException(409 if isinstance(error, service.AlreadyStored) else 422, str(error))


@router.post("/api/v1/records", status_code=201, responses=answers(404, 409, 503))
def post_record(_who: Upload, db: RecordsDb, payload: Annotated[Any, Body()]) -> RecordStoredOut:
    """Store one record; values of the wrong type are kept and described, not refused."""
    try:
        record = service.add_record(db, payload)
    except service.RecordError as error:
        raise _refusal(error) from None
    return RecordStoredOut(id=record.id, validation_errors=record.validation_errors)


@router.post("/api/v1/records/attachments", status_code=201, responses=answers(404, 409, 422, 503))
async def post_attachment(request: Request, _who: Upload, db: RecordsDb) -> AttachmentStoredOut:
    """Store the request body as an attachment of its Content-Type; answers its id and MD5."""
    content = await request.body()
    content_type = request.headers.get("content-type", "application/octet-stream")
    try:
        attachment = await run_in_threadpool(service.add_attachment, db, content, content_type)
    except service.RecordError as error:
        raise _refusal(error) from None
    return AttachmentStoredOut(id=attachment.id, size=attachment.size, md5=attachment.md5)


@router.get("/api/v1/records/studies", responses=answers(503))
def list_studies(_who: Viewer, db: RecordsDb) -> list[StudyOut]:
    """Every study with its export settings and record count."""
    counts = service.record_counts(db)
    return [
        StudyOut(
            id=study.id,
            name=study.name,
            project=study.project,
            data_access_team=study.data_access_team,
            configured=study.project is not None,
            disable_export=study.disable_export,
            uses_custom_export_schedule=study.uses_custom_export_schedule,
            study_id_excluded_in_export=study.study_id_excluded_in_export,
            records=counts.get(study.id, 0),
        )
        for study in db.scalars(select(Study).order_by(Study.id))
    ]
