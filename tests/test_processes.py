"""`dutydesk up` and the single-process commands, run for real as subprocesses.

`up` must serve a healthy console, stop web, worker and beat together on SIGTERM or Ctrl-C,
take them down with it when it is killed outright, name whoever holds its port, seed its demo
only once, and refuse to start on a wrong setting or an un-migrated database.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.db import build_engine, session_factory
from dutydesk.demo import seed_demo
from dutydesk.people import service as people
from dutydesk.people.demo import DEMO_USERS
from dutydesk.settings import get_settings
from tests.conftest import clear_caches, fresh_database_url
from tests.test_worker import (
    Processes,
    ProcessInfo,
    Started,
    children_of,
    descendants_of,
    desk_env,
    drop_postgres_database,
    free_port,
    kill_group,
    run_dutydesk,
    still_running,
    wait_until,
)

DEMO_PASSWORD = "demo-password-for-tests"
DEMO_USERNAMES = sorted(username for username, _role, _email in DEMO_USERS)
CHILD_NAMES = ("web", "worker", "beat", "smtp")
UP_STOP_SECONDS = 20.0


def start_up(
    processes: Processes, home: Path, port: int, name: str = "up", **settings: str
) -> Started:
    """Start `dutydesk up --demo` on `port` with its own home."""
    return processes.start(name, ["up", "--demo", "--port", str(port)], desk_env(home, **settings))


def up_children(up: Started) -> dict[str, ProcessInfo]:
    """Wait until `up` runs its web, worker, beat and smtp children; return them by name."""

    def all_started() -> dict[str, ProcessInfo] | None:
        if up.popen.poll() is not None:
            pytest.fail(f"dutydesk up exited with {up.popen.returncode}")
        found: dict[str, ProcessInfo] = {}
        for child in children_of(up.pid):
            command = child.argv[3:4]  # python -m dutydesk COMMAND ...
            if command and command[0] in CHILD_NAMES:
                found[command[0]] = child
        return found if set(found) == set(CHILD_NAMES) else None

    return wait_until(all_started, 180, "web, worker and beat to start")


def healthy(base_url: str) -> dict[str, str] | None:
    """The /health answer when it is 200, None while the web process is not answering."""
    try:
        answer = httpx.get(f"{base_url}/health", timeout=5)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def sign_in(client: httpx.Client, username: str, password: str) -> None:
    """Sign `client` in through the login form, as a browser would."""
    form = client.get("/login")
    assert form.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match, "the login page has no CSRF token"
    assert client.cookies.get("dutydesk_csrf"), "the login page set no CSRF cookie"
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": match.group(1)},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"


def stop_up(up: Started, how: signal.Signals) -> int:
    """Send `how` to `up` as an operator would and return its exit status.

    SIGINT goes to the whole process group, as Ctrl-C in a terminal does.
    """
    if how is signal.SIGINT:
        os.killpg(up.pid, signal.SIGINT)
    else:
        os.kill(up.pid, how)
    try:
        return up.popen.wait(timeout=UP_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dutydesk up still runs {UP_STOP_SECONDS:.0f} s after {how.name}")


@pytest.mark.worker
@pytest.mark.timeout(400)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_up_serves_a_healthy_demo_console_and_stops_every_child_on_a_signal(
    processes: Processes, home: Path, how: signal.Signals
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    up = start_up(processes, home, port, DUTYDESK_DEMO_PASSWORD=DEMO_PASSWORD)
    children = up_children(up)

    health = wait_until(lambda: healthy(base_url), 120, "GET /health to answer 200")
    assert health == {"status": "ok", "database": "ok", "broker": "ok"}
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=10) as client:
        sign_in(client, "admin", DEMO_PASSWORD)
        overview = client.get("/")
        assert overview.status_code == 200
        assert "<h1>Overview</h1>" in overview.text

    assert stop_up(up, how) == 0
    left = [name for name, child in children.items() if still_running(child)]
    assert left == [], f"still running after `up` stopped: {left}"


@pytest.mark.worker
@pytest.mark.timeout(600)
def test_up_twice_seeds_the_demo_once_and_prints_the_same_generated_password(
    processes: Processes, home: Path
) -> None:
    passwords = []
    for start in ("first", "second"):
        up = start_up(processes, home, free_port(), name=f"up-{start}")
        match = processes.wait_for_output(
            up, r"^demo: sign in as admin with password (\S+)$", timeout=180
        )
        passwords.append(match.group(1))
        up_children(up)
        assert stop_up(up, signal.SIGTERM) == 0
        made = re.findall(r"^demo: made user (\S+)", up.output(), re.MULTILINE)
        assert sorted(made) == (DEMO_USERNAMES if start == "first" else [])

    assert passwords[0] == passwords[1]
    assert len(passwords[0]) >= 8
    engine = build_engine(f"sqlite:///{home / 'dutydesk.sqlite'}")
    try:
        with Session(engine) as session:
            usernames = [user.username for user in people.list_users(session)]
            assert usernames == DEMO_USERNAMES  # each once
            assert people.authenticate(session, "admin", passwords[0]) is not None
    finally:
        engine.dispose()


CONSOLE_LINE = r"^dutydesk: console at (http://\S+?)/ "


def answers_now(base_url: str) -> bool:
    """Whether the web port accepts a connection at this moment."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.worker
