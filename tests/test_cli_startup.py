"""What starting the `dutydesk` command loads: each command imports only what it uses.

Each check runs the command in a fresh Python process (as an operator's shell does) and looks
at the modules that process imported. Start-up time itself is measured in bench/cli_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer._click import Context
from typer.core import TyperGroup
from typer.testing import CliRunner

from dutydesk.cli import DOMAINS, app, load_domain

# Modules that take a noticeable part of a second to import, or that only the web app, the
# jobs or the database need.
HEAVY = (
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic",
    "pydantic_settings",
    "fastapi",
    "celery",
    "apprise",
    "duckdb",
    "pyarrow",
    "httpx",
    "rich",
)
# Runs `dutydesk ARGS` through its entry point, then prints the modules it imported as JSON.
RUN_AND_LIST_MODULES = """
import json, sys
import dutydesk.cli

sys.argv = ["dutydesk", *sys.argv[1:]]
try:
    dutydesk.cli.main()
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run_command(home: Path, *args: str) -> tuple[str, int, set[str]]:
    """Run `dutydesk ARGS` in a new process: its output, exit code and imported modules."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("DUTYDESK_")
    }
    environment.update({"DUTYDESK_HOME": str(home), "DUTYDESK_LOG_ROOTS": str(home)})
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stderr.splitlines()[-1])
    return done.stdout, report["code"], set(report["modules"])


def test_help_lists_every_command_and_imports_no_domain(home: Path) -> None:
    output, code, modules = run_command(home, "--help")
    assert code == 0
    for name in ["up", "web", "worker", "beat", "smtp", "settings", "db", *DOMAINS]:
        assert f" {name} " in output, f"{name} missing from dutydesk --help"
    assert "People who sign in to the console." in output
    assert [m for m in HEAVY if m in modules] == []
    assert [m for m in modules if m.startswith("dutydesk.") and m.endswith("cli")] == [
        "dutydesk.cli"
    ]


def help_page(group: TyperGroup, capsys: pytest.CaptureFixture[str]) -> str:
    """What `dutydesk --help` prints when the root group is `group`."""
    capsys.readouterr()
    text = group.get_help(Context(group, info_name="dutydesk"))
    return text + capsys.readouterr().out


def test_help_page_is_the_same_as_with_every_domain_loaded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The domains' help lines are repeated in `DOMAINS`; they must match the groups' own.
    lazy = typer.main.get_group(app)
    loaded = typer.main.get_group(app)
    for name in DOMAINS:
        loaded.commands[name] = load_domain(name)
    listed = help_page(lazy, capsys)
    assert "Query access and application logs by glob." in listed
    assert listed == help_page(loaded, capsys)


def test_a_domain_is_imported_only_when_its_command_runs(home: Path) -> None:
    output, code, modules = run_command(home, "users", "--help")
    assert code == 0
    assert "add" in output
    assert "dutydesk.people.cli" in modules
    assert "dutydesk.tickets.cli" not in modules
    assert "dutydesk.logs.cli" not in modules


@pytest.mark.parametrize(
    ("domain", "a_command"),
    [("alarms", "seed-rules"), ("logs", "extracts"), ("log-sources", "scan")],
)
def test_domain_commands_list_without_the_web_app_or_duckdb(
    home: Path, domain: str, a_command: str
) -> None:
    output, code, modules = run_command(home, domain, "--help")
    assert code == 0
    assert a_command in output
    assert [m for m in ("fastapi", "duckdb", "pyarrow", "httpx") if m in modules] == []


def test_small_logs_query_loads_no_database_web_or_job_modules(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "access.log").write_text(
        '127.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl/8"\n'
        '10.0.0.2 - - [24/Nov/2026:10:01:00 +0000] "GET /b HTTP/1.1" 404 0 "-" "Firefox/120"\n'
    )
    output, code, modules = run_command(
        home, "logs", "query", str(home / "*.log"), "--format", "nginx", "--where", "status=404"
    )
    assert code == 0, output
    assert "/b" in output
    assert "/a " not in output
    unneeded = ("sqlalchemy", "alembic", "fastapi", "celery", "apprise", "httpx")
    assert [m for m in unneeded if m in modules] == []


@pytest.mark.parametrize(
    "options",
    [["--where", "status=404"], ["--group-by", "status,hour", "--out", "json"]],
)
def test_small_logs_query_loads_no_duckdb_arrow_numpy_or_settings(
    home: Path, options: list[str]
) -> None:
    # A few small files are answered in Python (logs/_small.py); DuckDB, Arrow and numpy, and
    # the settings' pydantic-settings, are most of a second of start-up; pydantic itself (which
    # Typer 0.29 loads to check a command's options) a sixth of one.
    home.mkdir(parents=True, exist_ok=True)
    (home / "access.log").write_text(
        '127.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl/8"\n'
        '10.0.0.2 - - [24/Nov/2026:10:01:00 +0000] "GET /b HTTP/1.1" 404 0 "-" "Firefox/120"\n'
    )
    output, code, modules = run_command(
        home, "logs", "query", str(home / "*.log"), "--format", "nginx", *options
    )
    assert code == 0, output
    assert "404" in output
    heavy = ("duckdb", "pyarrow", "numpy", "pydantic", "pydantic_settings", *HEAVY)
    assert [m for m in heavy if m in modules] == []


def test_misspelt_domain_command_gets_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["user"])
    assert result.exit_code == 2
    assert "No such command 'user'. Did you mean 'users'?" in result.output
