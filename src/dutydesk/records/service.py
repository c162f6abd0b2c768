"""Putting data into the record store: studies, schemas, participants, records, attachments.

Functions take a record-store session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from dutydesk.records._payload import (
    AlreadyStored,
    RecordError,
    UnknownReference,
    check_shape,
    epoch_ms,
    now_ms,
)
from dutydesk.records.fields import (
    FieldDefinitionError,
    check_field_definitions,
    describe_problems,
)
from dutydesk.records.models import (
    Attachment,
    Participant,
    Record,
    RecordsBase,
    Schema,
    SharingScope,
    Study,
)

__all__ = [
    "AlreadyStored",
    "ImportReport",
    "RecordError",
    "UnknownReference",
    "add_attachment",
    "add_record",
    "import_jsonl",
    "record_counts",
    "set_participant_scope",
    "upsert_schema",
    "upsert_study",
    "validate_record",
]

# Ids given to records imported without one: derived from the line, so a re-import matches.
IMPORT_NAMESPACE = uuid.UUID("5b0c7c5e-5f0e-4c0c-9a55-6c0b1a3f2d11")
IMPORT_CHUNK = 1_000


def validate_record(session: Session, payload: Any) -> Record:
    """A `Record` (not yet added) from a JSON payload, checked against its study and schema.

    Values that do not fit their field's type are kept and described in `validation_errors`.
    """
    body = check_shape(payload)
    study = session.get(Study, body["study_id"])
    if study is None:
        raise UnknownReference(f"unknown study {body['study_id']!r}")
    problems: list[str] = []
    if body.get("validation_errors"):
        problems.append(body["validation_errors"])
    if body.get("schema_id") is not None:
        key = (study.id, body["schema_id"], body["schema_revision"])
        schema = session.get(Schema, key)
        if schema is None:
            raise UnknownReference(
                f"unknown schema {body['schema_id']!r} revision {body['schema_revision']} "
                f"in study {study.id!r}"
            )
        problems += describe_problems(schema.fields, body.get("data") or {})
    if body.get("user_metadata"):
        problems += describe_problems(
            study.upload_metadata_fields, body["user_metadata"], "metadata field"
        )
    scope = body.get("user_sharing_scope")
    if "user_sharing_scope" not in body:
        participant = session.get(Participant, (study.id, body["health_code"]))
        scope = participant.sharing_scope if participant else None
    uploaded_on = body.get("uploaded_on")
    created_on = body.get("created_on")
    return Record(
        id=body.get("id") or str(uuid.uuid4()),
        study_id=study.id,
        health_code=body["health_code"],
        schema_id=body.get("schema_id"),
        schema_revision=body.get("schema_revision"),
        uploaded_on=now_ms() if uploaded_on is None else epoch_ms(uploaded_on, "uploaded_on"),
        created_on=None if created_on is None else epoch_ms(created_on, "created_on"),
        created_on_time_zone=body.get("created_on_time_zone"),
        data=body.get("data") or {},
        metadata_=body.get("metadata"),
        user_metadata=body.get("user_metadata"),
        user_sharing_scope=scope,
        user_external_id=body.get("user_external_id"),
        user_data_groups=body.get("user_data_groups"),
        user_substudy_memberships=body.get("user_substudy_memberships"),
        validation_errors="; ".join(problems) or None,
        day_in_study=body.get("day_in_study"),
        raw_data_attachment_id=body.get("raw_data_attachment_id"),
    )


def add_record(session: Session, payload: Any) -> Record:
    """Validate a record payload and add it; an id already stored is refused."""
    record = validate_record(session, payload)
    if session.get(Record, record.id) is not None:
        raise AlreadyStored(f"record {record.id!r} is already stored")
    session.add(record)
    session.flush()
    return record


def add_attachment(session: Session, content: bytes, content_type: str) -> Attachment:
    """Store bytes inline as a new attachment, with their size and MD5."""
    if not content:
        raise RecordError("an attachment needs content; the body is empty")
    attachment = Attachment(
        id=str(uuid.uuid4()),
        content=content,
        content_type=content_type or "application/octet-stream",
        size=len(content),
        md5=hashlib.md5(content, usedforsecurity=False).hexdigest(),
    )
    session.add(attachment)
    session.flush()
    return attachment


def upsert_study(
    session: Session,
    study_id: str,
    name: str,
    *,
    project: str | None = None,
    data_access_team: str | None = None,
    disable_export: bool = False,
    uses_custom_export_schedule: bool = False,
    study_id_excluded_in_export: bool = False,
    upload_metadata_fields: Sequence[dict[str, Any]] = (),
) -> Study:
    """Create the study or replace its settings."""
    try:
        metadata_fields = check_field_definitions(list(upload_metadata_fields))
    except FieldDefinitionError as error:
        raise RecordError(f"study {study_id}: upload metadata {error}") from None
    study = session.get(Study, study_id) or Study(id=study_id)
    study.name = name
    study.project = project
    study.data_access_team = data_access_team
    study.disable_export = disable_export
    study.uses_custom_export_schedule = uses_custom_export_schedule
    study.study_id_excluded_in_export = study_id_excluded_in_export
    study.upload_metadata_fields = metadata_fields
    session.add(study)
    session.flush()
    return study


def upsert_schema(
    session: Session, study_id: str, schema_id: str, revision: int, fields: Any
) -> Schema:
    """Create a schema revision or replace its fields; the study must exist."""
    if session.get(Study, study_id) is None:
        raise UnknownReference(f"unknown study {study_id!r}")
    try:
        checked = check_field_definitions(fields)
    except FieldDefinitionError as error:
        raise RecordError(f"schema {schema_id} revision {revision}: {error}") from None
    schema = session.get(Schema, (study_id, schema_id, revision))
    if schema is None:
        schema = Schema(study_id=study_id, schema_id=schema_id, revision=revision)
    schema.fields = checked
    session.add(schema)
    session.flush()
    return schema


def set_participant_scope(
    session: Session, study_id: str, health_code: str, scope: str
) -> Participant:
    """Record the sharing scope a participant holds now (adding the participant if new)."""
    if scope not in SharingScope.__members__:
        raise RecordError(
            f"unknown sharing scope {scope!r}; choose one of {', '.join(SharingScope)}"
        )
    if session.get(Study, study_id) is None:
        raise UnknownReference(f"unknown study {study_id!r}")
    participant = session.get(Participant, (study_id, health_code))
    if participant is None:
        participant = Participant(study_id=study_id, health_code=health_code)
    participant.sharing_scope = scope
    session.add(participant)
    session.flush()
    return participant


def record_counts(session: Session) -> dict[str, int]:
    """How many records each study has."""
    rows = session.execute(select(Record.study_id, func.count()).group_by(Record.study_id))
    return {study_id: int(count) for study_id, count in rows}


@dataclass
class ImportReport:
    """What an import did: new records, ids already stored (skipped), and the bad lines."""

    imported: int = 0
    skipped: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


RECORDS = RecordsBase.metadata.tables[Record.__tablename__]
_COLUMN_KEYS = [(attr.key, attr.columns[0].name) for attr in Record.__mapper__.column_attrs]


def _store_new(session: Session, records: list[Record], report: ImportReport) -> None:
    ids = [record.id for record in records]
    stored = set(session.scalars(select(Record.id).where(Record.id.in_(ids))))
    rows = []
    for record in records:
        if record.id in stored:
            report.skipped += 1
            continue
        stored.add(record.id)
        rows.append({column: getattr(record, key) for key, column in _COLUMN_KEYS})
    if rows:
        session.execute(insert(RECORDS), rows)
        report.imported += len(rows)


def import_jsonl(session: Session, lines: Iterable[str | bytes]) -> ImportReport:
    """Import one JSON record per line; ids already stored are skipped, never overwritten.

    A line without an `id` gets one derived from its text, so importing the same file again
    adds nothing. A bad line is reported with its number and reason and does not stop the rest.
    """
    report = ImportReport()
    pending: list[Record] = []
    for number, raw in enumerate(lines, 1):
        try:
            line = (
                raw.decode("utf-8-sig" if number == 1 else "utf-8")
                if isinstance(raw, bytes)
                else raw
            )
        except UnicodeDecodeError:
            report.bad_lines.append((number, "not UTF-8 text"))
            continue
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as error:
            report.bad_lines.append((number, f"not JSON: {error.msg} at column {error.colno}"))
            continue
        if isinstance(payload, dict) and "id" not in payload:
            payload["id"] = str(uuid.uuid5(IMPORT_NAMESPACE, line.strip()))
        try:
            pending.append(validate_record(session, payload))
        except RecordError as error:
            report.bad_lines.append((number, str(error)))
            continue
        if len(pending) >= IMPORT_CHUNK:
            _store_new(session, pending, report)
            pending = []
    if pending:
        _store_new(session, pending, report)
    return report
