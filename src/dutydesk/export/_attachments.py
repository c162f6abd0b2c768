"""Reading attachments by id (those the export made itself, then the record store's), and
writing the files a table refers to.

From a SQLite store the wanted ids are read by SQLite itself through the primary key index, in
one query whose rows come a batch at a time: DuckDB's SQLite scanner would read the whole table
to find a few rows, and its `sqlite_query` gives a BLOB only as hex text. PostgreSQL's scanner
pushes the filter down.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from dutydesk.export.warehouse import Warehouse

BATCH = 2_000  # attachments held in memory at a time while a table's files are written


def read_attachments(
    connection: duckdb.DuckDBPyConnection, ids: Iterable[str]
) -> dict[str, bytes | None]:
    """The content of each attachment found among `ids` (None: its file cannot be read)."""
    return {
        attachment_id: content
        for batch in attachment_batches(connection, ids)
        for attachment_id, content in batch
    }


def attachment_batches(
    connection: duckdb.DuckDBPyConnection, ids: Iterable[str]
) -> Iterator[list[tuple[str, bytes | None]]]:
    """(id, content) of each attachment found among `ids`, up to BATCH at a time (content
    None: its file cannot be read), read in one query of the made attachments and one of the
    store."""
    wanted = sorted(set(ids))
    if not wanted:
        return
    made = {
        attachment_id: bytes(content)
        for attachment_id, content in connection.execute(
            "SELECT id, content FROM made_attachments "
            "WHERE id IN (SELECT unnest(from_json(?::VARCHAR, '[\"VARCHAR\"]')))",
            [json.dumps(wanted)],  # one text: DuckDB inspects each Python value it is handed
        ).fetchall()
    }
    if made:
        yield list(made.items())
        if len(made) == len(wanted):
            return
    rest = json.dumps([attachment_id for attachment_id in wanted if attachment_id not in made])
    store = _sqlite_store(connection)
    if store is not None:
        with closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)) as sqlite:
            # Bytes whatever the column holds: a text gives its UTF-8 bytes.
            rows = sqlite.execute(
                "SELECT id, CAST(content AS BLOB), path FROM attachments "
                "WHERE id IN (SELECT value FROM json_each(?))",
                [rest],
            )
            while batch := rows.fetchmany(BATCH):
                yield [(attachment_id, _content(*stored)) for attachment_id, *stored in batch]
        return
    result = connection.execute(
        "SELECT id, content, path FROM rs.attachments WHERE id IN "
        "(SELECT unnest(from_json(?::VARCHAR, '[\"VARCHAR\"]')))",
        [rest],
    )
    while batch := result.fetchmany(BATCH):
        yield [
            (attachment_id, _content(bytes(content) if content is not None else None, path))
            for attachment_id, content, path in batch
        ]


def _sqlite_store(connection: duckdb.DuckDBPyConnection) -> Path | None:
    """The file of the record store attached as `rs` when it is SQLite, else None."""
    row = connection.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = 'rs' AND type = 'sqlite'"
    ).fetchone()
    return Path(row[0]).absolute() if row and row[0] else None


def _content(content: bytes | None, path: str | None) -> bytes | None:
    if content is not None:
        return content
    try:
        return Path(path).read_bytes() if path else None
    except OSError:
        return None  # a missing file reads as no content, as a missing S3 object did


@dataclass
class WrittenAttachments:
    """What writing a table's attachment files found."""

    found: int = 0  # distinct attachments found in the store (or written before)
    # By column: the file names of the 0-byte attachments, whose cells must be empty.
    empty_names: dict[str, set[str]] = field(default_factory=dict)


def write_attachment_files(
    connection: duckdb.DuckDBPyConnection,
    warehouse: Warehouse,
    referred: Iterable[tuple[str, str, str]],
    folder: str,
) -> WrittenAttachments:
    """Write each attachment of `referred` (column, attachment id, file name) as the file of
    that name under `folder`, unless it exists. An attachment of 0 bytes gets no file, and
    its file name is reported by column (spec §6 and §7: "a 0-length object gives null, no
    handle"; "an empty file gives null, no upload"). One id referred to under two names (a
    field and rawData) gets both files. The contents are read and written a batch at a time.
    """
    triples = [(column, attachment_id, str(name)) for column, attachment_id, name in referred]
    # File name -> attachment id. Two ids whose names come out alike (different fields)
    # give the file of the greater id, as when each was written in turn over the other.
    files: dict[str, str] = {}
    for _, attachment_id, name in sorted(triples, key=lambda triple: triple[1]):
        files[name.replace("/", "_")] = attachment_id
    referred_ids = {attachment_id for _, attachment_id, _ in triples}
    # One listing of a local folder instead of a look-up per file: thousands of files a table.
    present = warehouse.local_file_names(folder)
    missing_ids = {
        attachment_id
        for _, attachment_id, name in triples
        if (
            name.replace("/", "_") not in present
            if present is not None
            else not warehouse.exists(f"{folder}/{name.replace('/', '_')}")
        )
    }
    names_of: dict[str, list[str]] = {}
    for name, attachment_id in files.items():
        if attachment_id in missing_ids:
            names_of.setdefault(attachment_id, []).append(name)
    read: set[str] = set()
    empty: set[str] = set()
    for batch in attachment_batches(connection, missing_ids):
        warehouse.write_new_files(
            folder,
            (
                (name, data)
                for attachment_id, data in batch
                if data  # an empty or unreadable attachment gives no file, as in Bridge
                for name in names_of.get(attachment_id, ())
            ),
        )
        for attachment_id, data in batch:
            read.add(attachment_id)
            if data == b"":
                empty.add(attachment_id)
    result = WrittenAttachments(found=len(referred_ids - missing_ids) + len(read))
    for column, attachment_id, name in triples:
        if attachment_id in empty:
            result.empty_names.setdefault(column, set()).add(name)
    return result
