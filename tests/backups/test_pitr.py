"""PostgreSQL point-in-time recovery on scratch clusters made with initdb: a base backup plus
archived WAL restored to a moment between two known writes holds exactly the first; the
archiving check says what to change on a server that does not archive."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dutydesk.backups._pitr import (
    ScratchCluster,
    archiving_problems,
    base_backup,
    restore_to,
    scratch_folder,
)
from dutydesk.backups._postgres import psycopg_url
from tests.conftest import POSTGRES_URL
from tests.test_worker import wait_until


@pytest.fixture
def clusters() -> Iterator[list[ScratchCluster]]:
    """Scratch clusters of the test, stopped and removed afterwards."""
    made: list[ScratchCluster] = []
    yield made
    for cluster in made:
        cluster.remove()


def archived(url: str, wal: str) -> bool:
    with psycopg.connect(psycopg_url(url)) as connection:
        row = connection.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
    return row is not None and row[0] is not None and row[0] >= wal


@pytest.mark.timeout(240)
def test_restore_to_a_time_between_two_writes_gives_exactly_the_first(
    clusters: list[ScratchCluster],
) -> None:
    archive = scratch_folder("dutydesk-test-archive-")
    base = scratch_folder("dutydesk-test-base-") / "base"
    # Removed with the clusters: a cluster's remove() deletes its whole folder.
    clusters.extend([ScratchCluster(archive), ScratchCluster(base.parent)])
    source = ScratchCluster(scratch_folder("dutydesk-test-source-"))
    clusters.append(source)
    source.initdb(
        {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
        }
    )
    source.start()
    assert archiving_problems(source.url) == []

    url = psycopg_url(source.url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE writes (id int PRIMARY KEY, note text)")
    base_backup(source.url, base)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO writes VALUES (1, 'first')")
        first_at = connection.execute("SELECT clock_timestamp()").fetchone()
        time.sleep(1.0)
        between = connection.execute("SELECT clock_timestamp()").fetchone()
        time.sleep(1.0)
        connection.execute("INSERT INTO writes VALUES (2, 'second')")
        row = connection.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert first_at and between and row
    wait_until(lambda: archived(source.url, row[0]), 60, "the WAL with both writes to be archived")

    restored = ScratchCluster(scratch_folder("dutydesk-test-restored-"))
    clusters.append(restored)
    at: dt.datetime = between[0]
    restore_to(base, archive, at, restored)

    def promoted() -> bool:
        try:
            with psycopg.connect(psycopg_url(restored.url)) as connection:
                row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
                return row is not None and row[0] is False
        except psycopg.OperationalError:
            return False

    wait_until(promoted, 60, "the restored cluster to reach the moment and promote")
    with psycopg.connect(psycopg_url(restored.url)) as connection:
        rows = connection.execute("SELECT id, note FROM writes ORDER BY id").fetchall()
    assert rows == [(1, "first")]


@pytest.mark.skipif(not POSTGRES_URL, reason="needs DUTYDESK_TEST_POSTGRES_URL")
def test_a_server_without_archiving_is_told_what_to_change() -> None:
    problems = archiving_problems(POSTGRES_URL)
    assert any("archive_mode = on" in problem for problem in problems)
    assert all("restart the server" in problem or "reload" in problem for problem in problems)


def test_scratch_folders_belong_to_the_server_user(tmp_path: Path) -> None:
    folder = scratch_folder("dutydesk-test-owner-")
    try:
        import pwd

        assert pwd.getpwuid(folder.stat().st_uid).pw_name in ("postgres", pwd.getpwuid(0).pw_name)
        assert folder.stat().st_mode & 0o777 == 0o700
    finally:
        folder.rmdir()


@pytest.mark.skipif(not POSTGRES_URL, reason="needs DUTYDESK_TEST_POSTGRES_URL")
def test_the_archiving_command_exits_1_saying_what_to_change(home: Path) -> None:
    from typer.testing import CliRunner

    from dutydesk import migrations
    from dutydesk.cli import app
    from dutydesk.settings import get_settings

    migrations.upgrade(get_settings().effective_database_url)
    runner = CliRunner()
    added = runner.invoke(app, ["backup", "add", "server", POSTGRES_URL])
    assert added.exit_code == 0, added.stderr
    checked = runner.invoke(app, ["backup", "archiving", "server"])
    assert checked.exit_code == 1
    assert "- set archive_mode = on in postgresql.conf, then restart the server" in checked.stdout
    not_pg = runner.invoke(app, ["backup", "archiving", "ops"])
    assert not_pg.exit_code == 2 and "ops is not a PostgreSQL target" in not_pg.stderr
