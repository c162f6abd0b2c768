"""docs/runbooks.md shows the one table of who may move each state, as the code has it."""

from __future__ import annotations

from pathlib import Path

from dutydesk.runbooks._moves import markdown_table

DOC = Path(__file__).parents[2] / "docs" / "runbooks.md"


def test_the_docs_hold_the_codes_table_of_state_moves() -> None:
    assert markdown_table() in DOC.read_text(), (
        "docs/runbooks.md must hold dutydesk.runbooks._moves.markdown_table() as it is now"
    )
