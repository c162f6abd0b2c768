"""A database error reaches the operator as what failed and what to do: never the statement,
its parameters (a token's hash) or a traceback."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dutydesk import migrations
from dutydesk.db import build_engine, describe_database_error
from tests.test_worker import desk_env, free_port, run_dutydesk

HEX_HASH = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def locked_desk(home: Path) -> Iterator[dict[str, str]]:
    """A migrated desk whose ops database another connection holds the write lock of, and the
    environment of a command that waits only briefly for it."""
    path = home / "dutydesk.sqlite"
    migrations.upgrade(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield desk_env(home, DUTYDESK_SQLITE_BUSY_TIMEOUT_SECONDS="0.2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.timeout(120)
def test_a_command_on_a_locked_database_names_the_lock_and_no_secret(
    locked_desk: dict[str, str], home: Path
) -> None:
    done = run_dutydesk(locked_desk, "tokens", "create", "--name", "n", "--scope", "read")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert done.stderr.startswith("error: the database is locked by another process"), output
    assert "retry, or stop the other writer" in done.stderr
    for secret_or_noise in ("parameters", "INSERT", "Traceback", "[SQL"):
        assert secret_or_noise not in output
    assert not HEX_HASH.search(output), output
    assert done.stdout == ""  # no token was made, so none is shown


def test_a_failed_statement_error_keeps_the_parameters_out_of_its_own_text(
    tmp_path: Path,
) -> None:
    engine = build_engine(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    secret = "a" * 64
    try:
        with pytest.raises(DBAPIError) as raised, engine.begin() as connection:
            connection.execute(
                text("INSERT INTO missing_table VALUES (:secret)"), {"secret": secret}
            )
    finally:
        engine.dispose()
    # Whatever prints the error (a traceback in a log, a job's error), the value is not in it.
    assert secret not in str(raised.value)
    described = describe_database_error(raised.value)
    assert described == (
        "the database failed (no such table: missing_table): check the database, then retry"
    )


def test_an_unreachable_postgresql_is_described_as_unreachable() -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"
    engine = build_engine(url)
    try:
        with pytest.raises(DBAPIError) as raised, engine.connect():
            pass
    finally:
        engine.dispose()
    described = describe_database_error(raised.value, "the ops database")
    assert described.startswith("cannot reach the ops database (")
    assert described.endswith("): check its URL and that it is running")


def test_a_command_on_an_unreachable_ops_database_says_so(home: Path) -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"
    done = run_dutydesk(desk_env(home, DUTYDESK_DATABASE_URL=url), "tokens", "list")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: cannot reach the ops database postgresql+psycopg://")
    assert "Traceback" not in done.stderr
