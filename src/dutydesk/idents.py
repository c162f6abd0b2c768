"""Telling a row's id from its name in what someone typed (`dbchange show 12`, `/services/db`)."""

from __future__ import annotations

ID_MAX = 2**63 - 1  # the largest id a database's integer column can be asked about


def as_id(ident: str | int) -> int | None:
    """`ident` as a row id when it can be one (ASCII digits within an integer column's
    range); None when it can only be a name. `str.isdigit` alone takes `²` and `٣`, and
    `int()` refuses the first; a number past the column's range is refused by the database."""
    text = str(ident)
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= ID_MAX else None
