"""The quick check every command makes before using the ops database: a database at the
newest migration is told from the scripts' text and its version table, without Alembic; any
other state is left to Alembic, which refuses a database behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dutydesk import migrations
from dutydesk.schema_head import at_head, script_head
from tests.conftest import BACKENDS, fresh_database_url

SCRIPT = """revision: str = "{revision}"
down_revision: str | None = {down}
"""


def scripts(folder: Path, *pairs: tuple[str, str]) -> Path:
    folder.mkdir()
    for revision, down in pairs:
        (folder / f"{revision}_x.py").write_text(SCRIPT.format(revision=revision, down=down))
    return folder


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    assert script_head() == migrations.heads()[0]


def test_a_tree_that_is_not_plain_has_no_head_read_from_its_text(tmp_path: Path) -> None:
    line = scripts(tmp_path / "line", ("a", "None"), ("b", '"a"'), ("c", '"b"'))
    assert script_head(line) == "c"
    two_heads = scripts(tmp_path / "two", ("a", "None"), ("b", '"a"'), ("c", '"a"'))
    assert script_head(two_heads) is None
    merge = scripts(tmp_path / "merge", ("a", "None"), ("b", '"a"'), ("c", '("a", "b")'))
    assert script_head(merge) is None
    gap = scripts(tmp_path / "gap", ("a", "None"), ("c", '"b"'))
    assert script_head(gap) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_a_database_at_the_head_is_at_head(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path, "schema_head")
    assert not at_head(url)  # never migrated: no version table
    migrations.upgrade(url)
    assert at_head(url)
    migrations.downgrade(url, "-1")
    assert not at_head(url)
    assert migrations.pending(url)


def test_a_command_on_a_migrated_database_starts_without_alembic(tmp_path: Path) -> None:
    """Every domain loaded too: no module of theirs imports Alembic at its top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUTYDESK_")}
    env["DUTYDESK_HOME"] = str(tmp_path)
    probe = (
        "import sys, typer\n"
        "from dutydesk.commandline import ready_database\n"
        "try:\n    ready_database()\nexcept typer.Exit as stop:\n    sys.exit(stop.exit_code)\n"
        "from dutydesk.registry import load_domains\n"
        "load_domains()\n"
        "print('alembic' in sys.modules)"
    )
    migrations.upgrade(f"sqlite:///{tmp_path / 'dutydesk.sqlite'}")
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    migrations.downgrade(f"sqlite:///{tmp_path / 'dutydesk.sqlite'}", "-1")
    behind = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert behind.returncode == 2
    assert "the ops database is not up to date; run `dutydesk db upgrade` first" in behind.stderr
