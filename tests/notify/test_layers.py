"""Each of these pairs of modules depends one way only, so either can be read without the
other: duty without notify's service internals and notify's service without duty; silences
without the alarm service. Function-local imports count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "dutydesk"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("module", "must_not_import"),
    [
        ("notify/service.py", "dutydesk.duty"),
        ("alarms/silences.py", "dutydesk.alarms.service"),
    ],
)
def test_module_does_not_import_the_one_above_it(module: str, must_not_import: str) -> None:
    imports = imported_modules(SOURCE / module)
    assert not {name for name in imports if name.startswith(must_not_import)}


def test_duty_reaches_notify_only_through_its_one_entry() -> None:
    imports = imported_modules(SOURCE / "duty" / "service.py")
    assert {name for name in imports if name.startswith("dutydesk.notify")} == {
        "dutydesk.notify.service",
        "dutydesk.notify.service.notify_user",
    }
