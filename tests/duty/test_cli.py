"""`dutydesk duty now [ROTATION] | add | override`."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.people import service as people


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_duty_commands_add_a_rotation_an_override_and_say_who_is_on_duty() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    assert "no rotations yet" in dutydesk("duty", "now").stdout
    with transaction() as session:
        for name in ("ana", "ben"):
            people.add_user(session, name, "operator", email=None, password="long enough pw")
    added = dutydesk(
        "duty",
        "add",
        "primary",
        "--member",
        "ana",
        "--member",
        "ben",
        "--time-zone",
        "Europe/Berlin",
        "--lead",
        "ben",
    )
    assert added.exit_code == 0, added.output
    assert dutydesk("duty", "now", "primary").stdout.startswith("primary: ana until ")
    result = dutydesk(
        "duty",
        "override",
        "primary",
        "ben",
        "--from",
        "2000-01-01T00:00",
        "--to",
        "2100-01-01T00:00",
        "--reason",
        "ana on leave",
    )
    assert result.exit_code == 0, result.output
    assert (
        "primary: ben until 2100-01-01 00:00 UTC (override: ana on leave)"
        in dutydesk("duty", "now").stdout
    )


def test_duty_commands_refuse_bad_input_with_a_message() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    bad_zone = dutydesk("duty", "add", "x", "--member", "nobody", "--time-zone", "Nowhere/X")
    assert bad_zone.exit_code != 0 and "unknown time zone 'Nowhere/X'" in bad_zone.output
    missing = dutydesk("duty", "now", "ghost")
    assert missing.exit_code != 0 and "no rotation named 'ghost'" in missing.output
