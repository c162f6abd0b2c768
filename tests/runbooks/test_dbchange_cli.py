"""`dutydesk dbchange` as an operator uses it, on the SQLite ops database in DUTYDESK_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from dutydesk.db import transaction
from dutydesk.people import service as people
from tests.conftest import TEST_PASSWORD, clear_caches
from tests.runbooks.dbchange_kit import TargetDb
from tests.test_cli import dutydesk, ok, refused

TARGET_PASSWORD = "never-printed-Pa55word"
SCRIPT = "UPDATE items SET status = 'closed' WHERE n <= 3; -- close; three\n"


@pytest.fixture
def desk(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TargetDb:
    """A migrated desk with an operator, a tasks folder, and a SQLite target with items."""
    repo = tmp_path / "repo"
    task = repo / "tasks" / "20261207_close_three" / "close_three.sql"
    task.parent.mkdir(parents=True)
    task.write_text(SCRIPT)
    monkeypatch.setenv("DUTYDESK_DBCHANGE_TASKS_DIR", str(repo))
    clear_caches()
    ok("db", "upgrade")
    with transaction() as session:
        people.add_user(session, "olga", "operator", email=None, password=TEST_PASSWORD)
    target = TargetDb("sqlite", f"sqlite:///{tmp_path / 'items.sqlite'}")
    target.make_items()
    return target


def test_targets_add_list_and_test_never_print_the_password(desk: TargetDb) -> None:
    added = ok(
        "dbchange",
        "targets",
        "add",
        "items-db",
        desk.url,
        "--write-user",
        "app",
        "--passwords",
        "--lock-timeout-ms",
        "500",
        input=f"{TARGET_PASSWORD}\n{TARGET_PASSWORD}\n",
    )
    assert "target items-db: sqlite://app:***@/" in added.stdout
    listed = ok("dbchange", "targets", "list")
    assert "items-db" in listed.stdout and "lock 500 ms" in listed.stdout
    tested = ok("dbchange", "targets", "test", "items-db")
    assert "read: ok (SQLite 3." in tested.stdout and "write: ok" in tested.stdout
    assert "test ok" in ok("dbchange", "targets", "list").stdout
    for output in (added.output, listed.output, tested.output):
        assert TARGET_PASSWORD not in output
    assert "exists already" in refused("dbchange", "targets", "add", "items-db", desk.url).output
    assert (
        "unsupported database" in refused("dbchange", "targets", "add", "x", "oracle://h/d").output
    )


def test_new_dry_run_show_and_apply_from_the_command_line(desk: TargetDb, tmp_path: Path) -> None:
    ok("dbchange", "targets", "add", "items-db", desk.url)
    script = tmp_path / "close.sql"
    script.write_text(SCRIPT)
    made = ok(
        "dbchange",
        "new",
        "--target",
        "items-db",
        str(script),
        "--user",
        "olga",
        input=f"{TEST_PASSWORD}\n",
    )
    assert "database change #1" in made.stdout
    by_task = ok(
        "dbchange",
        "new",
        "--target",
        "items-db",
        "--task",
        "tasks/20261207_close_three/close_three.sql",
        "-u",
        "olga",
        input=f"{TEST_PASSWORD}\n",
    )
    assert "database change #2" in by_task.stdout
    assert (
        "is not a task script path"
        in refused(
            "dbchange",
            "new",
            "--target",
            "items-db",
            "--task",
            "../etc/passwd.sql",
            "-u",
            "olga",
            input=f"{TEST_PASSWORD}\n",
        ).output
    )

    dry = ok("dbchange", "dry-run", "1", "--user", "olga", input=f"{TEST_PASSWORD}\n")
    assert "dry run on items-db: ok" in dry.stdout
    assert "3 rows" in dry.stdout and "table items: unchanged" in dry.stdout
    shown = ok("dbchange", "show", "1")
    assert "[pending]" in shown.stdout and "-- close; three" in shown.stdout
    assert desk.rows("SELECT count(*) FROM items WHERE status = 'closed'") == [(0,)]
    applied = refused("dbchange", "apply", "1", "-u", "olga", input=f"{TEST_PASSWORD}\n")
    assert "only once approved" in applied.output
    wrong = dutydesk("dbchange", "dry-run", "1", "-u", "olga", input="not it\n")
    assert wrong.exit_code == 2 and "wrong username or password" in wrong.output
