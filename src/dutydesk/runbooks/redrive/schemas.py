"""What the re-drive API takes and gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from dutydesk.runbooks.redrive.models import RedriveBatch, RedriveItem
from dutydesk.runbooks.redrive.service import AddReport

MAX_IDS_PER_CALL = 10_000


class OpenBatchIn(BaseModel):
    """Which month's open batch to open (this month when left out)."""

    month: str | None = Field(default=None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")


class AddIdsIn(BaseModel):
    """Record IDs to add, with their study and the reason for the re-drive."""

    ids: list[str] = Field(min_length=1, max_length=MAX_IDS_PER_CALL)
    study: str | None = Field(
        default=None, max_length=100, description="The study the IDs must belong to."
    )
    reason: str = Field(min_length=1, max_length=500)
    batch: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Batch id; this month's open batch if none."
    )


class RemoveIdsIn(BaseModel):
    """Record IDs to take out of a batch."""

    ids: list[str] = Field(min_length=1, max_length=MAX_IDS_PER_CALL)


class LineProblemOut(BaseModel):
    """A line of the list that was refused."""

    line: int
    text: str
    reason: str


class AddReportOut(BaseModel):
    """What adding did: added IDs, duplicates merged, refused lines (the rest were kept)."""

    batch: int
    added: list[str]
    duplicates: list[str]
    refused: list[LineProblemOut]
    revised: bool
    summary: str

    @classmethod
    def of(cls, report: AddReport) -> AddReportOut:
        """The report as the API gives it."""
        return cls(
            batch=report.batch_id,
            added=report.added,
            duplicates=report.duplicates,
            refused=[
                LineProblemOut(line=p.line, text=p.text, reason=p.reason) for p in report.refused
            ],
            revised=report.revised,
            summary=report.summary(),
        )


class BatchSummary(BaseModel):
    """A batch in a list."""

    id: int
    month: str
    state: str
    ids: int
    change_id: int | None
    export_run_id: int | None
    ticket_id: int | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    verified_at: dt.datetime | None

    @classmethod
    def of(cls, batch: RedriveBatch, count: int) -> BatchSummary:
        """A batch and its ID count."""
        return cls(
            id=batch.id,
            month=batch.month,
            state=batch.state,
            ids=count,
            change_id=batch.change_id,
            export_run_id=batch.export_run_id,
            ticket_id=batch.ticket_id,
            created_by=batch.created_by,
            created_at=batch.created_at,
            updated_at=batch.updated_at,
            verified_at=batch.verified_at,
        )


class CountOut(BaseModel):
    """How many IDs of one study came in for one reason."""

    study: str
    reason: str
    count: int


class SignoffOut(BaseModel):
    """One signoff of the batch's change request."""

    user: str
    role: str
    data_version: int
    evidence_hash: str
    at: dt.datetime
    dropped: bool


class BatchOut(BatchSummary):
    """A batch with its evidence, counts, change request and verification report."""

    evidence: dict[str, Any]
    counts: list[CountOut]
    change_state: str | None = None
    data_version: int | None = None
    evidence_hash: str | None = None
    signoffs: list[SignoffOut] = []
    verification: dict[str, Any] | None = None


class ItemOut(BaseModel):
    """One ID of a batch."""

    record_id: str
    study: str
    reason: str
    source: str
    times_added: int
    added_by: str
    added_at: dt.datetime

    @classmethod
    def of(cls, item: RedriveItem) -> ItemOut:
        """An item as the API gives it."""
        return cls(
            record_id=item.record_id,
            study=item.study_id,
            reason=item.reason,
            source=item.source,
            times_added=item.times_added,
            added_by=item.added_by,
            added_at=item.added_at,
        )


class SubmittedOut(BaseModel):
    """The change request a submitted batch became."""

    batch: int
    change_id: int
    change_state: str
    data_version: int
    evidence_hash: str
