"""`dutydesk changes list | show | approve | reject | run | comment | rules`: each action is
done as a desk user who gives their password; refusals are messages, not tracebacks."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.runbooks import submit_change
from tests.conftest import TEST_PASSWORD
from tests.runbooks.changes_kit import KIND, make_people, new_change


def dutydesk(*args: str, password: str = TEST_PASSWORD) -> Result:
    return CliRunner().invoke(app, list(args), input=password + "\n")


def ok(*args: str) -> str:
    result = dutydesk(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_changes_commands_walk_a_request_from_pending_to_queued() -> None:
    ok("db", "upgrade")
    with transaction() as session:
        people = make_people(session)
        change = new_change(session, people.olga)
        submit_change(session, change, people.olga)
        number, digest = str(change.id), change.evidence_hash
    listed = ok("changes", "list", "--state", "pending")
    assert f"#{number}" in listed and "Re-export two records" in listed and "olga" in listed
    shown = ok("changes", "show", number)
    assert digest in shown and "missing: 1 more signoff from approver (or higher)" in shown
    sign = ("changes", "approve", number, "--data-version", "1", "--evidence-hash", digest)
    wrong = dutydesk(*sign, "--user", "abe", password="not the password")
    assert wrong.exit_code == 2 and "wrong username or password" in wrong.output
    own = dutydesk(*sign, "--user", "olga")
    assert own.exit_code == 2 and "nobody signs off their own" in own.output
    stale = dutydesk(*sign[:4], "2", *sign[5:], "--user", "abe")
    assert stale.exit_code == 2 and "stale data_version" in stale.output
    early = dutydesk("changes", "run", number, "--user", "olga")
    assert early.exit_code == 2 and "runs only once approved" in early.output
    assert f"signed off change #{number}; it is approved\n" in ok(*sign, "--user", "abe")
    assert "commented" in ok("changes", "comment", number, "Running tonight", "--user", "olga")
    assert "queued as job" in ok("changes", "run", number, "--user", "olga")
    timeline = ok("changes", "show", number)
    assert (
        "signed_off" in timeline and "Running tonight" in timeline and "run_requested" in timeline
    )


def test_rules_commands_are_for_admins() -> None:
    ok("db", "upgrade")
    with transaction() as session:
        make_people(session)
    assert f"{KIND}" in ok("changes", "rules", "list")
    refused = dutydesk("changes", "rules", "set", KIND, "admin", "2", "--user", "otto")
    assert refused.exit_code == 2 and "only admins may do this" in refused.output
    assert "needs 2 signoff(s) from admin" in ok(
        "changes", "rules", "set", KIND, "admin", "2", "--user", "ada"
    )
    assert f"{KIND:<14} admin     2\n" in ok("changes", "rules", "list")
    bad = dutydesk("changes", "rules", "set", KIND, "viewer", "1", "--user", "ada")
    assert bad.exit_code == 2 and "cannot sign off" in bad.output
    ok("changes", "rules", "remove", KIND, "admin", "--user", "ada")
    assert "default" in ok("changes", "rules", "list")
