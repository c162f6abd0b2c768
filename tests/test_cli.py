"""The `dutydesk` command as an operator uses it, on the SQLite database in DUTYDESK_HOME."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from dutydesk.audit.models import AuditEvent
from dutydesk.cli import app
from dutydesk.db import build_engine, get_engine, transaction
from dutydesk.jobs.models import Job
from dutydesk.people import service
from dutydesk.people.models import User
from dutydesk.settings import Settings
from tests.conftest import clear_caches

CLI_ACTOR = f"cli:{getpass.getuser()}"
TOKEN_LINE = re.compile(r"ddt_[A-Za-z0-9_-]{43}\n")
GOOD_PASSWORD = "a long enough passphrase"


def dutydesk(*args: str, input: str | None = None) -> Result:
    """Run `dutydesk ARGS` in-process, as an operator would at a terminal."""
    return CliRunner().invoke(app, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    """Run a command that must succeed."""
    result = dutydesk(*args, input=input)
    assert result.exit_code == 0, f"dutydesk {' '.join(args)}: {result.output}"
    return result


def refused(*args: str, input: str | None = None) -> Result:
    """Run a command that must be refused with exit code 2 and an `error:` line."""
    result = dutydesk(*args, input=input)
    assert result.exit_code == 2, f"dutydesk {' '.join(args)}: {result.output}"
    return result


def run_module(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m dutydesk ARGS` as a separate process with DUTYDESK_HOME=`home`."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DUTYDESK_") or name.startswith("DUTYDESK_TEST_")
    }
    environment.update({"DUTYDESK_HOME": str(home), **env})
    return subprocess.run(
        [sys.executable, "-m", "dutydesk", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def migrated(home: Path) -> Path:
    """The home's ops database, migrated with `dutydesk db upgrade`."""
    ok("db", "upgrade")
    return home


def added_password(result: Result) -> str:
    """The generated password `users add` printed."""
    match = re.search(r"^password: (\S+)$", result.stdout, re.MULTILINE)
    assert match, f"no password line in {result.stdout!r}"
    return match.group(1)


def stored_user(username: str) -> User | None:
    with transaction() as session:
        return service.find_user(session, username)


def audit_events(object_type: str) -> list[AuditEvent]:
    with transaction() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.object_type == object_type)
                .order_by(AuditEvent.id)
            )
        )


def all_rows(table: str) -> list[dict[str, Any]]:
    """Every row of a table, exactly as stored."""
    with get_engine().connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {table}"))]


def create_token(*args: str) -> str:
    """Run `tokens create ARGS` and return the secret it printed."""
    result = ok("tokens", "create", *args)
    assert TOKEN_LINE.fullmatch(result.stdout), f"stdout is not one token line: {result.stdout!r}"
    return result.stdout.strip()


# --- users -------------------------------------------------------------------------------------


def test_added_user_can_sign_in_with_the_printed_password(migrated: Path) -> None:
    result = ok("users", "add", "alice", "--role", "operator", "--email", "alice@example.org")
    assert "added alice (operator)" in result.stdout
    password = added_password(result)

    with transaction() as session:
        user = service.authenticate(session, "alice", password)
        assert user is not None
        assert (user.role, user.email) == ("operator", "alice@example.org")
        assert service.authenticate(session, "alice", password + "x") is None


def test_password_from_stdin_is_used_and_not_printed(migrated: Path) -> None:
    result = ok("users", "add", "bob", "--role", "viewer", "--password-stdin", input=GOOD_PASSWORD)
    assert "added bob (viewer)" in result.stdout
    assert "password" not in result.stdout
    assert GOOD_PASSWORD not in result.output

    with transaction() as session:
        assert service.authenticate(session, "bob", GOOD_PASSWORD) is not None


def test_passwords_are_stored_as_argon2id_hashes(migrated: Path) -> None:
    password = added_password(ok("users", "add", "carol", "--role", "admin"))
    user = stored_user("carol")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert password not in user.password_hash


