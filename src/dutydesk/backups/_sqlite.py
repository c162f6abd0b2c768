"""SQLite: a consistent copy through the online backup API, and what a copy holds."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

# Rows per table whose checksum a backup records and a drill compares.
SAMPLED_ROWS = 50


def path_of(url: str) -> Path:
    """The file of a `sqlite:///PATH` URL (or a plain path)."""
    return Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)


def snapshot(source: Path, into: Path) -> None:
    """Copy the live database `source` into `into` with SQLite's online backup API: a
    consistent copy while other processes keep writing."""
    if not source.exists():
        raise FileNotFoundError(f"no SQLite database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(into)
    try:
        # Pages in steps so writers are not held off for the whole copy.
        src.backup(dst, pages=4096)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [
        str(name)
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe(path: Path) -> dict[str, Any]:
    """What the database at `path` holds: rows per table, a checksum of the first sampled rows
    of each table (by rowid), and the Alembic revision when it has one."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = _tables(connection)
        counts: dict[str, int] = {}
        sums: dict[str, str] = {}
        for table in tables:
            quoted = _quoted(table)
            counts[table] = int(connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])  # noqa: S608
            sums[table] = _sample_checksum(connection, quoted)
        revision = None
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = str(row[0]) if row else None
        return {"table_counts": counts, "row_checksums": sums, "schema_revision": revision}
    finally:
        connection.close()


def _sample_checksum(connection: sqlite3.Connection, quoted: str) -> str:
    digest = hashlib.sha256()
    try:
        rows = connection.execute(
            f"SELECT * FROM {quoted} ORDER BY rowid LIMIT {SAMPLED_ROWS}"  # noqa: S608
        )
    except sqlite3.OperationalError:  # a WITHOUT ROWID table: its first rows in key order
        rows = connection.execute(f"SELECT * FROM {quoted} LIMIT {SAMPLED_ROWS}")  # noqa: S608
    for row in rows:
        digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def integrity(path: Path) -> str:
    """`PRAGMA integrity_check` of the file: `ok`, or what is wrong."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        return f"not a readable SQLite database: {error}"
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])
