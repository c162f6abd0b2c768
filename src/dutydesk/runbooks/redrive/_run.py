"""Running a re-drive batch, and what the export tells the batches.

The change request's run writes the batch's sorted ID list where the export reads record-ID
lists and starts an export request over exactly those IDs (shape C, `recordIdOverride`, the
batch in its tag): the same list gives the same request, so a second run replaces the first
run's files instead of adding rows. When the export run ends, the batch is verified.

Every export run's end is also where the open batch learns of records to re-drive: records
the run counted as failed, and the records of tables whose automatic re-drives ran out.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dutydesk.db import engine_for
from dutydesk.export.models import ExportRun, StudyPart
from dutydesk.export.request import parse_request
from dutydesk.records.models import Record, Study
from dutydesk.runbooks.redrive import _verify, service
from dutydesk.runbooks.redrive.models import BatchState, ItemSource, RedriveBatch
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)
EXPORT_ACTOR = "export"
# The part of a table key after `<study>-`: `<schema>-v<revision>`.
SCHEMA_TABLE = re.compile(r"(.+)-v([0-9]+)")


def records_session(records_url: str | None = None) -> Session:
    from dutydesk.records.store import records_session_factory

    url = records_url or get_settings().effective_records_url
    return records_session_factory(engine_for(url))()


def id_list_location(batch: RedriveBatch, sha256: str) -> str:
    """Where the batch's ID list is written for the export to read (named by its content)."""
    settings = get_settings()
    folder = settings.redrive_lists or str(settings.home_path / "redrive-lists")
    return f"{folder.rstrip('/')}/batch-{batch.id}-{sha256[:16]}.txt"


def _write_list(location: str, text: str) -> None:
    import fsspec

    with fsspec.open(location, "wt", auto_mkdir=True) as file:
        file.write(text)


def tag_of(batch: RedriveBatch) -> str:
    """The export request's tag: which batch it re-drives."""
    return f"[redrive-batch={batch.id};month={batch.month}]"


def start_export(session: Session, batch: RedriveBatch, *, actor: str) -> ExportRun | None:
    """Start the export of exactly the batch's IDs; None when none of their studies is exported.

    Records of studies the export does not take (unconfigured or disabled) stay in the list,
    and the request's study whitelist leaves them out: verification names them.
    """
    from dutydesk.export.service import start_run

    ids = service.record_ids(session, batch)
    proof = service.evidence(session, batch)
    studies = set(proof["per_study"])
    with records_session() as records:
        exported = sorted(
            study.id
            for study in records.scalars(select(Study).where(Study.id.in_(studies)))
            if _verify.exported_study(study)
        )
    if not exported:
        return None
    location = id_list_location(batch, proof["sha256"])
    _write_list(location, service.id_list_text(ids))
    body: dict[str, Any] = {
        "useLastExportTime": False,
        "recordIdOverride": location,
        "sharingMode": "SHARED",
        "tag": tag_of(batch),
    }
    if len(exported) < len(studies):
        body["studyWhitelist"] = exported
    run = start_run(session, body, created_by=actor)
    batch.export_run_id = run.id
    batch.verification = None
    batch.verified_at = None
    return run


def execute(session: Session, change: Any) -> dict[str, Any]:
    """The `redrive` kind's run: start the batch's export (verified when it ends)."""
    batch = service.get_batch(session, int(change.payload["batch_id"]))
    proof = service.evidence(session, batch)
    if proof["sha256"] != change.evidence.get("sha256"):
        raise service.RedriveError(
            f"batch {batch.id}'s IDs differ from the list that was approved "
            f"(SHA-256 {proof['sha256'][:12]}…, "
            f"approved {str(change.evidence.get('sha256'))[:12]}…)",
            409,
        )
    batch.state = BatchState.running.value
    run = start_export(session, batch, actor=f"redrive batch {batch.id}")
    if run is None:
        with records_session() as records:
            report = _verify.verify(session, records, batch)
        return {"export_run_id": None, "verification": report["counts"]}
    return {"export_run_id": run.id, "ids": proof["count"], "sha256": proof["sha256"]}


def export_again(session: Session, batch: RedriveBatch, user: Any) -> ExportRun | None:
    """Export a batch that has run once more: the approved list, unchanged, so no new
    signoff (a failed run, or tables fixed since). The same list makes the same request, whose
    files replace the earlier run's of that export date; noted on the change's timeline."""
    from dutydesk.runbooks import ChangeState, comment_change, get_change

    if batch.state not in (BatchState.done.value, BatchState.failed.value):
        raise service.RedriveError(
            f"batch {batch.id} is {batch.state}; only a batch that has run (done or failed) is "
            "exported again",
            409,
        )
    if batch.change_id is None:
        raise service.RedriveError(f"batch {batch.id} has no change request", 409)
    change = get_change(session, batch.change_id)
    if change.state != ChangeState.done.value:
        raise service.RedriveError(
            f"change #{change.id} is {change.state}; only a batch whose run was carried out is "
            "exported again",
            409,
        )
    proof = service.evidence(session, batch)
    if proof["sha256"] != change.evidence.get("sha256"):
        raise service.RedriveError(
            f"batch {batch.id}'s IDs differ from the approved list; it cannot run again", 409
        )
    batch.state = BatchState.running.value
    run = start_export(session, batch, actor=f"redrive batch {batch.id}")
    what = f"export run {run.id}" if run is not None else "no export (no study is exported)"
    comment_change(session, change, user, f"Re-drive batch {batch.id} exported again: {what}.")
    if run is None:
        with records_session() as records:
            _verify.verify(session, records, batch)
    session.flush()
    return run


