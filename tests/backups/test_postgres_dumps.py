"""PostgreSQL targets: `pg_dump -Fc` from one snapshot, drilled by a restore into a scratch
database with pg_amcheck, row counts and sampled rows; a flipped byte fails the drill."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.orm import Session

from dutydesk.backups import ensure_verified_backup, service
from dutydesk.backups.restore import restore_target
from tests.backups.support import flip_byte
from tests.conftest import POSTGRES_URL, fresh_postgres_database

# Each pytest-xdist worker gets databases of its own.
WORKER = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs DUTYDESK_TEST_POSTGRES_URL")


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def study_database() -> Iterator[str]:
    """A PostgreSQL database with a revision and 300 rows in two tables."""
    url = fresh_postgres_database(f"dd_backup_source_{WORKER}")
    with psycopg.connect(plain(url)) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num text PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('0042')")
        connection.execute("CREATE TABLE samples (id serial PRIMARY KEY, label text)")
        connection.execute(
            "INSERT INTO samples (label) SELECT 'sample ' || n FROM generate_series(1, 250) n"
        )
        connection.execute("CREATE TABLE notes (body text)")  # no primary key
        connection.execute("INSERT INTO notes SELECT 'n' || n FROM generate_series(1, 50) n")
    yield url
    drop(url)


def drop(url: str) -> None:
    """Drop a database the test made."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(plain(POSTGRES_URL), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_pg_dump_is_checksummed_restored_and_checked(
    db: Session, tmp_path: Path, study_database: str
) -> None:
    target = service.add_target(db, "study", study_database, destination=str(tmp_path))
    assert target.kind == "postgresql"
    backup = service.take_backup(db, target)
    assert backup.state == "succeeded", backup.error
    assert backup.method == "pg_dump" and backup.schema_revision == "0042"
    assert backup.table_counts == {"alembic_version": 1, "notes": 50, "samples": 250}
    drill = service.verify_backup(db, backup)
    assert drill.state == "passed", drill.error
    assert drill.checks["pg_amcheck"] == "ok" and drill.checks["rows"] == 301
    assert ensure_verified_backup(db, "study", dt.timedelta(hours=1)).id == backup.id


def test_a_flipped_byte_in_a_dump_fails_the_drill(
    db: Session, tmp_path: Path, study_database: str
) -> None:
    target = service.add_target(db, "study", study_database, destination=str(tmp_path))
    backup = service.take_backup(db, target)
    assert backup.location is not None
    flip_byte(Path(backup.location))
    drill = service.verify_backup(db, backup)
    assert drill.state == "failed" and "checksum mismatch" in (drill.error or "")


def test_restore_goes_to_a_new_database_and_never_over_the_live_one_unasked(
    db: Session, tmp_path: Path, study_database: str
) -> None:
    target = service.add_target(db, "study", study_database, destination=str(tmp_path))
    service.take_backup(db, target)
    with pytest.raises(service.BackupInputError, match="needs --replace"):
        restore_target(db, target)
    empty = fresh_postgres_database(f"dd_backup_restored_{WORKER}")
    line = restore_target(db, target, to=empty)
    assert "into postgresql" in line
    with psycopg.connect(plain(empty)) as connection:
        assert connection.execute("SELECT count(*) FROM samples").fetchone() == (250,)
    drop(empty)
