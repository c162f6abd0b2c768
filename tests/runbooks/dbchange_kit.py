"""What the database-change tests share: throwaway target databases and the items table.

SQLite targets always; PostgreSQL when DUTYDESK_TEST_POSTGRES_URL is set and MariaDB when
DUTYDESK_TEST_MARIADB_URL is set (each test gets a database of its own, dropped after).
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dutydesk.people.models import User

POSTGRES_URL = os.environ.get("DUTYDESK_TEST_POSTGRES_URL", "")
MARIADB_URL = os.environ.get("DUTYDESK_TEST_MARIADB_URL", "")
TARGETS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DUTYDESK_TEST_POSTGRES_URL unset"),
    ),
    pytest.param(
        "mysql", marks=pytest.mark.skipif(not MARIADB_URL, reason="DUTYDESK_TEST_MARIADB_URL unset")
    ),
]
_numbers = itertools.count(1)
ITEMS = 2000  # rows of the items table: ids 1..2000, n = id


def _database_name() -> str:
    worker = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))
    return f"dd_dbchange_{worker}_{os.getpid()}_{next(_numbers)}".lower()


class TargetDb:
    """A throwaway target database and a plain connection to it for arranging and checking."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url

    def connect(self) -> Any:
        """A new DB-API connection (autocommit off)."""
        url = make_url(self.url)
        if self.backend == "sqlite":
            return sqlite3.connect(str(url.database))
        if self.backend == "postgresql":
            import psycopg

            return psycopg.connect(
                host=url.host, port=url.port, dbname=url.database, user=url.username
            )
        import pymysql

        return pymysql.connect(
            host=url.host or "",
            port=url.port or 3306,
            user=url.username or "",
            password=url.password or "",
            database=url.database,
        )

    def run(self, *statements: str) -> None:
        """Run statements and commit."""
        connection = self.connect()
        try:
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            connection.commit()
        finally:
            connection.close()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query."""
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    def make_items(self) -> None:
        """items(id primary key, n, status): ITEMS rows, all 'new'."""
        self.run(
            "CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL, "
            "status varchar(20) NOT NULL)"
        )
        values = ", ".join(f"({i}, {i}, 'new')" for i in range(1, ITEMS + 1))
        self.run(f"INSERT INTO items (id, n, status) VALUES {values}")


def _admin_connection(backend: str) -> Any:
    if backend == "postgresql":
        import psycopg

        url = make_url(POSTGRES_URL)
        return psycopg.connect(
            host=url.host, port=url.port, dbname=url.database, user=url.username, autocommit=True
        )
    import pymysql

    url = make_url(MARIADB_URL)
    return pymysql.connect(
        host=url.host or "",
        port=url.port or 3306,
        user=url.username or "",
        password=url.password or "",
        autocommit=True,
    )


@pytest.fixture(params=TARGETS)
def target_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TargetDb]:
    """An empty target database of each backend this machine offers."""
    backend = str(request.param)
    if backend == "sqlite":
        path = tmp_path / "target.sqlite"
        sqlite3.connect(path).close()
        yield TargetDb(backend, f"sqlite:///{path}")
        return
    name = _database_name()
    admin = _admin_connection(backend)
    quote = '"' if backend == "postgresql" else "`"
    admin.cursor().execute(f"CREATE DATABASE {quote}{name}{quote}")
    base = make_url(POSTGRES_URL if backend == "postgresql" else MARIADB_URL)
    try:
        yield TargetDb(backend, base.set(database=name).render_as_string(hide_password=False))
    finally:
        force = " WITH (FORCE)" if backend == "postgresql" else ""
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}")
        admin.close()


@dataclass
class Crew:
    """Olga (operator) writes scripts; Abe (approver) and Otto (operator) may sign them; Ada is
    the admin who registers targets; Vic only views."""

    olga: User
    abe: User
    otto: User
    ada: User
    vic: User


def make_crew(db: Session) -> Crew:
    """The people, added without hashing a password each (nobody signs in by password here)."""
    made = {}
    for name, role in [
        ("olga", "operator"),
        ("abe", "approver"),
        ("otto", "operator"),
        ("ada", "admin"),
        ("vic", "viewer"),
    ]:
        made[name] = User(username=name, role=role, email=f"{name}@desk.example", password_hash="!")
        db.add(made[name])
    db.commit()
    return Crew(**made)
