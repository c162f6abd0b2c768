"""The README tells the truth: its settings table, its two commands, and CI runs its tests."""

from __future__ import annotations

import re
from pathlib import Path

from dutydesk.docs import with_settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_settings_table_matches_the_declared_settings() -> None:
    assert with_settings_table(README) == README, "run `make docs` to regenerate the table"


def test_readme_gives_the_demo_and_test_commands() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    assert "make demo\n" in blocks
    assert "make test\n" in blocks


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert script[-1] == "make test"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\n\t\$\(BIN\)/pytest -n auto --dist loadgroup$", makefile, re.M)
    assert "`pytest -n auto --dist loadgroup`" in README


def test_vendored_static_files_carry_their_licences() -> None:
    vendor = ROOT / "src" / "dutydesk" / "web" / "static" / "vendor"
    for library in ("htmx", "uPlot", "pico"):
        assert (vendor / f"{library}.LICENSE").stat().st_size > 0
        assert any(path.name.startswith(library) for path in vendor.iterdir())