@pytest.mark.timeout(600)
def test_up_killed_with_sigkill_takes_every_child_down_and_a_new_up_serves_the_same_port(
    processes: Processes, home: Path
) -> None:
    port = free_port()
    # Two web processes: uvicorn's workers are grandchildren of `up`.
    env = desk_env(home, DUTYDESK_WEB_WORKERS="2")
    first = processes.start("up-first", ["up", "--port", str(port)], env)
    # Generous waits: on a busy machine uvicorn's workers take long to import the app.
    base_url = processes.wait_for_output(first, CONSOLE_LINE, timeout=240).group(1)
    assert answers_now(base_url), "the console line came before the port answered"
    up_children(first)

    def children_and_web_workers() -> list[ProcessInfo] | None:
        found = descendants_of(first.pid)
        return found if len(found) > len(CHILD_NAMES) else None

    below = wait_until(children_and_web_workers, 60, "uvicorn's web workers to start")

    os.kill(first.pid, signal.SIGKILL)
    first.popen.wait(timeout=10)
    try:
        wait_until(
            lambda: not any(still_running(process) for process in below),
            60,
            "every child and grandchild of the killed `up` to stop",
        )
    finally:
        for process in below:
            if still_running(process):
                kill_group(process.pid)

    second = processes.start("up-second", ["up", "--port", str(port)], env)
    assert processes.wait_for_output(second, CONSOLE_LINE, timeout=240).group(1) == base_url
    health = wait_until(lambda: healthy(base_url), 180, "GET /health to answer 200")
    assert health["status"] == "ok"
    assert "in use" not in second.output()
    assert stop_up(second, signal.SIGTERM) == 0


def test_up_refuses_a_port_in_use_and_names_the_pid_holding_it(home: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        done = run_dutydesk(desk_env(home), "up", "--port", str(port), timeout=60)

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} on 127.0.0.1 is in use by pid {os.getpid()} " in done.stderr
    assert "Traceback" not in done.stderr
    assert "console at" not in done.stdout
    assert not (home / "dutydesk.sqlite").exists(), "nothing should start on a taken port"


@pytest.fixture
def demo_factory(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated ops database of `backend`, with a set demo password."""
    monkeypatch.setenv("DUTYDESK_DEMO_PASSWORD", DEMO_PASSWORD)
    clear_caches()
    url = fresh_database_url(backend, tmp_path, f"demoseed_{os.getpid()}")
    migrations.upgrade(url)
    from dutydesk.records.store import records_url, upgrade_records

    upgrade_records(records_url())  # `dutydesk up` migrates both stores before seeding
    engine = build_engine(url)
    yield session_factory(engine)
    engine.dispose()
    if backend == "postgresql":
        drop_postgres_database(url)


def test_seeding_the_demo_twice_leaves_the_same_users(
    demo_factory: sessionmaker[Session],
) -> None:
    first = seed_demo(get_settings(), demo_factory)
    with demo_factory() as session:
        before = {user.username: user.id for user in people.list_users(session)}

    second = seed_demo(get_settings(), demo_factory)

    with demo_factory() as session:
        after = {user.username: user.id for user in people.list_users(session)}
        assert people.authenticate(session, "admin", DEMO_PASSWORD) is not None
    assert sorted(before) == DEMO_USERNAMES
    assert after == before
    assert len([line for line in first.made if line.startswith("user ")]) == len(DEMO_USERNAMES)
    assert second.made == []
    assert first.password == second.password == DEMO_PASSWORD


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("DUTYDESK_DATABASE_URL", "mysql://x", "DUTYDESK_DATABASE_URL"),
        ("DUTYDESK_SESSION_HOURS", "abc", "DUTYDESK_SESSION_HOURS"),
        ("DUTYDESK_BROKER_URL", "ftp://broker", "DUTYDESK_BROKER_URL"),
        ("DUTYDESK_JOB_STALE_SECONDS", "1", "DUTYDESK_JOB_STALE_SECONDS"),
        ("DUTYDESK_SECRET_KEY", "changeme", "DUTYDESK_SECRET_KEY"),
    ],
)
def test_up_refuses_a_wrong_setting_with_a_message_naming_it(
    home: Path, variable: str, value: str, named: str
) -> None:
    env = desk_env(home, **{variable: value})

    done = run_dutydesk(env, "up", "--demo", "--port", str(free_port()), timeout=60)

    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert not (home / "dutydesk.sqlite").exists(), "nothing should start on a wrong setting"


@pytest.mark.parametrize("command", ["web", "worker", "beat", "smtp"])
def test_processes_refuse_an_unmigrated_database_and_say_to_upgrade(
    home: Path, command: str
) -> None:
    options = ["--port", str(free_port())] if command == "web" else []

    done = run_dutydesk(desk_env(home), command, *options, timeout=60)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "dutydesk db upgrade" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_seeders_run_in_domain_order_whatever_the_import_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dutydesk import registry

    registry.load_domains()
    shuffled = dict(reversed(list(registry.demo_seeders.items())))
    monkeypatch.setattr(registry, "demo_seeders", {"mine": print, **shuffled})
    names = [name for name, _seeder in registry.seeders_in_order()]
    domains = [name for name in names if name in registry.DOMAINS]
    assert domains == sorted(domains, key=registry.DOMAINS.index)
    assert names[0] == "people" and names[-1] == "mine"
