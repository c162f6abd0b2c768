"""Telling an id from a name in what someone typed."""

from __future__ import annotations

import pytest

from dutydesk.idents import ID_MAX, as_id


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("12", 12),
        (12, 12),
        ("0", 0),
        (str(ID_MAX), ID_MAX),
        (str(ID_MAX + 1), None),  # past any integer column: a name, never a database error
        ("99999999999999999999", None),
        ("\u00b2", None),  # a superscript two: str.isdigit says yes, int() says no
        ("\u0663", None),  # an Arabic-Indic three: int() takes it, an id is ASCII
        ("-3", None),
        ("12a", None),
        ("", None),
        (" 12", None),
    ],
)
def test_only_ascii_digits_within_an_id_columns_range_are_an_id(
    typed: str | int, expected: int | None
) -> None:
    assert as_id(typed) == expected
