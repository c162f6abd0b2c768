"""One DuckDB database per foreground run: studies side by side on it, the store held open."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dutydesk.export import _engine
from dutydesk.export.request import SharingMode
from tests.export.conftest import generated_store, whole_window_job

STUDIES = ("study-a", "study-b", "study-c")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated SQLite record store with attachments; its URL."""
    path = tmp_path_factory.mktemp("records") / "records.sqlite"
    return generated_store(
        path,
        seed=11,
        studies=3,
        participants=30,
        days=2,
        records_per_day=120,
        attachment_share=0.3,
    )


def job(study: str) -> _engine.StudyJob:
    return whole_window_job(study, SharingMode.ALL)


def written(warehouse: Path) -> dict[str, Any]:
    """Every file under `warehouse`: a table file's sorted rows, an attachment's bytes."""
    files: dict[str, Any] = {}
    for path in sorted(p for p in warehouse.rglob("*") if p.is_file()):
        key = str(path.relative_to(warehouse))
        if path.suffix == ".parquet":
            rows = duckdb.sql(
                f"SELECT * FROM read_parquet('{path}', hive_partitioning = false)"
            ).fetchall()
            files[key] = sorted(rows, key=repr)
        else:
            files[key] = path.read_bytes()
    return files


def test_studies_side_by_side_on_one_database_write_what_each_writes_alone(
    store: str, tmp_path: Path
) -> None:
    alone = tmp_path / "alone"
    for study in STUDIES:
        with _engine.connect(store, threads=1) as connection:
            _engine.export_study(connection, job(study), alone)

    shared = tmp_path / "shared"
    database = _engine.open_database(store, threads=1)
    failures: list[BaseException] = []

    def export(study: str) -> None:
        try:
            with _engine.connect(store, database=database) as connection:
                _engine.export_study(connection, job(study), shared)
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    try:
        threads = [threading.Thread(target=export, args=(study,)) for study in STUDIES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        database.close()
    assert not failures
    expected = written(alone)
    assert any(key.endswith(".parquet") for key in expected)
    assert any("/attachments/" in key for key in expected)
    assert written(shared) == expected


# Whether a lock is held on the WAL index's "connection open" byte of a SQLite database,
# asked from another process (POSIX locks of one process never conflict with each other).
LOCK_PROBE = textwrap.dedent(
    """
    import fcntl, struct, sys
    with open(sys.argv[1], "r+b") as index:
        wanted = struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 128, 1, 0)
        kind = struct.unpack("hhqqi4x", fcntl.fcntl(index, fcntl.F_GETLK, wanted))[0]
    print("held" if kind != fcntl.F_UNLCK else "free")
    """
)


def sqlite_connection_open(database_file: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", LOCK_PROBE, f"{database_file}-shm"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip() == "held"


@pytest.mark.skipif(sys.platform != "linux", reason="reads the lock table the Linux way")
def test_a_sqlite_store_is_held_open_while_the_export_database_is_open(store: str) -> None:
    """Each statement opens its own SQLite connection; when none is open, the next one to
    open rebuilds the WAL index under an exclusive lock and a statement starting on another
    connection meanwhile waits a second. The database keeps one SQLite connection open."""
    database_file = store.removeprefix("sqlite:///")
    database = _engine.open_database(store, threads=1)
    try:
        with _engine.connect(store, database=database) as connection:
            connection.execute("SELECT count(*) FROM rs.records").fetchall()
        assert sqlite_connection_open(database_file)
    finally:
        database.close()
    assert not sqlite_connection_open(database_file)


class Recording:
    """A connection that keeps the text of every statement it runs."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return self.connection.execute(query, *args, **kwargs)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_attachments_are_looked_up_only_for_tables_that_refer_to_one(
    tmp_path: Path, share: float
) -> None:
    url = generated_store(
        tmp_path / "records.sqlite",
        seed=5,
        studies=1,
        participants=10,
        days=1,
        records_per_day=80,
        attachment_share=share,
    )
    with _engine.connect(url, threads=1) as connection:
        recording = Recording(connection)
        result = _engine.export_study(
            recording,  # type: ignore[arg-type]
            job("study-a"),
            tmp_path / "wh",
        )
    lookups = [s for s in recording.statements if "SELECT DISTINCT col, id, name FROM" in s]
    files = list((tmp_path / "wh").rglob("attachments/*"))
    if share:
        assert lookups and files
        assert result.counters["numAttachments"] == len(files)
    else:
        assert not lookups and not files
    assert any(table.kind == "schema" and table.rows for table in result.tables)
