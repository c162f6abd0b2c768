"""`dutydesk export schedules list | add | remove`: the console's checks, audited."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner, Result

from dutydesk.audit.models import AuditEvent
from dutydesk.cli import app
from dutydesk.db import transaction


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_schedules_are_added_listed_and_removed_and_each_change_is_audited() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    assert "no export schedules" in dutydesk("export", "schedules", "list").stdout
    added = dutydesk(
        "export",
        "schedules",
        "add",
        "tokyo-nightly",
        "--time-zone",
        "Asia/Tokyo",
        "--override",
        '{"studyWhitelist": ["study-a"]}',
    )
    assert added.exit_code == 0, added.output
    assert "added export schedule tokyo-nightly (DAILY, Asia/Tokyo)" in added.stdout
    hourly = dutydesk("export", "schedules", "add", "hourly", "--type", "HOURLY")
    assert hourly.exit_code == 0, hourly.output
    listed = dutydesk("export", "schedules", "list").stdout.splitlines()
    assert [line.split()[1] for line in listed] == ["hourly", "tokyo-nightly"]
    assert "Asia/Tokyo" in listed[1] and '{"studyWhitelist": ["study-a"]}' in listed[1]
    assert "next: " in listed[0]
    removed = dutydesk("export", "schedules", "remove", "tokyo-nightly")
    assert removed.exit_code == 0, removed.output
    assert "removed export schedule tokyo-nightly" in removed.stdout
    assert [
        line.split()[1] for line in dutydesk("export", "schedules", "list").stdout.splitlines()
    ] == ["hourly"]
    with transaction() as session:
        events = session.execute(
            select(AuditEvent.action, AuditEvent.actor)
            .where(AuditEvent.object_type == "export_schedules")
            .order_by(AuditEvent.id)
        ).all()
    assert [action for action, _actor in events] == ["create", "create", "delete"]
    assert all(actor.startswith("cli:") for _action, actor in events)


def test_schedule_commands_refuse_bad_input_with_the_consoles_message() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    cases = {
        ("add", "bad name!"): "Schedule name 'bad name!' is not allowed",
        ("add", "x", "--time-zone", "Mars/Olympus"): "Unknown time zone 'Mars/Olympus'",
        ("add", "x", "--type", "WEEKLY"): "Invalid schedule type: 'WEEKLY'",
        ("add", "x", "--override", "{nope"): "The request override is not valid JSON",
        ("add", "x", "--override", '{"tag": "t"}'): "may not set tag",
        ("remove", "ghost"): "no export schedule named 'ghost'",
    }
    for args, message in cases.items():
        result = dutydesk("export", "schedules", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert dutydesk("export", "schedules", "add", "x").exit_code == 0
    again = dutydesk("export", "schedules", "add", "x")
    assert again.exit_code == 2 and "already exists" in again.stderr
