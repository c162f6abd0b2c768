"""`dutydesk records ...` and the record store's part of `dutydesk db ...`, run as operators do."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dutydesk.db import transaction
from dutydesk.records import migrations, service
from dutydesk.records.models import Record
from dutydesk.records.store import records_session_factory
from tests.records.conftest import STUDY, TAPPING_FIELDS
from tests.records.test_service import record
from tests.test_cli import dutydesk, ok, refused


@pytest.fixture
def migrated(home: Path) -> Path:
    """The home's ops database and record store, migrated with `dutydesk db upgrade`."""
    ok("db", "upgrade")
    return home


@pytest.fixture
def with_study(migrated: Path) -> str:
    """The home's record store holding the tapping study."""
    with transaction(records_session_factory()) as session:
        service.upsert_study(session, STUDY, "Study X", project="syn1")
        service.upsert_schema(session, STUDY, "tapping", 1, TAPPING_FIELDS)
    return STUDY


def stored_records() -> int:
    with transaction(records_session_factory()) as session:
        return int(session.scalar(select(func.count()).select_from(Record)) or 0)


def test_db_upgrade_migrates_the_record_store_too(home: Path) -> None:
    result = ok("db", "upgrade")
    head = migrations.heads()[0]
    assert f"sqlite:///{home.resolve() / 'records.sqlite'} (record store) is at {head}" in (
        result.stdout
    )
    check = ok("db", "check")
    assert f"ok: record store at {head}, matches the models" in check.stdout
    current = ok("db", "current")
    assert f"record store: {head}" in current.stderr


def test_db_check_fails_while_the_record_store_is_behind(migrated: Path) -> None:
    migrations.downgrade(f"sqlite:///{migrated / 'records.sqlite'}", "base")
    check = dutydesk("db", "check")
    assert check.exit_code == 1
    assert "record store is at nothing, newest is r0001" in check.stderr
    assert "record store: (empty: never migrated)" in ok("db", "current").stderr


def test_import_prints_counts_and_each_bad_line(with_study: str, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(record(id="r1")), "not json", json.dumps(record(id="r2", study_id="zz"))]
    path.write_text("\n".join(lines) + "\n")

    first = dutydesk("records", "import", str(path))
    assert first.exit_code == 1, first.output
    assert "imported 1 records, skipped 0 already stored, 2 bad lines" in first.stdout
    assert re.search(r"^line 2: not JSON: ", first.stderr, re.MULTILINE)
    assert "line 3: unknown study 'zz'" in first.stderr

    again = dutydesk("records", "import", str(path))
    assert "imported 0 records, skipped 1 already stored, 2 bad lines" in again.stdout
    assert stored_records() == 1


def test_clean_import_exits_zero(with_study: str, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record(id="r1")) + "\n" + json.dumps(record(id="r2")) + "\n")
    result = ok("records", "import", str(path))
    assert result.stdout.strip() == "imported 2 records, skipped 0 already stored, 0 bad lines"
    assert result.stderr == ""


def test_generate_reports_what_it_made_and_how_fast(migrated: Path) -> None:
    result = ok(
        "records", "generate", "--seed", "3", "--studies", "3", "--participants", "10",
        "--days", "2", "--records-per-day", "25", "--end", "2026-01-31",
    )  # fmt: skip
    assert re.search(
        r"^generated 3 studies, 30 participants \(3 withdrew\), 15 schemas, 150 records "
        r"\(\d+ with a malformed value\), \d+ attachments$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert re.search(r"^wrote them in \d+\.\d s: [\d,]+ records/s$", result.stdout, re.MULTILINE)
    assert stored_records() == 150
    again = ok("records", "generate", "--studies", "1", "--participants", "10", "--days", "2")
    assert "studies: study-d" in again.stdout
    clash = refused("records", "generate", "--seed", "4", "--study", "study-a")
    assert "study-a already in the record store with other content" in clash.stderr
    assert stored_records() == 150 + 2 * 100


def test_generate_refuses_a_date_that_is_not_one(migrated: Path) -> None:
    result = refused("records", "generate", "--end", "31/01/2026")
    assert "--end" in result.output


@pytest.mark.parametrize("args", [["generate"], ["import", "records.jsonl"]], ids=" ".join)
def test_records_commands_refuse_an_unmigrated_store(
    home: Path, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "records.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    args = ["records", *args]
    assert "run `dutydesk db upgrade` first" in refused(*args).stderr
    from dutydesk import migrations as ops_migrations
    from dutydesk.settings import get_settings

    ops_migrations.upgrade(get_settings().effective_database_url)
    result = refused(*args)
    assert "the record store is not up to date; run `dutydesk db upgrade` first" in result.stderr


def test_settings_hide_the_record_store_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import clear_caches

    monkeypatch.setenv("DUTYDESK_RECORDS_URL", "postgresql+psycopg://rs:rs-secret@db/records")
    clear_caches()
    shown = ok("settings").stdout
    assert "rs-secret" not in shown
    assert "DUTYDESK_RECORDS_URL=postgresql+psycopg://rs:***@db/records" in shown


def test_a_record_store_url_of_another_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from dutydesk.settings import Settings

    monkeypatch.setenv("DUTYDESK_RECORDS_URL", "mysql://x")
    with pytest.raises(ValueError, match="must start with one of sqlite, postgresql"):
        Settings()
