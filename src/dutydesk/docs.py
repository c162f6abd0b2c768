"""`python -m dutydesk.docs README.md`: rewrite the README's settings table from the settings."""

from __future__ import annotations

import sys
from pathlib import Path

from dutydesk.settings import settings_table

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def with_settings_table(text: str) -> str:
    """The text with the part between the settings markers replaced by the current table."""
    head, found_start, rest = text.partition(START)
    _, found_end, tail = rest.partition(END)
    if not (found_start and found_end):
        raise ValueError(f"the README needs the markers {START} and {END}")
    return f"{head}{START}\n{settings_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    """Rewrite each file named in argv in place."""
    for name in argv or ["README.md"]:
        path = Path(name)
        path.write_text(with_settings_table(path.read_text()))
        print(f"updated the settings table in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
