"""The export's DuckDB holds at most DUTYDESK_EXPORT_MEMORY_LIMIT and spills the rest."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from pydantic import ValidationError

from dutydesk.export import _engine
from dutydesk.settings import Settings, get_settings
from tests.conftest import clear_caches


@pytest.fixture
def store(tmp_path: Path) -> str:
    import sqlite3

    path = tmp_path / "records.sqlite"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE studies (id TEXT)")
    return f"sqlite:///{path}"


def settings_of(database: object) -> tuple[str, str]:
    row = database.execute(  # type: ignore[attr-defined]
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    return str(row[0]), str(row[1])


def test_by_default_a_study_database_holds_1_gib_and_spills_under_the_home(
    store: str, home: Path
) -> None:
    with closing(_engine.open_database(store, threads=1)) as database:
        limit, folder = settings_of(database)
    assert limit == "1.0 GiB"
    assert Path(folder) == home.resolve() / "export-spill"
    assert Path(folder).is_dir()


def test_a_query_larger_than_the_limit_spills_and_completes(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = tmp_path / "spill"
    monkeypatch.setenv("DUTYDESK_EXPORT_MEMORY_LIMIT", "64MiB")
    monkeypatch.setenv("DUTYDESK_EXPORT_SPILL_FOLDER", str(spill))
    clear_caches()
    with closing(_engine.open_database(store, threads=1)) as database:
        assert settings_of(database) == ("64.0 MiB", str(spill))
        # About 5,000,000 distinct keys grouped: several times 64 MiB of hash table.
        groups = database.execute(
            "SELECT count(*) FROM (SELECT i, count(*) FROM range(5000000) t(i) GROUP BY i)"
        ).fetchone()
        peak = database.execute("SELECT max(memory_usage_bytes) FROM duckdb_memory()").fetchone()
    assert groups == (5000000,)
    assert peak is not None and peak[0] <= 64 * 2**20


@pytest.mark.parametrize("value", ["lots", "1GiB'; DROP", "-1GB", "10"])
def test_a_memory_limit_that_is_not_a_size_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="export_memory_limit"):
        Settings(export_memory_limit=value)
    assert get_settings().export_memory_limit == "1GiB"
