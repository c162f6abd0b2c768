"""Verifying a re-drive batch: every ID is in the tables its export run wrote, or has a reason.

The reasons are those the export itself applies, looked up again now: the participant's
sharing scope (as it is *now*: a participant who withdrew since the upload is excluded), the
study not being exported, a schema the record store lacks, and a record that failed again
(bad data, a table that failed, a run that failed) with its error. Anything else is missing
without a reason: the batch fails and a ticket is opened.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import closing
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.export.models import ExportRun, RunState, StudyPart
from dutydesk.export.request import SharingMode, parse_request
from dutydesk.records.models import Participant, Record, Schema, SharingScope, Study
from dutydesk.runbooks.redrive import service
from dutydesk.runbooks.redrive.models import BatchState, RedriveBatch

PRESENT = "present"
EXCLUDED_SCOPE = "excluded: sharing scope"
EXCLUDED_STUDY = "excluded: study not exported"
EXCLUDED_SCHEMA = "excluded: no schema"
FAILED_AGAIN = "failed again"
MISSING = "missing"
OUTCOMES = (PRESENT, EXCLUDED_SCOPE, EXCLUDED_STUDY, EXCLUDED_SCHEMA, FAILED_AGAIN, MISSING)

SCOPE_RANK = {scope.value: rank for rank, scope in enumerate(SharingScope)}
MODE_MINIMUM = {SharingMode.ALL: 0, SharingMode.SHARED: 1, SharingMode.PUBLIC_ONLY: 2}
BAD_RECORD = re.compile(r"Exception processing record (\S+): (.*)")
# The tables a record's data row goes to (not the summary and status tables).
SUMMARY_SUFFIXES = ("-appVersion", "-status")
LISTED_IN_TICKET = 50


def exported_study(study: Study | None) -> bool:
    """Whether the export takes this study's records: configured and not disabled."""
    return bool(study and study.project and study.data_access_team and not study.disable_export)


def _written_ids(run: ExportRun, parts: list[StudyPart]) -> set[str]:
    """The record IDs in the data tables this run wrote (its own files, replaced on re-run)."""
    from dutydesk.export.service import warehouse

    target = warehouse()
    files = []
    for part in parts:
        for name, count in part.metrics.get("counters", {}).items():
            if not name.endswith(".lineCount") or not count:
                continue
            key = name.removesuffix(".lineCount")
            if key.endswith(SUMMARY_SUFFIXES):
                continue
            path = (
                f"{target.table_url(part.study_id, key)}/exportDate={run.export_date}/"
                f"part-{run.run_key}.parquet"
            )
            if target.exists(path):
                files.append(path)
    found: set[str] = set()
    if not files:
        return found
    with closing(duckdb.connect(config={"threads": 1})) as connection:
        target.attach(connection)
        for path in files:
            rows = connection.execute(
                "SELECT recordId FROM read_parquet(?, hive_partitioning = false)", [path]
            ).fetchall()
            found.update(str(row[0]) for row in rows)
    return found


def _table_key(record: Record) -> str:
    if record.schema_id is None or record.schema_revision is None:
        return f"{record.study_id}-default"
    return f"{record.study_id}-{record.schema_id}-v{record.schema_revision}"


def _why_not(
    record: Record | None,
    *,
    run: ExportRun | None,
    parts: dict[str, list[StudyPart]],
    whitelist: frozenset[str] | None,
    studies: dict[str, Study],
    scopes: dict[tuple[str, str], str],
    schemas: set[tuple[str, str, int]],
    bad: dict[str, str],
    minimum: int,
) -> tuple[str, str]:
    """(outcome, detail) of an ID the run's tables do not hold."""
    if record is None:
        return MISSING, "no longer in the record store"
    study = studies.get(record.study_id)
    if not exported_study(study) or (whitelist is not None and record.study_id not in whitelist):
        return EXCLUDED_STUDY, f"study {record.study_id} is not exported"
    if run is None:
        return MISSING, "no export run"
    if run.state == RunState.failed.value:
        return FAILED_AGAIN, f"export run {run.id} failed: {run.error or 'no error text'}"
    study_parts = parts.get(record.study_id)
    if not study_parts:
        return MISSING, f"export run {run.id} did not export study {record.study_id}"
    participant_scope = scopes.get((record.study_id, record.health_code))
    effective = min(
        SCOPE_RANK.get(record.user_sharing_scope or "", 0),
        SCOPE_RANK.get(participant_scope or "", 0),
    )
    if effective < minimum:
        return EXCLUDED_SCOPE, (
            f"participant's sharing scope now {participant_scope or 'unknown'}, "
            f"record's {record.user_sharing_scope or 'none'}"
        )
    if record.id in bad:
        return FAILED_AGAIN, bad[record.id]
    key = _table_key(record)
    # A study split in slices has a part per slice; its table failed in whichever slice held it.
    for part in study_parts:
        if key in part.failed_tables:
            return FAILED_AGAIN, part.error or f"table {key} failed"
    for part in study_parts:
        if part.state == RunState.failed.value:
            return FAILED_AGAIN, part.error or f"the export of study {record.study_id} failed"
    if (
        record.schema_id is not None
        and record.schema_revision is not None
        and (record.study_id, record.schema_id, int(record.schema_revision)) not in schemas
    ):
        return EXCLUDED_SCHEMA, f"schema {key} is not in the record store"
    return MISSING, ""