def mirror_state(session: Session, change: Any, state: str) -> None:
    """The batch follows its change request; `done` waits for the export and verification."""
    batch = service.batch_of_change(session, change.id)
    if batch is None:
        return
    if state in (
        BatchState.pending.value,
        BatchState.approved.value,
        BatchState.running.value,
        BatchState.rejected.value,
        BatchState.cancelled.value,
        BatchState.failed.value,
    ):
        if state == BatchState.running.value and batch.state in (
            BatchState.done.value,
            BatchState.failed.value,
        ):
            return
        batch.state = state


def register() -> None:
    """Make `redrive` a kind of change request."""
    from dutydesk.runbooks import ChangeKind, register_kind

    register_kind(
        ChangeKind(
            name=service.KIND,
            label="Re-drive batch",
            execute=execute,
            detail_path=lambda change: f"/redrives/{change.payload.get('batch_id')}",
            on_state=mirror_state,
        )
    )


def when_export_ends(session: Session, run: ExportRun, records_url: str) -> None:
    """An export run ended: verify the batch it re-drove; collect its failures.

    The export's end must not fail for the batches' sake: when the record store or the
    warehouse cannot be read here, this is logged and left out (the tick verifies the batch
    later; failed records of this run are then not collected).
    """
    try:
        with session.begin_nested(), records_session(records_url) as records:
            batch = session.scalar(select(RedriveBatch).where(RedriveBatch.export_run_id == run.id))
            if batch is not None and batch.state == BatchState.running.value:
                _verify.verify(session, records, batch)
            collect_failures(session, records, run)
    except (SQLAlchemyError, duckdb.Error, OSError) as error:
        log.warning(
            "re-drive batches could not look at export run %s (%s); the tick verifies its "
            "batch later, its failed records are not collected",
            run.id,
            error,
        )


def _failed_records(run: ExportRun) -> dict[str, str]:
    failed: dict[str, str] = {}
    for line in run.log.splitlines():
        match = _verify.BAD_RECORD.search(line)
        if match:
            failed[match.group(1)] = match.group(2)
    return failed


def _table_records(records: Session, run: ExportRun, part: StudyPart, key: str) -> list[str]:
    """The IDs of the records the run meant for table `key` of the part's study."""
    query = select(Record.id).where(Record.study_id == part.study_id)
    rest = key.removeprefix(f"{part.study_id}-")
    if rest == "default":
        query = query.where(Record.schema_id.is_(None))
    elif rest != "appVersion":
        match = SCHEMA_TABLE.fullmatch(rest)
        if match is None:
            return []
        query = query.where(
            Record.schema_id == match.group(1), Record.schema_revision == int(match.group(2))
        )
    listed = (run.metrics.get("record_ids") or {}).get(part.study_id)
    if listed is not None:
        return [
            record_id
            for chunk in service.chunked(listed)
            for record_id in records.scalars(query.where(Record.id.in_(chunk)).order_by(Record.id))
        ]
    if part.start_ms is not None and part.end_ms is not None:
        query = query.where(Record.uploaded_on >= part.start_ms, Record.uploaded_on < part.end_ms)
    return list(records.scalars(query.order_by(Record.id)))


def collect_failures(session: Session, records: Session, run: ExportRun) -> int:
    """Add the run's failed records, and the records of tables whose automatic re-drives ran
    out, to this month's open batch with the run as the reason; how many IDs were added."""
    request = parse_request(run.request)
    exhausted = request.redrive_count >= get_settings().export_redrive_max
    added = 0
    batch: RedriveBatch | None = None

    def add(ids: list[str], reason: str) -> None:
        nonlocal added, batch
        if not ids:
            return
        batch = batch or service.open_batch(session, actor=EXPORT_ACTOR)
        report = service.add_ids(
            session,
            records,
            batch,
            ids,
            study=None,
            reason=reason[: service.MAX_REASON_LENGTH],
            source=ItemSource.export,
            actor=EXPORT_ACTOR,
        )
        added += len(report.added)

    failed = _failed_records(run)
    for error in sorted(set(failed.values())):
        add(
            sorted(record_id for record_id, text in failed.items() if text == error),
            f"failed in export run {run.id}: {error}",
        )
    for part in session.scalars(select(StudyPart).where(StudyPart.run_id == run.id)):
        retryable = {
            f"{part.study_id}-{schema_id}-v{revision}"
            for schema_id, revision in part.metrics.get("redrive_tables", [])
        }
        for key in part.failed_tables:
            if key in retryable and not exhausted:
                continue  # the export re-drives it itself
            why = "after its automatic re-drives" if key in retryable else "(not retryable)"
            add(
                _table_records(records, run, part, key),
                f"table {key} failed in export run {run.id} {why}: {part.error or ''}".strip(),
            )
    return added