def test_users_list_shows_each_user_with_role_and_email(migrated: Path) -> None:
    ok("users", "add", "alice", "--role", "admin", "--email", "alice@example.org")
    ok("users", "add", "bob", "--role", "viewer")

    listing = ok("users", "list").stdout
    assert re.search(r"^alice\s+admin\s+UTC\s+alice@example\.org$", listing, re.MULTILINE), listing
    assert re.search(r"^bob\s+viewer\s+UTC\s+-$", listing, re.MULTILINE), listing


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["dave", "--role", "boss"],
            None,
            "unknown role 'boss'; choose one of viewer, operator, approver, admin",
        ),
        (["Dave!", "--role", "viewer"], None, "username must be 2-64 characters"),
        (["dave", "--role", "viewer", "--email", "dave.example.org"], None, "has no '@'"),
        (
            ["dave", "--role", "viewer", "--password-stdin"],
            "short",
            "password must be at least 8 characters",
        ),
    ],
    ids=["unknown-role", "bad-username", "bad-email", "short-password"],
)
def test_bad_user_is_refused_with_a_clear_error(
    migrated: Path, args: list[str], stdin: str | None, message: str
) -> None:
    result = refused("users", "add", *args, input=stdin)
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert ok("users", "list").stdout == ""


def test_adding_an_existing_user_again_is_refused(migrated: Path) -> None:
    ok("users", "add", "alice", "--role", "viewer")
    before = stored_user("alice")

    result = refused("users", "add", "alice", "--role", "admin")
    assert "user 'alice' already exists" in result.stderr
    after = stored_user("alice")
    assert before is not None and after is not None
    assert (after.role, after.password_hash) == ("viewer", before.password_hash)


# --- tokens ------------------------------------------------------------------------------------


def test_created_token_is_printed_once_and_authenticates(migrated: Path) -> None:
    ok("users", "add", "alice", "--role", "operator")
    result = ok("tokens", "create", "--name", "ci", "--scope", "read", "--scope", "write")
    secret = result.stdout.strip()
    assert TOKEN_LINE.fullmatch(result.stdout)
    assert "shown only now" in result.stderr

    with transaction() as session:
        token = service.token_for_secret(session, secret)
        assert token is not None
        assert (token.name, token.scopes, token.user) == ("ci", ["read", "write"], None)


def test_token_acting_as_a_user_names_that_user(migrated: Path) -> None:
    ok("users", "add", "alice", "--role", "operator")
    secret = create_token("--name", "alice-script", "--scope", "read", "--user", "alice")

    with transaction() as session:
        token = service.token_for_secret(session, secret)
        assert token is not None and token.user is not None
        assert token.user.username == "alice"
    assert re.search(r"alice-script\s+read\s+alice\s+live", ok("tokens", "list").stdout)


def test_database_keeps_only_a_sha256_hash_of_the_token(migrated: Path) -> None:
    secret = create_token("--name", "ci", "--scope", "read")

    rows = all_rows("api_tokens")
    assert len(rows) == 1
    assert rows[0]["token_hash"] == service.sha256(secret)
    random_part = secret.removeprefix(service.TOKEN_PREFIX)
    for row in rows:
        for value in row.values():
            # `prefix` keeps the first 6 characters for recognition; nothing keeps more.
            assert secret not in str(value)
            assert random_part[:12] not in str(value)
    for event in all_rows("audit_events"):
        assert random_part[:12] not in json.dumps(event, default=str)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--scope", "read", "--scope", "everything"],
            "unknown scope 'everything'; choose from read, write, intake, upload, admin",
        ),
        (["--scope", "read", "--user", "ghost"], "no user named 'ghost'"),
    ],
    ids=["unknown-scope", "unknown-user"],
)
def test_bad_token_request_is_refused_with_a_clear_error(
    migrated: Path, args: list[str], message: str
) -> None:
    result = refused("tokens", "create", "--name", "ci", *args)
    assert message in result.stderr
    assert result.stdout == ""
    assert all_rows("api_tokens") == []


def test_token_list_never_shows_a_secret_or_its_hash(migrated: Path) -> None:
    secret = create_token("--name", "ci", "--scope", "read,upload")

    listing = ok("tokens", "list").stdout
    assert re.search(r"^\s*1 ci\s+read,upload\s+\(service\)\s+live$", listing, re.MULTILINE)
    assert secret.removeprefix(service.TOKEN_PREFIX)[:8] not in listing
    assert service.sha256(secret)[:12] not in listing


