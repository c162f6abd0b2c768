"""`dutydesk broadcast new | list | end` and `dutydesk release load | plan | start | tick |
show`, against a SQLite desk in the test's home."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from tests.conftest import clear_caches


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_broadcast_new_list_and_end(home: Path) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    made = dutydesk(
        "broadcast",
        "new",
        "Acceptance test in progress, please wait",
        "--level",
        "warning",
        "--until",
        "2h",
    )
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("broadcast 1 started, until ")
    listed = dutydesk("broadcast", "list")
    assert "1\twarning\tactive\t" in listed.stdout
    assert "Acceptance test in progress, please wait" in listed.stdout
    ended = dutydesk("broadcast", "end", "1")
    assert ended.exit_code == 0 and "broadcast 1 ended" in ended.stdout
    assert dutydesk("broadcast", "list").stdout.strip() == "no broadcasts"
    assert "ended" in dutydesk("broadcast", "list", "--all").stdout
    again = dutydesk("broadcast", "end", "1")
    assert again.exit_code == 2 and "has ended already" in again.stderr
    bad = dutydesk("broadcast", "new", "x", "--until", "soonish")
    assert bad.exit_code == 2 and "is not a duration" in bad.stderr
    loud = dutydesk("broadcast", "new", "x", "--level", "loud")
    assert loud.exit_code == 2 and "level 'loud' is not one of" in loud.stderr


def test_release_from_a_yaml_file_through_the_command_line(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DUTYDESK_RELEASE_COMMANDS", json.dumps({"tag": [sys.executable, "-c", "print(1)"]})
    )
    clear_caches()
    assert dutydesk("db", "upgrade").exit_code == 0
    refused = tmp_path / "bad.yaml"
    refused.write_text("name: deploy\nsteps:\n  - {name: Wipe, kind: command, command: wipe}\n")
    result = dutydesk("release", "load", str(refused))
    assert result.exit_code == 2
    assert "command 'wipe' is not one of the commands an admin listed" in result.stderr

    good = tmp_path / "deploy.yaml"
    good.write_text(
        "name: deploy\nsteps:\n"
        "  - {name: Change-control form, kind: manual, skip_for_patch: true}\n"
        "  - {name: Tag, kind: manual}\n"
    )
    assert dutydesk("release", "load", str(good)).stdout == "template deploy saved with 2 steps\n"
    assert "kind: manual" in dutydesk("release", "export", "deploy").stdout
    planned = dutydesk("release", "plan", "deploy", "1.0.1")
    assert planned.exit_code == 0, planned.output
    assert "(PATCH: hotfix)" in planned.stdout and "1. skipped" in planned.stdout
    assert dutydesk("release", "start", "1").exit_code == 0
    # The worker runs the advance job; here the command waits for the step it left waiting.
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    with transaction(immediate=True) as session:
        service.advance(session, service.get_release(session, 1))
    ticked = dutydesk("release", "tick", "1", "2", "--note", "tagged v1.0.1")
    assert ticked.exit_code == 0, ticked.output
    with transaction(immediate=True) as session:
        service.advance(session, service.get_release(session, 1))
    shown = dutydesk("release", "show", "1")
    assert "deploy 1.0.1 (PATCH: hotfix) - done" in shown.stdout
    assert "step 2 (Tag) ticked: tagged v1.0.1" in shown.stdout
    missing = dutydesk("release", "tick", "9", "1")
    assert missing.exit_code == 2 and "no release 9" in missing.stderr
