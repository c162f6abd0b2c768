"""The export from a PostgreSQL record store: the same records give the same tables as from
SQLite. Runs when DUTYDESK_TEST_POSTGRES_URL names a server (as `.ci/run` sets it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from dutydesk.export import _engine
from dutydesk.export.request import SharingMode
from tests.conftest import POSTGRES_URL, fresh_database_url
from tests.export.conftest import filled_store, whole_window_job

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="DUTYDESK_TEST_POSTGRES_URL is not set")

COUNTS: dict[str, Any] = {
    "seed": 11,
    "studies": 2,
    "participants": 15,
    "days": 2,
    "records_per_day": 60,
    "attachment_share": 0.1,
}


def export(url: str, warehouse: Path, study: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table the export of `study` writes, as sorted rows, by table key."""
    with _engine.connect(url, threads=1) as connection:
        result = _engine.export_study(
            connection, whole_window_job(study, SharingMode.SHARED), warehouse
        )
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table in result.tables:
        assert table.error is None, table.error
        assert table.path is not None
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{table.path}')").fetchall()
        tables[table.key] = sorted(rows, key=repr)
    return tables


def test_a_postgresql_store_exports_the_same_tables_as_sqlite(tmp_path: Path) -> None:
    sqlite_url = filled_store(f"sqlite:///{tmp_path / 'records.sqlite'}", **COUNTS)
    postgres_url = filled_store(
        fresh_database_url("postgresql", tmp_path, "records_export"), **COUNTS
    )
    for study in ("study-a", "study-b"):
        from_sqlite = export(sqlite_url, tmp_path / "wh-sqlite", study)
        from_postgres = export(postgres_url, tmp_path / "wh-postgres", study)
        assert sorted(from_postgres) == sorted(from_sqlite)
        assert sum(len(rows) for rows in from_sqlite.values()) > 100
        for key, rows in from_sqlite.items():
            assert from_postgres[key] == rows, key
        # The attachment files too, by name and content.
        written = {
            path.relative_to(tmp_path / "wh-sqlite"): path.read_bytes()
            for path in (tmp_path / "wh-sqlite" / study).rglob("attachments/*")
        }
        assert written
        assert {
            path.relative_to(tmp_path / "wh-postgres"): path.read_bytes()
            for path in (tmp_path / "wh-postgres" / study).rglob("attachments/*")
        } == written
