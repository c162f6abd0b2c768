"""Writing generated rows fast: batched executemany with JSON serialised by the caller."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from sqlalchemy import JSON, Column, Connection, Dialect, MetaData, Table, insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from dutydesk.records._people import new_id
from dutydesk.records._synthetic import ContentMaker
from dutydesk.records.models import Record, RecordsBase
from dutydesk.records.store import tune_for_bulk_load

BATCHES_PER_TRANSACTION = 20


class SerialisedJSON(TypeDecorator[str]):
    """A JSON column whose values arrive as JSON text (PostgreSQL still casts them to json)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        """No processing: the text is already JSON."""
        return None


# The records table with JSON columns that take JSON text: the generator serialises each JSON
# value itself (participants' values once, not once per record), which halves the time a
# million records take to write.
RECORDS_AS_TEXT = Table(
    Record.__tablename__,
    MetaData(),
    *(
        Column(column.name, SerialisedJSON() if isinstance(column.type, JSON) else column.type)
        for column in Record.__table__.columns
    ),
)


def executemany(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """A Core `insert()` run by the driver's executemany, without SQLAlchemy's per-row work.

    The rows must hold exactly what the driver takes (JSON already serialised).
    """
    compiled = insert(table).compile(dialect=connection.dialect)
    keys = compiled.positiontup
    # Positional paramstyles (SQLite's `?`) take tuples in the statement's column order.
    params: list[Any] = [tuple(row[key] for key in keys) for row in rows] if keys else rows
    connection.exec_driver_sql(str(compiled), params)


class Writer:
    """Collects rows and inserts them in batches, committing every few batches."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.records: list[dict[str, Any]] = []
        self.attachments: list[dict[str, Any]] = []
        self.batches = 0
        self.attachment_count = 0

    def attach(self, rng: random.Random, make: ContentMaker) -> str:
        """Make an attachment's bytes, queue its row and return its id."""
        content, content_type = make(rng)
        self.attachment_count += 1
        attachment_id = new_id(rng)
        self.attachments.append(
            {
                "id": attachment_id,
                "content": content,
                "path": None,
                "content_type": content_type,
                "size": len(content),
                "md5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
            }
        )
        return attachment_id

    def flush(self) -> None:
        """Insert what is queued; commit when enough batches have gone in."""
        connection = self.session.connection()
        tune_for_bulk_load(connection)
        if self.attachments:
            connection.execute(insert(RecordsBase.metadata.tables["attachments"]), self.attachments)
            self.attachments = []
        if self.records:
            executemany(connection, RECORDS_AS_TEXT, self.records)
            self.records = []
        self.batches += 1
        if self.batches % BATCHES_PER_TRANSACTION == 0:
            self.session.commit()
