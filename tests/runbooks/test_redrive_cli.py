"""`dutydesk redrive add | list | show | submit | verify`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.people import service as people
from tests.runbooks.test_redrive import store  # noqa: F401 (a fixture)

PASSWORD = "long enough pw"


def dutydesk(*args: str, given: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=given)


def test_redrive_commands_add_list_show_submit_verify(
    store: sessionmaker[Session],  # noqa: F811
    tmp_path: Path,
) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    with transaction() as session:
        people.add_user(session, "olga", "operator", email="olga@desk.example", password=PASSWORD)
        people.add_user(session, "abe", "approver", email="abe@desk.example", password=PASSWORD)
    added = dutydesk(
        "redrive", "add", "--study", "study-a", "--reason", "DD-9", "r-a1", "r-a2", "bogus"
    )
    assert added.exit_code == 0, added.output
    assert "refused: line 3: unknown record ID 'bogus'" in added.output
    assert "Batch 1: 2 added, 1 refused." in added.stdout
    listed = tmp_path / "ids.txt"
    listed.write_text("r-a2\nr-a3\n\nr-off1\n")
    from_file = dutydesk(
        "redrive",
        "add",
        "--batch",
        "1",
        "--study",
        "study-a",
        "--reason",
        "DD-9",
        "--file",
        str(listed),
    )
    assert from_file.exit_code == 0, from_file.output
    assert "refused: line 4: record 'r-off1' belongs to study 'study-off', not 'study-a'" in (
        from_file.output
    )
    assert "1 added, 1 duplicate merged (r-a2), 1 refused" in from_file.stdout
    both = dutydesk("redrive", "add", "--reason", "x", "--file", str(listed), "r-a1")
    assert both.exit_code == 2 and "not both" in both.output
    assert "open              3 IDs" in dutydesk("redrive", "list").stdout
    shown = dutydesk("redrive", "show", "1")
    assert shown.exit_code == 0 and "IDs 3  sha256 " in shown.stdout
    assert "study-a" in shown.stdout and "DD-9" in shown.stdout
    never = dutydesk("redrive", "verify", "1")
    assert never.exit_code == 2 and "has not run" in never.output
    wrong = dutydesk("redrive", "submit", "1", "--user", "olga", given="nope\n")
    assert wrong.exit_code == 2 and "wrong username or password" in wrong.output
    submitted = dutydesk("redrive", "submit", "1", "--user", "olga", given=f"{PASSWORD}\n")
    assert submitted.exit_code == 0, submitted.output
    assert "is change request #" in submitted.stdout and "(pending)" in submitted.stdout
    # Editing the submitted batch needs a person (it revises the change request).
    anonymous = dutydesk("redrive", "add", "--batch", "1", "--reason", "x", "r-a4")
    assert anonymous.exit_code == 2 and "needs a person" in anonymous.output
    revised = dutydesk(
        "redrive",
        "add",
        "--batch",
        "1",
        "--reason",
        "x",
        "--user",
        "olga",
        "r-a4",
        given=f"{PASSWORD}\n",
    )
    assert revised.exit_code == 0, revised.output
    assert "its signoffs were dropped" in revised.stdout
    assert dutydesk("redrive", "show", "99").exit_code == 2
