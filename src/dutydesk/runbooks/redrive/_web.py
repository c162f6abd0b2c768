"""What the re-drive API and pages share: errors as HTTP answers, the caller, a batch's view."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException
from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.runbooks.redrive import service
from dutydesk.runbooks.redrive._verify import PRESENT
from dutydesk.runbooks.redrive.models import RedriveBatch
from dutydesk.runbooks.redrive.schemas import BatchOut, BatchSummary, CountOut, SignoffOut
from dutydesk.web.access import Principal


def http_error(error: service.RedriveError) -> HTTPException:
    """The HTTP answer for a refused re-drive request."""
    return HTTPException(error.status, str(error))


def change_error(error: Exception) -> HTTPException:
    """The HTTP answer for a refusal of the change-request engine."""
    return HTTPException(int(getattr(error, "status", 409)), str(error))


def batch_or_404(db: Session, batch_id: int) -> RedriveBatch:
    """The batch named in the path, or a 404."""
    try:
        return service.get_batch(db, batch_id)
    except service.RedriveError as error:
        raise http_error(error) from None


def person(db: Session, who: Principal, doing: str) -> User:
    """The caller as a user; a token without a user is refused (403) for `doing`."""
    user = db.get(User, who.user.id) if who.user else None
    if user is None:
        raise HTTPException(403, f"{doing} needs a person: sign in or use a user's token")
    return user


def maybe_person(db: Session, who: Principal) -> User | None:
    """The caller as a user, if the caller is one."""
    return db.get(User, who.user.id) if who.user else None


def batch_view(db: Session, batch: RedriveBatch) -> BatchOut:
    """The batch with its evidence, counts, change request and report."""
    from dutydesk.runbooks import get_change

    count = service.item_counts(db, [batch.id]).get(batch.id, 0)
    summary = BatchSummary.of(batch, count)
    extra: dict[str, Any] = {}
    if batch.change_id is not None:
        change = get_change(db, batch.change_id)
        extra = {
            "change_state": change.state,
            "data_version": change.data_version,
            "evidence_hash": change.evidence_hash,
            "signoffs": [
                SignoffOut(
                    user=signoff.user.username,
                    role=signoff.role,
                    data_version=signoff.data_version,
                    evidence_hash=signoff.evidence_hash,
                    at=signoff.at,
                    dropped=signoff.dropped_at is not None,
                )
                for signoff in sorted(change.signoffs, key=lambda s: s.at)
            ],
        }
    return BatchOut(
        **summary.model_dump(),
        evidence=service.evidence(db, batch),
        counts=[
            CountOut(study=study, reason=reason, count=n)
            for study, reason, n in service.counts_by_study_and_reason(db, batch)
        ],
        verification=batch.verification,
        **extra,
    )


def report_csv(db: Session, batch: RedriveBatch) -> Iterator[str]:
    """The verification report as CSV: every ID with its study, outcome and detail."""
    report = batch.verification or {}
    not_present = {row[0]: row for row in report.get("not_present", [])}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["record_id", "study", "reason_added", "outcome", "detail"])
    yield buffer.getvalue()
    for item in service.items(db, batch):
        buffer.seek(0)
        buffer.truncate()
        row = not_present.get(item.record_id)
        outcome, detail = (row[2], row[3]) if row else (PRESENT if report else "not verified", "")
        writer.writerow(_safe([item.record_id, item.study_id, item.reason, outcome, detail]))
        yield buffer.getvalue()


def _safe(cells: list[str]) -> list[str]:
    """Cells a spreadsheet would not take for a formula."""
    return ["'" + cell if cell[:1] in ("=", "+", "-", "@") else cell for cell in cells]
