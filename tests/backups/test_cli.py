"""`dutydesk backup ...` in-process on the desk's own ops database: targets, run, verify,
list, and a restore that needs --replace and the typed name to overwrite anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from dutydesk import migrations
from dutydesk.cli import app
from dutydesk.settings import get_settings


def dutydesk(*args: str, given: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=given)
    return result.exit_code, result.stdout, result.stderr


def test_run_verify_list_and_restore_the_ops_database(home: Path, tmp_path: Path) -> None:
    migrations.upgrade(get_settings().effective_database_url)
    code, out, _ = dutydesk("backup", "targets")
    assert code == 0 and out.startswith("ops ") and " new " in out
    code, out, err = dutydesk("backup", "run", "ops")
    assert code == 0, err
    assert out.startswith("backup 1 of ops:") and ".sqlite.zst" in out
    code, out, err = dutydesk("backup", "verify", "ops")
    assert code == 0, err
    assert "drill of ops (backup 1): passed; RPO" in out
    code, out, _ = dutydesk("backup", "list", "ops")
    assert "succeeded verified" in " ".join(out.split())

    restored = tmp_path / "restored.sqlite"
    code, out, err = dutydesk("backup", "restore", "ops", "--to", str(restored))
    assert code == 0, err
    with sqlite3.connect(restored) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("SELECT count(*) FROM backup_targets").fetchone() == (2,)

    code, _, err = dutydesk("backup", "restore", "ops", "--to", str(restored))
    assert code == 2 and "exists; choose a new path or give --replace" in err
    code, _, err = dutydesk("backup", "restore", "ops")
    assert code == 2 and "needs --replace" in err
    code, _, err = dutydesk("backup", "restore", "ops", "--replace", given="opz\n")
    assert code == 2 and "not confirmed: nothing was restored" in err
    code, out, err = dutydesk("backup", "restore", "ops", "--replace", given="ops\n")
    assert code == 0, err
    assert "into " + str(home / "dutydesk.sqlite") in out


def test_unknown_target_and_bad_time_are_named(home: Path) -> None:
    migrations.upgrade(get_settings().effective_database_url)
    code, _, err = dutydesk("backup", "run", "nope")
    assert code == 2 and "no backup target named 'nope'" in err
    code, _, err = dutydesk("backup", "restore", "ops", "--at", "yesterday")
    assert code == 2 and "'yesterday' is not a time" in err
    code, _, err = dutydesk("backup", "add", "x", "mysql://root@h/db")
    assert code == 2 and "cannot back up mysql" in err