def test_revoked_token_no_longer_authenticates(migrated: Path) -> None:
    secret = create_token("--name", "ci", "--scope", "read")
    token_id = all_rows("api_tokens")[0]["id"]

    assert f"revoked token {token_id}" in ok("tokens", "revoke", str(token_id)).stdout
    with transaction() as session:
        assert service.token_for_secret(session, secret) is None
    assert re.search(
        r"ci\s+read\s+\(service\)\s+revoked \d{4}-\d{2}-\d{2}", ok("tokens", "list").stdout
    )


def test_revoking_an_unknown_token_is_refused(migrated: Path) -> None:
    result = refused("tokens", "revoke", "99")
    assert "no token with id 99" in result.stderr


# --- an unmigrated database --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["users", "add", "alice", "--role", "admin"],
        ["users", "list"],
        ["tokens", "create", "--name", "ci", "--scope", "read"],
        ["tokens", "list"],
        ["tokens", "revoke", "1"],
        ["jobs", "list"],
        ["jobs", "run", "people.prune"],
        ["jobs", "run", "people.prune", "--queue"],
    ],
    ids=" ".join,
)
def test_commands_refuse_to_work_on_an_unmigrated_database(home: Path, args: list[str]) -> None:
    result = refused(*args)
    assert "run `dutydesk db upgrade` first" in result.stderr
    assert ok("db", "current").stdout.strip() == "(empty: never migrated)"


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_processes_refuse_to_start_on_an_unmigrated_database(home: Path, process: str) -> None:
    finished = run_module(home, process)
    assert finished.returncode == 2, finished.stderr
    assert "run `dutydesk db upgrade` first" in finished.stderr


def test_database_and_settings_commands_work_before_migrating(home: Path) -> None:
    assert ok("db", "current").stdout.strip() == "(empty: never migrated)"
    assert "DUTYDESK_HOME=" in ok("settings").stdout
    assert dutydesk("db", "check").exit_code == 1


# --- jobs --------------------------------------------------------------------------------------


def jobs_in_table() -> list[Job]:
    with transaction() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_job_run_in_the_foreground_succeeds_and_is_listed(migrated: Path) -> None:
    result = ok("jobs", "run", "people.prune")
    assert re.search(r"^job 1 succeeded: \{.*\}$", result.stdout, re.MULTILINE), result.stdout

    [job] = jobs_in_table()
    assert (job.kind, job.state, job.attempts) == ("people.prune", "succeeded", 1)
    assert job.result == {"sessions": 0, "login_failures": 0}
    assert job.created_by == CLI_ACTOR
    assert re.search(r"^\s+1 people\.prune\s+succeeded\s+1/3 ", ok("jobs", "list").stdout)


def test_unknown_job_kind_is_refused_naming_the_known_kinds(migrated: Path) -> None:
    result = refused("jobs", "run", "nosuch")
    assert "unknown job kind 'nosuch'" in result.stderr
    assert "people.prune" in result.stderr
    assert "jobs.prune" in result.stderr
    assert jobs_in_table() == []


def test_queued_job_waits_for_a_worker(migrated: Path) -> None:
    result = ok("jobs", "run", "people.prune", "--queue")
    assert result.stdout.strip() == "queued job 1"

    [job] = jobs_in_table()
    assert (job.state, job.attempts, job.started_at) == ("queued", 0, None)
    assert re.search(r"^\s+1 people\.prune\s+queued\s+0/3 ", ok("jobs", "list").stdout)


def test_job_arguments_are_parsed_as_json_where_they_can_be(migrated: Path) -> None:
    ok("jobs", "run", "jobs.prune", "--arg", "keep_days=7", "--arg", "note=weekly", "--queue")
    [job] = jobs_in_table()
    assert job.args == {"keep_days": 7, "note": "weekly"}


@pytest.mark.parametrize("bad", ["keep_days", "=7"])
def test_job_argument_that_is_not_key_value_is_refused(migrated: Path, bad: str) -> None:
    result = refused("jobs", "run", "jobs.prune", "--arg", bad)
    assert "is not KEY=VALUE" in result.stderr
    assert "--arg" in result.stderr
    assert jobs_in_table() == []


# --- settings ----------------------------------------------------------------------------------


