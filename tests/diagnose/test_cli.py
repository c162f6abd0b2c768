"""`dutydesk diagnose ...`: projects and their DSNs, groups, and Supervisor processes."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.diagnose import service
from tests.diagnose.conftest import PASSWORD, Running, event


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_project_add_prints_the_dsn_and_groups_lists_what_came_in() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    made = dutydesk("diagnose", "project-add", "shop")
    assert made.exit_code == 0, made.output
    dsn = re.search(r"dsn: http://([0-9a-f]{32})@127\.0\.0\.1:8000/(\d+)", made.stdout)
    assert dsn is not None
    assert dsn.group(0)[5:] in dutydesk("diagnose", "projects").stdout
    with transaction() as session:
        project = service.get_project(session, "shop")
        service.take_event(session, project, event(release="shop@1"), service.Landed())
    listed = dutydesk("diagnose", "groups", "--project", "shop")
    assert listed.exit_code == 0 and "ValueError: bad input  NEW" in listed.stdout
    again = dutydesk("diagnose", "project-add", "shop")
    assert again.exit_code == 2 and "exists already" in again.stderr


def test_supervisor_commands_list_stop_and_tail_a_real_supervisord(
    supervisord: Running,
    tmp_path: Path,
) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    added = dutydesk(
        "diagnose",
        "supervisor-add",
        "app-1",
        supervisord.url,
        "--username",
        "desk",
        "--password-file",
        str(secret),
    )
    assert added.exit_code == 0, added.output
    listed = dutydesk("diagnose", "supervisor-processes", "app-1")
    assert re.search(r"web:web\s+RUNNING\s+\d+\s+up \d+ s", listed.stdout), listed.stdout
    no_reason = dutydesk("diagnose", "supervisor-stop", "app-1", "web:web")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    stopped = dutydesk("diagnose", "supervisor-stop", "app-1", "web:web", "--reason", "failover")
    assert stopped.exit_code == 0 and "stop web:web: done" in stopped.stdout
    assert supervisord.state("web:web") == "STOPPED"
    tail = dutydesk("diagnose", "supervisor-tail", "app-1", "web:web")
    assert tail.exit_code == 0 and "serving requests" in tail.stdout
    polled = dutydesk("diagnose", "supervisor-poll")
    assert polled.exit_code == 0 and "servers: 1" in polled.stdout
