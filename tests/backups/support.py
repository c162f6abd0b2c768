"""Helpers shared by the backup tests: a small SQLite source database that keeps changing."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def make_source(path: Path, rows: int = 200) -> str:
    """A SQLite database in WAL mode with an Alembic revision and `rows` notes; its URL."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE alembic_version (version_num TEXT PRIMARY KEY)")
    connection.execute("INSERT INTO alembic_version VALUES ('0042')")
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    connection.executemany(
        "INSERT INTO notes (body) VALUES (?)", [(f"note {n} " + "x" * 200,) for n in range(rows)]
    )
    connection.commit()
    connection.close()
    return f"sqlite:///{path}"


def add_notes(path: Path, count: int) -> None:
    """Append notes to the source."""
    connection = sqlite3.connect(path)
    connection.executemany("INSERT INTO notes (body) VALUES (?)", [("later",)] * count)
    connection.commit()
    connection.close()


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip one byte of a file (the middle one unless told)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