def test_settings_markdown_has_a_row_for_every_setting() -> None:
    table = ok("settings", "--markdown").stdout
    lines = table.splitlines()
    assert lines[:2] == ["| variable | default | what it does |", "| --- | --- | --- |"]
    variables = [line.split("|")[1].strip().strip("`") for line in lines[2:]]
    assert variables == [f"DUTYDESK_{name.upper()}" for name in Settings.model_fields]
    for line in lines[2:]:
        assert line.count("|") == 4 and line.split("|")[3].strip(), f"undocumented: {line}"


def test_settings_never_print_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_key = "k" * 20 + "really-long-signing-key-value"
    monkeypatch.setenv("DUTYDESK_SECRET_KEY", secret_key)
    monkeypatch.setenv("DUTYDESK_DEMO_PASSWORD", "demo-password-value")
    monkeypatch.setenv("DUTYDESK_DATABASE_URL", "postgresql+psycopg://desk:db-password@db/ops")
    monkeypatch.setenv("DUTYDESK_BROKER_URL", "redis://:broker-password@cache:6379/0")
    clear_caches()

    shown = ok("settings").stdout
    for secret in (secret_key, "demo-password-value", "db-password", "broker-password"):
        assert secret not in shown
    assert "DUTYDESK_SECRET_KEY=(set)" in shown
    assert "DUTYDESK_DEMO_PASSWORD=(set)" in shown
    assert "DUTYDESK_DATABASE_URL=postgresql+psycopg://desk:***@db/ops" in shown


def test_wrong_setting_stops_the_command_naming_the_variable(home: Path) -> None:
    finished = run_module(home, "users", "list", DUTYDESK_BROKER_URL="ftp://x")
    assert finished.returncode == 2
    assert finished.stderr.startswith("error: DUTYDESK_BROKER_URL: ")
    assert "Traceback" not in finished.stderr


# --- audit -------------------------------------------------------------------------------------


def test_user_creation_is_audited_as_the_cli_user_without_the_password_hash(
    migrated: Path,
) -> None:
    ok("users", "add", "alice", "--role", "admin", "--email", "alice@example.org")
    user = stored_user("alice")
    assert user is not None

    [event] = audit_events("users")
    assert (event.actor, event.action, event.object_id) == (CLI_ACTOR, "create", str(user.id))
    assert event.after is not None
    assert event.after["username"] == "alice"
    assert event.after["role"] == "admin"
    assert event.after["password_hash"] == "[redacted]"
    assert user.password_hash not in json.dumps([event.after, event.diff])


def test_token_creation_is_audited_with_the_hash_redacted(migrated: Path) -> None:
    secret = create_token("--name", "ci", "--scope", "read")

    [event] = audit_events("api_tokens")
    assert (event.actor, event.action) == (CLI_ACTOR, "create")
    assert event.after is not None
    assert event.after["token_hash"] == "[redacted]"
    assert event.after["scopes"] == ["read"]
    recorded = json.dumps([event.before, event.after, event.diff])
    assert service.sha256(secret) not in recorded
    assert secret not in recorded


def test_token_revocation_is_audited_as_an_update_of_revoked_at(migrated: Path) -> None:
    create_token("--name", "ci", "--scope", "read")
    ok("tokens", "revoke", "1")

    create, revoke = audit_events("api_tokens")
    assert create.action == "create"
    assert (revoke.actor, revoke.action, revoke.object_id) == (CLI_ACTOR, "update", "1")
    assert set(revoke.diff) == {"revoked_at"}
    old, new = revoke.diff["revoked_at"]
    assert old is None and new is not None
    assert revoke.after is not None and revoke.after["revoked_at"] == new


def test_user_added_by_a_separate_cli_process_is_audited(home: Path) -> None:
    assert run_module(home, "db", "upgrade").returncode == 0
    added = run_module(home, "users", "add", "erin", "--role", "viewer")
    assert added.returncode == 0, added.stderr

    engine = build_engine(f"sqlite:///{home / 'dutydesk.sqlite'}")
    try:
        with engine.connect() as connection:
            events = connection.execute(
                text("SELECT actor, action FROM audit_events WHERE object_type = 'users'")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(event) for event in events] == [(CLI_ACTOR, "create")]
