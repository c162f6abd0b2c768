"""Re-drive batches: the month's open batch, adding record IDs, the evidence, submitting.

A batch collects record IDs (with study and reason) over a month, from a pasted list, an
uploaded file, the API, the command line and the export itself (failed records, tables whose
automatic re-drives ran out). Submitting makes it a change request of kind `redrive`; an edit
after that revises the request, which drops its signoffs. Running it exports exactly those
IDs (`_run.py`) and verifies the result (`_verify.py`).

Functions take the ops session (and the record store's, where IDs are checked) and never
commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.records.models import Record
from dutydesk.runbooks.redrive.models import (
    EDITABLE,
    BatchState,
    ItemSource,
    RedriveBatch,
    RedriveItem,
)

if TYPE_CHECKING:
    from dutydesk.people.models import User
    from dutydesk.runbooks import ChangeRequest

KIND = "redrive"
MAX_ID_LENGTH = 100
MAX_REASON_LENGTH = 500
# A record ID: what Bridge and the record store use (UUIDs, upload IDs), nothing that could be
# a second ID or a path.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
LOOKUP_CHUNK = 500


class RedriveError(ValueError):
    """A re-drive request that cannot be done; `status` is the HTTP answer (404, 409, 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LineProblem:
    """One line of an ID list that was refused, and why."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class AddReport:
    """What adding a list did: IDs added, duplicates merged, lines refused (the rest kept)."""

    batch_id: int
    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[LineProblem] = field(default_factory=list)
    revised: bool = False  # the batch was submitted: its change request was revised

    def summary(self) -> str:
        """One sentence for a page, the command line or a log."""
        parts = [f"{len(self.added)} added"]
        if self.duplicates:
            shown = ", ".join(self.duplicates[:10]) + (", …" if len(self.duplicates) > 10 else "")
            plural = "s" if len(self.duplicates) != 1 else ""
            parts.append(f"{len(self.duplicates)} duplicate{plural} merged ({shown})")
        if self.refused:
            parts.append(f"{len(self.refused)} refused")
        text = f"Batch {self.batch_id}: " + ", ".join(parts) + "."
        if self.revised:
            text += " The change request was revised; its signoffs were dropped."
        return text


def month_of(moment: Any = None) -> str:
    """The batch month (`YYYY-MM`, UTC) of a moment, now by default."""
    return (moment or utcnow()).strftime("%Y-%m")


def open_batch(session: Session, *, actor: str, month: str | None = None) -> RedriveBatch:
    """The month's open batch, created when there is none (one open batch a month: a unique
    index, so two callers racing get the same batch)."""
    month = month or month_of()
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        raise RedriveError(f"month must be YYYY-MM, not {month!r}")
    query = select(RedriveBatch).where(RedriveBatch.open_month == month)
    batch = session.scalar(query)
    if batch is not None:
        return batch
    try:
        with session.begin_nested():
            batch = RedriveBatch(
                month=month, open_month=month, state=BatchState.open.value, created_by=actor
            )
            session.add(batch)
            session.flush()
    except IntegrityError:
        batch = session.scalar(query)
        if batch is None:
            raise
    return batch


def get_batch(session: Session, batch_id: int) -> RedriveBatch:
    """The batch with this id; RedriveError 404 when there is none."""
    batch = session.get(RedriveBatch, batch_id)
    if batch is None:
        raise RedriveError(f"no re-drive batch {batch_id}", 404)
    return batch


def batch_of_change(session: Session, change_id: int) -> RedriveBatch | None:
    """The batch a change request is about."""
    return session.scalar(select(RedriveBatch).where(RedriveBatch.change_id == change_id))


def list_batches(session: Session, *, limit: int = 50, offset: int = 0) -> list[RedriveBatch]:
    """Batches, newest first."""
    query = select(RedriveBatch).order_by(RedriveBatch.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def count_batches(session: Session) -> int:
    """How many batches there are."""
    return int(session.scalar(select(func.count()).select_from(RedriveBatch)) or 0)


def item_counts(session: Session, batch_ids: Sequence[int]) -> dict[int, int]:
    """How many IDs each batch holds."""
    if not batch_ids:
        return {}
    rows = session.execute(
        select(RedriveItem.batch_id, func.count())
        .where(RedriveItem.batch_id.in_(batch_ids))
        .group_by(RedriveItem.batch_id)
    )
    return {int(batch_id): int(count) for batch_id, count in rows}


def items(
    session: Session, batch: RedriveBatch, *, limit: int | None = None, offset: int = 0
) -> list[RedriveItem]:
    """The batch's IDs, ordered by study and ID."""
    query = (
        select(RedriveItem)
        .where(RedriveItem.batch_id == batch.id)
        .order_by(RedriveItem.study_id, RedriveItem.record_id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def record_ids(session: Session, batch: RedriveBatch) -> list[str]:
    """The batch's record IDs, sorted."""
    query = select(RedriveItem.record_id).where(RedriveItem.batch_id == batch.id)
    return sorted(session.scalars(query))


def counts_by_study_and_reason(session: Session, batch: RedriveBatch) -> list[tuple[str, str, int]]:
    """(study, reason, count) for the batch's IDs."""
    rows = session.execute(
        select(RedriveItem.study_id, RedriveItem.reason, func.count())
        .where(RedriveItem.batch_id == batch.id)
        .group_by(RedriveItem.study_id, RedriveItem.reason)
        .order_by(RedriveItem.study_id, RedriveItem.reason)
    )
    return [(study, reason, int(count)) for study, reason, count in rows]


def id_list_text(ids: Iterable[str]) -> str:
    """The ID list as the export reads it: sorted, one per line (what the SHA-256 is of)."""
    return "".join(f"{record_id}\n" for record_id in sorted(ids))


def evidence(session: Session, batch: RedriveBatch) -> dict[str, Any]:
    """What an approver signs: the ID count, the SHA-256 of the sorted list, counts per study."""
    per_study = dict(
        session.execute(
            select(RedriveItem.study_id, func.count())
            .where(RedriveItem.batch_id == batch.id)
            .group_by(RedriveItem.study_id)
            .order_by(RedriveItem.study_id)
        ).all()
    )
    ids = record_ids(session, batch)
    return {
        "batch": batch.id,
        "month": batch.month,
        "count": len(ids),
        "sha256": hashlib.sha256(id_list_text(ids).encode()).hexdigest(),
        "per_study": {str(study): int(count) for study, count in per_study.items()},
    }


def payload(batch: RedriveBatch, proof: dict[str, Any]) -> dict[str, Any]:
    """The change request's payload: which batch, and the list it was made from."""
    return {
        "batch_id": batch.id,
        "month": batch.month,
        "count": proof["count"],
        "sha256": proof["sha256"],
    }


def _title(batch: RedriveBatch, count: int) -> str:
    return f"Re-drive batch {batch.id} ({batch.month}): {count} record{'s' if count != 1 else ''}"


def _parse_lines(lines: Iterable[str]) -> tuple[list[tuple[int, str]], list[LineProblem]]:
    """(line number, ID) of each ID line; blank lines and `#` comments are skipped."""
    wanted: list[tuple[int, str]] = []
    refused: list[LineProblem] = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip().lstrip("\ufeff")
        if not text or text.startswith("#"):
            continue
        if len(text) > MAX_ID_LENGTH:
            refused.append(
                LineProblem(number, text[:40], f"longer than {MAX_ID_LENGTH} characters")
            )
        elif not ID_PATTERN.fullmatch(text):
            refused.append(
                LineProblem(number, text[:80], f"{text[:80]!r} is not a record ID (one per line)")
            )
        else:
            wanted.append((number, text))
    return wanted, refused


def chunked(ids: Iterable[str]) -> Iterator[list[str]]:
    """The distinct IDs, sorted, in lists short enough for one `IN (...)` of any database."""
    unique = sorted(set(ids))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        yield unique[start : start + LOOKUP_CHUNK]


def find_records(records: Session, ids: Iterable[str]) -> dict[str, str]:
    """The study of each of these record IDs that the record store has."""
    found: dict[str, str] = {}
    for chunk in chunked(ids):
        for record_id, study_id in records.execute(
            select(Record.id, Record.study_id).where(Record.id.in_(chunk))
        ):
            found[record_id] = study_id
    return found


def add_ids(
    session: Session,
    records: Session,
    batch: RedriveBatch,
    lines: Iterable[str],
    *,
    study: str | None,
    reason: str,
    source: ItemSource | str,
    actor: str,
    user: User | None = None,
) -> AddReport:
    """Add record IDs, one per line, to the batch with a study and reason.

    Each line must name a record the record store has (of `study`, when given); a refused line
    is reported with its number and the rest are kept. An ID already in the batch, or twice in
    the list, is merged into one item and reported as a duplicate. Adding to a submitted batch
    revises its change request (`user` is who edits: the signoffs are dropped).
    """
    source = ItemSource(source)
    reason = " ".join(reason.split())
    study = study.strip() if study else None
    if not reason:
        raise RedriveError("give a reason for the re-drive")
    if len(reason) > MAX_REASON_LENGTH:
        raise RedriveError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    _check_editable(batch, user)
    report = AddReport(batch_id=batch.id)
    wanted, report.refused = _parse_lines(lines)
    found = find_records(records, (record_id for _, record_id in wanted))
    existing = {
        item.record_id: item
        for chunk in chunked({record_id for _, record_id in wanted})
        for item in session.scalars(
            select(RedriveItem).where(
                RedriveItem.batch_id == batch.id, RedriveItem.record_id.in_(chunk)
            )
        )
    }
    seen: set[str] = set()
    for number, record_id in wanted:
        record_study = found.get(record_id)
        if record_study is None:
            report.refused.append(
                LineProblem(number, record_id, f"unknown record ID {record_id!r}")
            )
            continue
        if study and record_study != study:
            report.refused.append(
                LineProblem(
                    number,
                    record_id,
                    f"record {record_id!r} belongs to study {record_study!r}, not {study!r}",
                )
            )
            continue
        if record_id in seen or record_id in existing:
            if record_id not in report.duplicates:
                report.duplicates.append(record_id)
            if record_id in existing:
                existing[record_id].times_added += 1
            continue
        seen.add(record_id)
        session.add(
            RedriveItem(
                batch_id=batch.id,
                record_id=record_id,
                study_id=record_study,
                reason=reason,
                source=source.value,
                added_by=actor[:100],
            )
        )
        report.added.append(record_id)
    report.refused.sort(key=lambda problem: problem.line)
    if report.added:
        session.flush()
        batch.updated_at = utcnow()
        report.revised = _revise_if_submitted(session, batch, user)
    return report


def remove_ids(
    session: Session, batch: RedriveBatch, ids: Iterable[str], *, user: User | None
) -> int:
    """Take IDs out of the batch; a submitted batch's change request is revised."""
    _check_editable(batch, user)
    removed = 0
    for chunk in chunked(ids):
        for item in session.scalars(
            select(RedriveItem).where(
                RedriveItem.batch_id == batch.id, RedriveItem.record_id.in_(chunk)
            )
        ):
            session.delete(item)
            removed += 1
    if removed:
        session.flush()
        batch.updated_at = utcnow()
        _revise_if_submitted(session, batch, user)
    return removed


def _check_editable(batch: RedriveBatch, user: User | None) -> None:
    if batch.state not in EDITABLE:
        raise RedriveError(
            f"batch {batch.id} is {batch.state}; its IDs can no longer change "
            "(add them to this month's open batch)",
            409,
        )
    if batch.state != BatchState.open.value and user is None:
        raise RedriveError(
            f"batch {batch.id} is submitted: editing it revises its change request, "
            "which needs a person (a token without a user cannot)",
            403,
        )


def _revise_if_submitted(session: Session, batch: RedriveBatch, user: User | None) -> bool:
    """Revise the batch's change request with the new evidence (dropping its signoffs)."""
    if batch.state == BatchState.open.value or batch.change_id is None:
        return False
    from dutydesk.runbooks import ChangeRefused, get_change, revise_change

    assert user is not None  # _check_editable refused an edit without a person
    change = get_change(session, batch.change_id)
    proof = evidence(session, batch)
    try:
        revise_change(
            session,
            change,
            user,
            payload=payload(batch, proof),
            evidence=proof,
            title=_title(batch, proof["count"]),
        )
    except ChangeRefused as error:
        raise RedriveError(str(error), error.status) from None
    return True


def submit(session: Session, batch: RedriveBatch, user: User) -> ChangeRequest:
    """Make the open batch a change request of kind `redrive` and submit it for signoff.

    The month gets a new open batch when the next ID comes in.
    """
    from dutydesk.runbooks import ChangeRefused, open_change, submit_change

    if batch.state != BatchState.open.value:
        raise RedriveError(
            f"batch {batch.id} is {batch.state}; only an open batch is submitted", 409
        )
    proof = evidence(session, batch)
    if not proof["count"]:
        raise RedriveError(f"batch {batch.id} is empty; add record IDs before submitting")
    try:
        change = open_change(
            session,
            kind=KIND,
            title=_title(batch, proof["count"]),
            payload=payload(batch, proof),
            evidence=proof,
            author=user,
        )
        batch.change_id = change.id
        batch.open_month = None
        batch.state = BatchState.pending.value
        batch.updated_at = utcnow()
        session.flush()
        submit_change(session, change, user)
    except ChangeRefused as error:
        raise RedriveError(str(error), error.status) from None
    return change
