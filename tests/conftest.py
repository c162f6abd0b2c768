"""Shared fixtures: real databases built by the migrations, each test rolled back.

SQLite always; PostgreSQL too when DUTYDESK_TEST_POSTGRES_URL is set (each xdist worker gets a
database of its own). Every test runs with its own DUTYDESK_HOME.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.celery_app import get_celery
from dutydesk.db import build_engine, engine_for
from dutydesk.people import service as people
from dutydesk.people.models import Role, User
from dutydesk.settings import get_settings
from dutydesk.web.access import SESSION_COOKIE

if TYPE_CHECKING:
    from tests.browser_support import Desk
    from tests.test_worker import Processes

POSTGRES_URL = os.environ.get("DUTYDESK_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("DUTYDESK_TEST_REDIS_URL", "")
AMQP_URL = os.environ.get("DUTYDESK_TEST_AMQP_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
TEST_PASSWORD = "correct horse battery staple"


def clear_caches() -> None:
    """Forget settings, engines and the Celery app so the next use reads the env anew."""
    get_settings.cache_clear()
    engine_for.cache_clear()
    get_celery.cache_clear()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets an empty DUTYDESK_HOME and default settings."""
    for name in list(os.environ):
        if name.startswith("DUTYDESK_") and not name.startswith("DUTYDESK_TEST_"):
            monkeypatch.delenv(name)
    path = tmp_path / "home"
    monkeypatch.setenv("DUTYDESK_HOME", str(path))
    clear_caches()
    yield path
    clear_caches()


def _worker_suffix() -> str:
    return re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))


def fresh_postgres_database(name: str) -> str:
    """Create (or re-create) an empty PostgreSQL database and return its URL."""
    admin = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def fresh_database_url(backend: str, tmp: Path, name: str) -> str:
    """An empty database of `backend` for one purpose."""
    if backend == "postgresql":
        return fresh_postgres_database(f"dd_{name}_{_worker_suffix()}")
    return f"sqlite:///{tmp / (name + '.sqlite')}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which ops database the test runs on."""
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A database of `backend` migrated to head once per test session."""
    url = fresh_database_url(backend, tmp_path_factory.mktemp("db"), "ops")
    migrations.upgrade(url)
    engine = build_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    with migrated_engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    """Sessions joined to the test's connection; their commits become savepoints."""
    return sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
def db(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and checking data."""
    session = factory()
    session.info["actor"] = "test"
    yield session
    session.close()


@pytest.fixture(scope="session")
def shared_records_factory(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    """An empty record store, migrated once per session, for apps that only read it."""
    from dutydesk.records.store import records_session_factory, upgrade_records

    url = f"sqlite:///{tmp_path_factory.mktemp('records') / 'records.sqlite'}"
    upgrade_records(url)
    return records_session_factory(build_engine(url))


@pytest.fixture(scope="session")
def demo_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """One `dutydesk up --demo` for the browser modules that read the demo (or add to it
    without changing what the others look at): started once, where those modules run (they
    are one `xdist_group`, kept on one worker by `--dist loadgroup`)."""
    from tests.browser_support import (
        DEMO_PASSWORD,
        DEMO_START_TIMEOUT_SECONDS,
        start_desk,
        stop_desk,
    )

    home = tmp_path_factory.mktemp("demo-desk") / "home"
    running = start_desk(home, DEMO_PASSWORD, DEMO_START_TIMEOUT_SECONDS)
    yield running
    print(stop_desk(running))


@pytest.fixture
def app(
    factory: sessionmaker[Session], home: Path, shared_records_factory: sessionmaker[Session]
) -> FastAPI:
    """The web app on the test's database (and an empty record store)."""
    from dutydesk.web.app import create_app

    return create_app(get_settings(), factory, records_factory=shared_records_factory)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An anonymous HTTP client of the app."""
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def make_user(db: Session, role: Role | str, username: str | None = None) -> User:
    """A committed user of `role` with TEST_PASSWORD."""
    role = Role(role)
    user = people.add_user(
        db, username or f"{role.value}-user", role.value, email=None, password=TEST_PASSWORD
    )
    db.commit()
    return user


def sign_in(client: TestClient, db: Session, user: User) -> str:
    """Give `client` a session cookie for `user`; returns the CSRF token for its forms."""
    secret = people.start_session(db, user, hours=1, client="testclient")
    db.commit()
    client.cookies.set(SESSION_COOKIE, secret)
    return csrf_token(client)


def csrf_token(client: TestClient, path: str = "/login") -> str:
    """Read the CSRF token from a page's form, as a browser would."""
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, f"no CSRF token in {path}"
    return match.group(1)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Subprocesses of the test, stopped at teardown; their output printed for failure reports."""
    from tests.test_worker import Processes  # the process helpers live with their own tests

    running = Processes(tmp_path / "logs")
    yield running
    running.stop_all()
    running.print_logs()