def verify(session: Session, records: Session, batch: RedriveBatch) -> dict[str, Any]:
    """Check every ID of the batch against its export run and store the report on the batch.

    Sets the batch `done` when nothing is missing without a reason, else `failed` with a ticket
    (one per batch: verifying again adds an occurrence to the open one).
    """
    run = session.get(ExportRun, batch.export_run_id) if batch.export_run_id else None
    parts: dict[str, list[StudyPart]] = {}
    whitelist: frozenset[str] | None = None
    minimum = MODE_MINIMUM[SharingMode.SHARED]
    written: set[str] = set()
    bad: dict[str, str] = {}
    if run is not None:
        request = parse_request(run.request)
        whitelist = request.study_whitelist
        minimum = MODE_MINIMUM[request.sharing_mode]
        listed = list(session.scalars(select(StudyPart).where(StudyPart.run_id == run.id)))
        for part in listed:
            parts.setdefault(part.study_id, []).append(part)
        written = _written_ids(run, listed)
        for line in run.log.splitlines():
            match = BAD_RECORD.search(line)
            if match:
                bad[match.group(1)] = match.group(2)
    items = service.items(session, batch)
    unseen = [item.record_id for item in items if item.record_id not in written]
    found = {
        record.id: record
        for chunk in service.chunked(unseen)
        for record in records.scalars(select(Record).where(Record.id.in_(chunk)))
    }
    study_ids = {record.study_id for record in found.values()}
    studies = {
        study.id: study for study in records.scalars(select(Study).where(Study.id.in_(study_ids)))
    }
    # A study's participants are a few thousand rows: read them all rather than by code.
    scopes = {
        (p.study_id, p.health_code): p.sharing_scope
        for p in records.scalars(select(Participant).where(Participant.study_id.in_(study_ids)))
    }
    schemas = {
        (s.study_id, s.schema_id, int(s.revision))
        for s in records.scalars(select(Schema).where(Schema.study_id.in_(study_ids)))
    }
    outcomes: Counter[str] = Counter()
    per_study: dict[str, Counter[str]] = {}
    rows: list[list[str]] = []
    for item in items:
        if item.record_id in written:
            outcome, detail = PRESENT, ""
        else:
            outcome, detail = _why_not(
                found.get(item.record_id),
                run=run,
                parts=parts,
                whitelist=whitelist,
                studies=studies,
                scopes=scopes,
                schemas=schemas,
                bad=bad,
                minimum=minimum,
            )
            rows.append([item.record_id, item.study_id, outcome, detail])
        outcomes[outcome] += 1
        per_study.setdefault(item.study_id, Counter())[outcome] += 1
    report: dict[str, Any] = {
        "export_run_id": run.id if run else None,
        "export_run_state": run.state if run else None,
        "checked_at": utcnow().isoformat(timespec="seconds"),
        "total": len(items),
        "counts": {outcome: outcomes[outcome] for outcome in OUTCOMES if outcomes[outcome]},
        "per_study": {
            study: {o: counts[o] for o in OUTCOMES if counts[o]}
            for study, counts in sorted(per_study.items())
        },
        "missing": outcomes[MISSING],
        "not_present": rows,
    }
    batch.verification = report
    batch.verified_at = utcnow()
    batch.updated_at = utcnow()
    if outcomes[MISSING]:
        batch.state = BatchState.failed.value
        _open_ticket(session, batch, [row for row in rows if row[2] == MISSING])
    elif run is not None and run.state == RunState.failed.value:
        # Every ID has its reason (the run's error), but nothing was exported.
        batch.state = BatchState.failed.value
        _open_ticket(session, batch, [], run_error=run.error or "no error text")
    else:
        batch.state = BatchState.done.value
    session.flush()
    return report


def _open_ticket(
    session: Session, batch: RedriveBatch, missing: list[list[str]], *, run_error: str = ""
) -> None:
    """One ticket per failed batch: the IDs missing without a reason, or the run's error."""
    from dutydesk.tickets import service as tickets

    if run_error:
        title = f"Re-drive batch {batch.id} ({batch.month}): its export run failed"
        description = (
            f"Export run {batch.export_run_id} of re-drive batch {batch.id} failed: {run_error}\n"
            "None of the batch's records were exported; use Export again on the batch's page."
        )
    else:
        listed = "\n".join(
            f"- {record_id} ({study}){': ' + detail if detail else ''}"
            for record_id, study, _, detail in missing[:LISTED_IN_TICKET]
        )
        more = len(missing) - LISTED_IN_TICKET
        rest = f"… and {more} more (see /redrives/{batch.id}/report.csv)" if more > 0 else ""
        title = (
            f"Re-drive batch {batch.id} ({batch.month}): {len(missing)} records missing "
            "without a reason after the export"
        )
        description = (
            f"Verification of re-drive batch {batch.id} found record IDs that are neither in "
            f"the tables of export run {batch.export_run_id} nor excused by a reason:\n\n"
            f"{listed}\n{rest}"
        )
    outcome = tickets.create_ticket(
        session,
        title=title,
        description=description,
        severity="high",
        fingerprint=f"redrive-batch-{batch.id}",
        actor="redrive",
    )
    if outcome.ticket is not None:
        batch.ticket_id = outcome.ticket.id
