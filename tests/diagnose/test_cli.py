"""`dutydesk diagnose ...`: projects and their DSNs, groups, and Supervisor processes."""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.diagnose import service
from dutydesk.settings import get_settings
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


def test_the_failover_template_stops_the_primary_and_starts_the_failover_through_commands(
    supervisord: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk.runbooks.releases import _steps
    from dutydesk.runbooks.releases import service as releases

    desk = [sys.executable, "-m", "dutydesk", "diagnose"]
    # One supervisord plays both machines: its `web` is the primary's process.
    commands = {
        "stop-primary": [*desk, "supervisor-stop", "app-1", "web:web", "--reason", "failover"],
        "confirm-primary-stopped": [*desk, "supervisor-expect", "app-1", "web:web", "STOPPED"],
        "start-failover": [*desk, "supervisor-start", "app-1", "web:web", "--reason", "failover"],
        "confirm-failover-running": [
            *desk,
            "supervisor-expect",
            "app-1",
            "web:web",
            "RUNNING",
            # `supervisor-start` returns once the process runs, so the check after it answers
            # at once; the check before it (expected to fail) sits the whole wait out.
            "--within",
            "2",
        ],
        "start-primary": [*desk, "supervisor-start", "app-1", "web:web", "--reason", "back"],
    }
    monkeypatch.setenv("DUTYDESK_RELEASE_COMMANDS", json.dumps(commands))
    get_settings.cache_clear()
    assert dutydesk("db", "upgrade").exit_code == 0
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    assert (
        dutydesk(
            "diagnose",
            "supervisor-add",
            "app-1",
            supervisord.url,
            "--username",
            "desk",
            "--password-file",
            str(secret),
        ).exit_code
        == 0
    )
    text = (Path(__file__).parents[2] / "docs" / "failover.yaml").read_text()
    with transaction() as session:
        template = releases.load_yaml(session, text, actor="test")
        steps = [(step.name, step.kind, step.params.get("command")) for step in template.steps]
    assert [command for _, kind, command in steps if kind == "command"] == list(commands)

    stopped = _steps._command_of({"command": "stop-primary", "timeout_seconds": 60})
    assert "stop web:web: done" in stopped.output["stdout"]
    assert supervisord.state("web:web") == "STOPPED"
    # Both checks only read the stopped state: they run side by side (each is a `dutydesk`
    # process of its own).
    with ThreadPoolExecutor(2) as pool:
        confirming = pool.submit(
            _steps._command_of, {"command": "confirm-primary-stopped", "timeout_seconds": 60}
        )
        too_early = pool.submit(
            _steps._command_of, {"command": "confirm-failover-running", "timeout_seconds": 60}
        )
        confirmed = confirming.result()
        with pytest.raises(_steps.StepFailed, match="exited with 1"):
            too_early.result()
    assert "web:web is STOPPED" in confirmed.output["stdout"]
    _steps._command_of({"command": "start-failover", "timeout_seconds": 60})
    running = _steps._command_of({"command": "confirm-failover-running", "timeout_seconds": 60})
    assert "web:web is RUNNING" in running.output["stdout"]


def verdict_titles(output: str) -> list[str]:
    return [
        title for _, title in re.findall(r"^(OK|UNUSUAL|FAILING|UNKNOWN)\s+(.+)$", output, re.M)
    ]


def test_diagnose_service_runs_the_checklist_as_diagnose_run_does() -> None:
    from dutydesk import registry
    from dutydesk.diagnose import checks, services
    from dutydesk.diagnose.demo import seed_diagnose

    assert dutydesk("db", "upgrade").exit_code == 0
    with transaction() as session:
        seed_diagnose(session, registry.DemoContext(password="x", made=[]))
    every_line = [checks.TITLES[key] for key in services.DEFAULT_CHECKLIST]
    short = dutydesk("diagnose", "export")
    assert short.exit_code == 0, short.output
    assert short.stdout.startswith("diagnosis ") and " of export at " in short.stdout
    assert verdict_titles(short.stdout) == every_line
    long = dutydesk("diagnose", "run", "export")
    assert long.exit_code == 0 and verdict_titles(long.stdout) == every_line
    # The run's options follow the service's name in the short form too.
    with transaction() as session:
        from dutydesk.tickets import service as tickets

        ticket = tickets.create_ticket(session, title="export is slow", actor="test").ticket
        assert ticket is not None
        key, ticket_id = ticket.key, ticket.id
    noted = dutydesk("diagnose", "export", "--ticket", key)
    assert noted.exit_code == 0, noted.output
    with transaction() as session:
        from sqlalchemy import select

        from dutydesk.tickets.models import TicketNote

        notes = session.scalars(select(TicketNote).where(TicketNote.ticket_id == ticket_id)).all()
        assert [note.body.splitlines()[0][:24] for note in notes] == ["**Diagnosis of export** "]


def test_an_unknown_service_is_named_and_exits_non_zero_in_both_forms() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    for args in (["diagnose", "nothing"], ["diagnose", "run", "nothing"]):
        missing = dutydesk(*args)
        assert missing.exit_code == 2, missing.output
        assert "error: no service 'nothing'" in missing.stderr
    typo = dutydesk("diagnose", "servces")
    assert typo.exit_code == 2 and "no service 'servces' (the command 'services'?)" in typo.stderr
    # Options before the service are the group's, which has none: a usage error, not a run.
    wrong = dutydesk("diagnose", "--ticket", "DD-1", "export")
    assert wrong.exit_code == 2 and "No such option" in wrong.output


def test_a_service_named_like_a_command_is_reached_with_diagnose_run(tmp_path: Path) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    description = tmp_path / "services.yaml"
    description.write_text("name: services\nchecklist: [changes]\n")
    assert dutydesk("diagnose", "service-add", str(description)).exit_code == 0
    listed = dutydesk("diagnose", "services")
    assert listed.exit_code == 0 and re.search(r"^\d+\s+services\s+changes$", listed.stdout, re.M)
    ran = dutydesk("diagnose", "run", "services")
    assert ran.exit_code == 0, ran.output
    assert verdict_titles(ran.stdout) == ["Releases and change requests in the last 24 hours"]


def test_diagnose_help_says_a_service_name_runs_its_checklist() -> None:
    shown = dutydesk("diagnose", "--help")
    assert shown.exit_code == 0
    assert "Usage: dutydesk diagnose [OPTIONS] SERVICE [--ticket KEY] | COMMAND" in shown.stdout
    assert "`dutydesk diagnose SERVICE [--ticket KEY]` runs the service's checklist" in " ".join(
        shown.stdout.split()
    )
    assert "`dutydesk diagnose run NAME`" in " ".join(shown.stdout.split())
    assert dutydesk("diagnose").exit_code in (0, 2)  # no arguments: the help, not a run


def test_diagnose_service_in_a_fresh_process(tmp_path: Path) -> None:
    import subprocess

    assert dutydesk("db", "upgrade").exit_code == 0
    description = tmp_path / "shop.yaml"
    description.write_text("name: shop\nchecklist: [alarms, changes]\n")
    assert dutydesk("diagnose", "service-add", str(description)).exit_code == 0
    # Each form in a fresh process of its own, one after the other.
    for form in (["shop"], ["run", "shop"]):
        done = subprocess.run(
            [sys.executable, "-m", "dutydesk", "diagnose", *form],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert verdict_titles(done.stdout) == [
            "Monitoring warnings: open alarms",
            "Releases and change requests in the last 24 hours",
        ]
