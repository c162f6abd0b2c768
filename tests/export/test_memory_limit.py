"""The export's DuckDB holds at most DUTYDESK_EXPORT_MEMORY_LIMIT and spills the rest, each
database into a folder of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import ValidationError

from dutydesk.export import _engine, _memory
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
    assert Path(folder).parent == home.resolve() / "export-spill"
    assert Path(folder).parent.is_dir()
    assert _memory.OWN_FOLDER.match(Path(folder).name)


def test_a_query_larger_than_the_limit_spills_and_completes(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = tmp_path / "spill"
    monkeypatch.setenv("DUTYDESK_EXPORT_MEMORY_LIMIT", "64MiB")
    monkeypatch.setenv("DUTYDESK_EXPORT_SPILL_FOLDER", str(spill))
    clear_caches()
    with closing(_engine.open_database(store, threads=1)) as database:
        limit, folder = settings_of(database)
        assert limit == "64.0 MiB"
        assert Path(folder).parent == spill
        # About 5,000,000 distinct keys grouped: several times 64 MiB of hash table.
        groups = database.execute(
            "SELECT count(*) FROM (SELECT i, count(*) FROM range(5000000) t(i) GROUP BY i)"
        ).fetchone()
        peak = database.execute("SELECT max(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        assert Path(folder).is_dir()  # it spilled there
    assert groups == (5000000,)
    assert peak is not None and peak[0] <= 64 * 2**20
    assert not Path(folder).exists()  # removed with the database
    assert list(spill.iterdir()) == []


def threads_of(database: object) -> int:
    row = database.execute("SELECT current_setting('threads')").fetchone()  # type: ignore[attr-defined]
    return int(row[0])


def test_a_study_job_uses_a_thread_per_core_unless_the_setting_caps_it(
    store: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with closing(_engine.open_database(store)) as database:
        assert threads_of(database) == os.cpu_count()
    monkeypatch.setenv("DUTYDESK_EXPORT_THREADS", "1")
    clear_caches()
    with closing(_engine.open_database(store)) as database:
        assert threads_of(database) == 1
    with closing(_engine.open_database(store, threads=3)) as database:
        assert threads_of(database) == 3  # a caller's own count wins


SPILLER = """
import sys
from contextlib import closing
from dutydesk.export import _engine
with closing(_engine.open_database(sys.argv[1], threads=1)) as database:
    print(database.execute(
        "SELECT count(*), sum(n) FROM (SELECT i, count(*) AS n FROM range(6000000) t(i) GROUP BY i)"
    ).fetchone())
    print(database.execute(
        "SELECT sum(i * r) FROM (SELECT i, row_number() OVER (ORDER BY hash(i)) AS r "
        "FROM range(3000000) t(i))"
    ).fetchone())
"""


def test_two_processes_spilling_into_one_spill_folder_both_answer_right(
    store: str, tmp_path: Path
) -> None:
    """Two workers on one machine share a home; DuckDB names spill files alike in every
    database, so a shared folder made them read each other's blocks (an IO error or a crash)."""
    env = {
        **os.environ,
        "DUTYDESK_HOME": str(tmp_path / "home"),
        "DUTYDESK_EXPORT_MEMORY_LIMIT": "64MiB",
    }
    expected = [
        str((6000000, 6000000)),
        str(
            subprocess.run(
                [sys.executable, "-c", SPILLER, store],
                env={**env, "DUTYDESK_EXPORT_MEMORY_LIMIT": "4GiB"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()[1]
        ),
    ]
    spillers = [
        subprocess.Popen(
            [sys.executable, "-c", SPILLER, store],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for spiller in spillers:
        out, err = spiller.communicate(timeout=300)
        assert spiller.returncode == 0, err
        assert out.splitlines() == expected
    assert list((tmp_path / "home" / "export-spill").iterdir()) == []


def test_spill_folders_of_dead_processes_on_this_machine_are_removed_at_the_next_open(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = tmp_path / "spill"
    monkeypatch.setenv("DUTYDESK_EXPORT_SPILL_FOLDER", str(spill))
    clear_caches()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(gone.stdout)
    here = socket.gethostname()
    left = {
        "dead": spill / f"{dead_pid}-1-0123abcd@{here}",
        "reused pid": spill / f"{os.getpid()}-7-89abcdef@{here}",  # not named by this process
        "alive": spill / f"{os.getppid()}-1-0123abcd@{here}",
        "other machine": spill / f"{dead_pid}-1-0123abcd@not-{here}",
        "not ours": spill / "keep-me",
    }
    for folder in left.values():
        folder.mkdir(parents=True)
        (folder / "duckdb_temp_storage_S64K-0.tmp").write_bytes(b"x" * 10)
    with closing(_engine.open_database(store, threads=1)):
        remaining = {name for name, folder in left.items() if folder.exists()}
    assert remaining == {"alive", "other machine", "not ours"}


@pytest.mark.parametrize("value", ["lots", "1GiB'; DROP", "-1GB", "10"])
def test_a_memory_limit_that_is_not_a_size_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="export_memory_limit"):
        Settings(export_memory_limit=value)
    assert get_settings().export_memory_limit == "1GiB"
