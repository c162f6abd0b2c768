"""Small hand-made record stores for the export tests, on SQLite or PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Table, Text, cast, delete, insert, select

from dutydesk.db import build_engine
from dutydesk.export import _engine
from dutydesk.export.request import SharingMode
from dutydesk.records.models import RecordsBase
from dutydesk.records.store import upgrade_records
from tests.export.conftest import whole_window_job

TABLES: dict[str, Table] = {
    name: RecordsBase.metadata.tables[name]
    for name in ("studies", "schemas", "participants", "records", "attachments")
}


@dataclass
class StoreContent:
    """What one study of a hand-made store holds. Record rows name columns as the table
    does (`metadata` too); missing columns are NULL."""

    study: str = "s"
    schemas: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    metadata_fields: list[dict[str, Any]] = field(default_factory=list)
    id_excluded: bool = False
    participants: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    # id → inline content, or a Path whose file holds it.
    attachments: dict[str, bytes | Path] = field(default_factory=dict)


def fill_store(
    url: str,
    content: StoreContent,
    *,
    migrate: bool = True,
    ensure_ascii: bool = True,
    bad_data: Iterable[str] = (),
) -> None:
    """Write `content` into the record store at `url` (migrated first unless told), replacing
    what its study held. JSON is written with non-ASCII escaped unless told; the records of
    `bad_data` get a data text that is no JSON (SQLite only: PostgreSQL checks JSON)."""
    if migrate:
        upgrade_records(url)
    engine = build_engine(
        url, json_serializer=lambda value: json.dumps(value, ensure_ascii=ensure_ascii)
    )
    try:
        with engine.begin() as connection:
            study = content.study
            for name in ("records", "participants", "schemas"):
                table = TABLES[name]
                connection.execute(delete(table).where(table.c.study_id == study))
            connection.execute(delete(TABLES["studies"]).where(TABLES["studies"].c.id == study))
            connection.execute(
                insert(TABLES["studies"]),
                [
                    {
                        "id": study,
                        "name": study.upper(),
                        "study_id_excluded_in_export": content.id_excluded,
                        "upload_metadata_fields": content.metadata_fields,
                        "project": "p",
                    }
                ],
            )
            _insert(
                connection,
                "schemas",
                (
                    {"study_id": study, "schema_id": s, "revision": r, "fields": fields}
                    for (s, r), fields in content.schemas.items()
                ),
            )
            _insert(
                connection,
                "participants",
                (
                    {"study_id": study, "health_code": code, "sharing_scope": scope}
                    for code, scope in content.participants.items()
                ),
            )
            columns = [column.name for column in TABLES["records"].columns]
            _insert(
                connection,
                "records",
                (
                    {name: record.get(name) for name in columns} | {"study_id": study}
                    for record in content.records
                ),
            )
            attachments = TABLES["attachments"]
            if content.attachments:
                connection.execute(
                    delete(attachments).where(attachments.c.id.in_(list(content.attachments)))
                )
            _insert(connection, "attachments", map(_attachment_row, content.attachments.items()))
            for record_id in bad_data:
                connection.exec_driver_sql(
                    "UPDATE records SET data = '{not json' WHERE id = ?", (record_id,)
                )
    finally:
        engine.dispose()


def _insert(connection: Any, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
    listed = list(rows)
    if listed:
        connection.execute(insert(TABLES[name]), listed)


def _attachment_row(item: tuple[str, bytes | Path]) -> dict[str, Any]:
    attachment_id, stored = item
    inline = isinstance(stored, bytes)
    size = len(stored) if isinstance(stored, bytes) else stored.stat().st_size
    return {
        "id": attachment_id,
        "content": stored if inline else None,
        "path": None if inline else str(stored),
        "content_type": "application/octet-stream",
        "size": size,
        "md5": "-",
    }


def export_one(
    url: str,
    warehouse: Path,
    study: str = "s",
    mode: SharingMode = SharingMode.ALL,
    *,
    database: duckdb.DuckDBPyConnection | None = None,
) -> _engine.StudyResult:
    """Export every record of `study` with the engine, dated EXPORT_DATE (on `database`, from
    `_engine.open_database`, when given)."""
    with _engine.connect(url, threads=1, database=database) as connection:
        return _engine.export_study(connection, whole_window_job(study, mode), warehouse)


def stored_texts(url: str, column: str, study: str = "s") -> dict[str, str | None]:
    """A JSON column's text by record id, as the store gives it back: SQLite keeps a JSON
    column with NUMERIC affinity, so a document that is a number may come back rewritten
    (`-4.3e+16` as `-43000000000000000`)."""
    records = TABLES["records"]
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(records.c.id, cast(records.c[column], Text)).where(
                    records.c.study_id == study
                )
            ).all()
    finally:
        engine.dispose()
    return {record_id: text for record_id, text in rows}
