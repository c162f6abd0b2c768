"""Reading attachments by id (those the export made itself, then the record store's), and
writing the files a table refers to.

The SQLite scanner reads a whole table to find a few rows, so from SQLite the wanted ids go
through `sqlite_query` and the primary key index; PostgreSQL's scanner pushes the filter down.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from dutydesk.export._sql import store_type

if TYPE_CHECKING:
    from dutydesk.export.warehouse import Warehouse

CHUNK = 500


def read_attachments(
    connection: duckdb.DuckDBPyConnection, ids: Iterable[str]
) -> dict[str, bytes | None]:
    """The content of each attachment found among `ids` (None: its file cannot be read)."""
    wanted = sorted(set(ids))
    found: dict[str, tuple[bytes | None, str | None]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        listed = json.dumps(chunk)  # one text: DuckDB inspects each Python value it is handed
        for attachment_id, content in connection.execute(
            "SELECT id, content FROM made_attachments "
            "WHERE list_contains(from_json(?::VARCHAR, '[\"VARCHAR\"]'), id)",
            [listed],
        ).fetchall():
            found[attachment_id] = (bytes(content), None)
        rest = [attachment_id for attachment_id in chunk if attachment_id not in found]
        if not rest:
            continue
        if store_type(connection) == "sqlite":
            # sqlite_query reads every column as text: the content comes as hex.
            rows = connection.execute(
                "SELECT * FROM sqlite_query('rs', 'SELECT id, CASE WHEN content IS NOT NULL "
                "THEN hex(content) END, path FROM attachments "
                "WHERE id IN (SELECT value FROM json_each(?))', params := row(?::VARCHAR))",
                [json.dumps(rest)],
            ).fetchall()
            for attachment_id, hexed, path in rows:
                found[attachment_id] = (bytes.fromhex(hexed) if hexed is not None else None, path)
        else:
            for attachment_id, content, path in connection.execute(
                "SELECT id, content, path FROM rs.attachments WHERE id IN "
                "(SELECT unnest(from_json(?::VARCHAR, '[\"VARCHAR\"]')))",
                [json.dumps(rest)],
            ).fetchall():
                found[attachment_id] = (bytes(content) if content is not None else None, path)
    return {attachment_id: _content(*stored) for attachment_id, stored in found.items()}


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
    field and rawData) gets both files.
    """
    triples = [(column, attachment_id, str(name)) for column, attachment_id, name in referred]
    targets = {
        (attachment_id, f"{folder}/{name.replace('/', '_')}") for _, attachment_id, name in triples
    }
    # One listing of a local folder instead of a look-up per file: thousands of files a table.
    present = warehouse.local_file_names(folder)
    missing = {
        (a, target)
        for a, target in targets
        if (
            target.rpartition("/")[2] not in present
            if present is not None
            else not warehouse.exists(target)
        )
    }
    contents = read_attachments(connection, {attachment_id for attachment_id, _ in missing})
    missing_ids = {attachment_id for attachment_id, _ in missing}
    result = WrittenAttachments(
        found=len({a for a, _ in targets if a in contents or a not in missing_ids})
    )
    for attachment_id, target in sorted(missing):
        data = contents.get(attachment_id)
        if data:  # an empty or unreadable attachment gives no file, as in Bridge
            warehouse.write_file(target, data, known_missing=True)
    empty = {attachment_id for attachment_id, data in contents.items() if data == b""}
    for column, attachment_id, name in triples:
        if attachment_id in empty:
            result.empty_names.setdefault(column, set()).add(name)
    return result
