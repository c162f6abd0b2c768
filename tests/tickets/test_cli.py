"""`dutydesk tickets list | show KEY | note KEY TEXT | assign KEY USER | close KEY`."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.people import service as people
from dutydesk.tickets import service
from tests.tickets.conftest import alarm


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> str:
    result = dutydesk(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tickets_commands_walk_the_meeting_flow() -> None:
    ok("db", "upgrade")
    with transaction() as session:
        people.add_user(session, "olga", "operator", email=None, password="long enough pw")
        ticket = service.open_or_update_ticket(session, alarm()).ticket
        assert ticket is not None
        key = ticket.key
    listed = ok("tickets", "list")
    assert key in listed and "Disk usage above 90% on db-1" in listed and "open" in listed
    assert ok("tickets", "assign", key, "olga") == f"{key} assigned to olga\n"
    assert ok("tickets", "note", key, "Rotated the capybara logs") == f"added a note to {key}\n"
    assert key in ok("tickets", "list", "--q", "capybara")
    closed = ok(
        "tickets",
        "close",
        key,
        "--resolution",
        "cleaned",
        "--link",
        "https://tracker.example/browse/OPS-3",
    )
    assert closed == f"closed {key}\n"
    assert key not in ok("tickets", "list")
    assert key in ok("tickets", "list", "--status", "closed")
    shown = ok("tickets", "show", key)
    for expected in ("status=closed", "assignee=olga", "capybara", "OPS-3", "resolution: cleaned"):
        assert expected in shown
    assert "opened" in shown and "closed" in shown


def test_tickets_commands_refuse_bad_input_with_a_message() -> None:
    ok("db", "upgrade")
    with transaction() as session:
        ticket = service.open_or_update_ticket(session, alarm()).ticket
        assert ticket is not None
        key = ticket.key
    for args, problem in [
        (("show", "DD-999"), "no ticket DD-999"),
        (("note", key, "  "), "note text is empty"),
        (("assign", key, "ghost"), "unknown user 'ghost'"),
        (("close", key, "--link", "nope"), "is not an http(s) address"),
        (("list", "--status", "pending"), "unknown status 'pending'"),
    ]:
        result = dutydesk("tickets", *args)
        assert result.exit_code == 2, result.output
        assert problem in result.stderr


def test_tickets_list_status_any_and_a_hyphenated_search() -> None:
    ok("db", "upgrade")
    with transaction() as session:
        people.add_user(session, "olga", "operator", email=None, password="long enough pw")
        first = service.open_or_update_ticket(
            session, alarm("fp-1", title="Disk full on db-1", description="3 volumes", payload={})
        ).ticket
        third = service.open_or_update_ticket(
            session, alarm("fp-3", title="Disk full on db-3", description="", payload={})
        ).ticket
        assert first is not None and third is not None
        service.close_ticket(session, third, actor="olga")
        keys = first.key, third.key
    listed = ok("tickets", "list", "--status", "any")
    assert keys[0] in listed and keys[1] in listed
    assert ok("tickets", "list", "--status", "all") == listed
    result = dutydesk("tickets", "list", "-q", "db-3")
    assert result.exit_code == 0 and result.stdout == ""
    assert "1 more with another status: add --status any" in result.stderr
    found = ok("tickets", "list", "-q", "db-3", "--status", "any")
    assert keys[1] in found and keys[0] not in found
    assert keys[0] in ok("tickets", "list", "-q", "db-1")
