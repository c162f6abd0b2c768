"""Connections to target databases: the one place PostgreSQL, SQLite and MariaDB/MySQL differ.

Scripts run on plain DB-API connections (psycopg, sqlite3, pymysql) with the driver's own
transaction control, so the desk decides exactly when a transaction begins, what timeouts it
has, and that it ends in a rollback (dry run) or a commit (apply).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from dutydesk.runbooks.dbchange._crypto import decrypt_password
from dutydesk.runbooks.dbchange.models import DbChangeTarget

BACKENDS = ("postgresql", "sqlite", "mysql")
# A table name as a script writes it: plain, "quoted" or `quoted`, optionally schema-qualified.
TABLE_NAME = re.compile(r'^(?:"[^"]+"|`[^`]+`|\w+)(?:\.(?:"[^"]+"|`[^`]+`|\w+))?$')
_DETAIL_CHARS = 300


class TargetError(Exception):
    """The target cannot be reached or refused a login; the message says which and why."""


@dataclass(frozen=True)
class Login:
    """Where and as whom to connect (the password only in memory, never stored in clear)."""

    url: URL
    password: str

    @property
    def backend(self) -> str:
        """postgresql, sqlite or mysql."""
        name = self.url.get_backend_name()
        return "mysql" if name in ("mysql", "mariadb") else name


def clean_url(text: str) -> tuple[str, str, str]:
    """A target URL split into (URL without login, user, password); ValueError names what is
    wrong."""
    try:
        url = make_url(text.strip())
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several kinds for a malformed URL
        raise ValueError(
            "the URL is not a database URL such as postgresql://host:5432/db, "
            "mysql+pymysql://host:3306/db or sqlite:///path/file.sqlite"
        ) from None
    name = url.get_backend_name()
    backend = "mysql" if name in ("mysql", "mariadb") else name
    if backend not in BACKENDS:
        raise ValueError(f"unsupported database {name!r}: use postgresql, sqlite or mysql/mariadb")
    if backend == "sqlite" and not url.database:
        raise ValueError("a SQLite target needs a file path: sqlite:///path/file.sqlite")
    if backend != "sqlite" and not (url.host and url.database):
        raise ValueError("the URL needs a host and a database name")
    user, password = url.username or "", url.password or ""
    drivers = {"mysql": "mysql+pymysql", "postgresql": "postgresql", "sqlite": "sqlite"}
    # URL.set ignores None, so the login is left out by building the URL anew.
    bare = URL.create(
        drivers[backend], host=url.host, port=url.port, database=url.database, query=url.query
    )
    return bare.render_as_string(hide_password=False), user, str(password)


def login_for(target: DbChangeTarget, *, write: bool) -> Login:
    """The read-write login, or the read-only one (the read-write one when none is set)."""
    user, stored = target.write_user, target.write_password
    if not write and target.read_user:
        user, stored = target.read_user, target.read_password
    url = make_url(target.url)
    if user:
        url = url.set(username=user)
    return Login(url=url, password=decrypt_password(stored))


def scrub(text: str, login: Login) -> str:
    """The text with the login's password cut out (a driver might echo it)."""
    return text.replace(login.password, "[redacted]") if login.password else text


def first_line(error: BaseException, login: Login) -> str:
    """The first line of a driver's error, without the password."""
    lines = str(error).strip().splitlines()
    detail = lines[0] if lines else type(error).__name__
    return scrub(detail, login)[:_DETAIL_CHARS]


def plain(value: Any) -> Any:
    """A JSON-safe, short form of a column value for samples."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes | memoryview):
        return f"<{len(bytes(value))} bytes>"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


class Connection:
    """A DB-API connection to a target with the few operations a run needs."""

    backend = ""
    placeholder = "%s"

    def __init__(self, raw: Any, login: Login) -> None:
        self.raw = raw
        self.login = login

    # --- transactions -------------------------------------------------------------------
    def begin(self, *, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        """Start the one transaction, with the target's timeouts for its statements."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commit the transaction."""
        self.raw.commit()

    def rollback(self) -> None:
        """Roll the transaction back."""
        self.raw.rollback()

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        self.raw.close()

    # --- statements ---------------------------------------------------------------------
    def execute(self, sql: str) -> int:
        """Run one statement of a script as written; the rows it affected (-1 if unknown)."""
        cursor = self.raw.cursor()
        try:
            cursor.execute(sql)
            return int(cursor.rowcount if cursor.rowcount is not None else -1)
        finally:
            cursor.close()

    def query(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of a query."""
        cursor = self.raw.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, tuple(params))
            columns = [str(column[0]) for column in cursor.description or ()]
            return columns, [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint around a read of the desk's own (a plan, a sample): its failure leaves
        the script's transaction usable."""
        cursor = self.raw.cursor()
        try:
            cursor.execute("SAVEPOINT dutydesk_read")
            try:
                yield
            except BaseException:
                cursor.execute("ROLLBACK TO SAVEPOINT dutydesk_read")
                raise
            cursor.execute("RELEASE SAVEPOINT dutydesk_read")
        finally:
            cursor.close()

    def explain(self, sql: str) -> list[str]:
        """The plan of a statement, one line per entry."""
        _, rows = self.query(f"EXPLAIN {sql}")
        return [str(row[0]) for row in rows]

    def locks(self) -> list[dict[str, Any]]:
        """The locks this connection's transaction holds (PostgreSQL only)."""
        return []

    def primary_key(self, table: str) -> list[str]:
        """The primary-key columns of a table (empty when it has none)."""
        raise NotImplementedError

    def quote(self, column: str) -> str:
        """A column name quoted for this database."""
        return '"' + column.replace('"', '""') + '"'

    def timeout_kind(self, error: BaseException) -> str | None:
        """'lock' or 'statement' when the error is that timeout, else None."""
        return None

    def server_fingerprint(self, table: str) -> tuple[int, str] | None:
        """(rows, checksum) computed by the server without sending the rows, where it can."""
        return None

    @property
    def ddl_commits(self) -> bool:
        """Whether the database commits data definition implicitly."""
        return False

    def version(self) -> str:
        """The server's version string."""
        _, rows = self.query("SELECT version()")
        return str(rows[0][0])


class PostgresConnection(Connection):
    """psycopg 3, one transaction at READ COMMITTED; timeouts by SET LOCAL."""

    backend = "postgresql"

    def begin(self, *, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        self.query(
            "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, "
            "true)",
            [f"{statement_timeout_ms}ms", f"{lock_timeout_ms}ms"],
        )

    def locks(self) -> list[dict[str, Any]]:
        _, rows = self.query(
            "SELECT locktype, mode, granted, relation::regclass::text FROM pg_locks "
            "WHERE pid = pg_backend_pid() AND (relation IS NULL OR relation NOT IN "
            "('pg_locks'::regclass, 'pg_class'::regclass)) ORDER BY locktype, mode, 4"
        )
        return [
            {"locktype": row[0], "mode": row[1], "granted": row[2], "relation": row[3]}
            for row in rows
        ]

    def primary_key(self, table: str) -> list[str]:
        _, rows = self.query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            [table],
        )
        return [str(row[0]) for row in rows]

    def server_fingerprint(self, table: str) -> tuple[int, str] | None:
        # Each row's text hashed (md5, first 60 bits) and summed: order-independent.
        row_hash = "('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint"
        sql = f"SELECT count(*), coalesce(sum({row_hash}), 0) FROM {table} AS t"  # noqa: S608
        _, rows = self.query(sql)
        count, total = rows[0]
        return int(count), f"{int(total) % 2**64:016x}"

    def timeout_kind(self, error: BaseException) -> str | None:
        state = getattr(error, "sqlstate", None)
        if state == "55P03":
            return "lock"
        if state == "57014":
            return "statement"
        return None


class SqliteConnection(Connection):
    """sqlite3 in autocommit mode with an explicit BEGIN; the lock timeout is the busy
    timeout, the statement timeout a progress handler that interrupts."""

    backend = "sqlite"
    placeholder = "?"
    deadline = 0.0

    def begin(self, *, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        self.statement_timeout_ms = statement_timeout_ms
        self.raw.execute(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")
        self.raw.execute("BEGIN")

    def execute(self, sql: str) -> int:
        timeout = getattr(self, "statement_timeout_ms", 0)
        if timeout:
            deadline = time.monotonic() + timeout / 1000
            self.raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            return super().execute(sql)
        finally:
            self.raw.set_progress_handler(None, 0)

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def explain(self, sql: str) -> list[str]:
        _, rows = self.query(f"EXPLAIN QUERY PLAN {sql}")
        return [str(row[-1]) for row in rows]

    def primary_key(self, table: str) -> list[str]:
        _, rows = self.query(f"PRAGMA table_info({table})")
        keyed = sorted((int(row[5]), str(row[1])) for row in rows if int(row[5]) > 0)
        return [name for _, name in keyed]

    def timeout_kind(self, error: BaseException) -> str | None:
        text = str(error).lower()
        if "is locked" in text or "is busy" in text:
            return "lock"
        if "interrupted" in text:
            return "statement"
        return None

    def version(self) -> str:
        _, rows = self.query("SELECT sqlite_version()")
        return f"SQLite {rows[0][0]}"


class MysqlConnection(Connection):
    """pymysql; InnoDB's lock wait timeout and MariaDB's max_statement_time (MySQL's
    max_execution_time limits SELECTs only)."""

    backend = "mysql"

    def begin(self, *, statement_timeout_ms: int, lock_timeout_ms: int) -> None:
        seconds = max(1, math.ceil(lock_timeout_ms / 1000))  # the server counts whole seconds
        self.query(f"SET SESSION innodb_lock_wait_timeout = {seconds}")
        self.query(f"SET SESSION lock_wait_timeout = {seconds}")
        if "mariadb" in self.version().lower():
            self.query(f"SET SESSION max_statement_time = {statement_timeout_ms / 1000:.3f}")
        else:
            self.query(f"SET SESSION max_execution_time = {int(statement_timeout_ms)}")
        self.query("START TRANSACTION")

    def primary_key(self, table: str) -> list[str]:
        _, rows = self.query(f"SHOW KEYS FROM {table} WHERE Key_name = 'PRIMARY'")
        return [str(row[4]) for row in sorted(rows, key=lambda row: int(row[3]))]

    def quote(self, column: str) -> str:
        return "`" + column.replace("`", "``") + "`"

    def server_fingerprint(self, table: str) -> tuple[int, str] | None:
        _, counted = self.query(f"SELECT count(*) FROM {table}")  # noqa: S608 - checked identifier
        _, summed = self.query(f"CHECKSUM TABLE {table} EXTENDED")
        return int(counted[0][0]), f"{int(summed[0][1] or 0):016x}"

    def explain(self, sql: str) -> list[str]:
        columns, rows = self.query(f"EXPLAIN {sql}")
        return [
            ", ".join(f"{name}={value}" for name, value in zip(columns, row, strict=True))
            for row in rows
        ]

    def timeout_kind(self, error: BaseException) -> str | None:
        code = error.args[0] if error.args else None
        if code in (1205, 1206):
            return "lock"
        if code in (1969, 3024):
            return "statement"
        return None

    @property
    def ddl_commits(self) -> bool:
        return True


def connect(login: Login, *, read_only: bool = False, timeout_seconds: float = 10) -> Connection:
    """Open a connection with `login`; TargetError says why it could not."""
    url = login.url
    try:
        if login.backend == "sqlite":
            path = Path(str(url.database))
            if not path.exists():
                raise TargetError(f"no SQLite file at {path}")
            mode = "ro" if read_only else "rw"
            lite = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None, timeout=5
            )
            return SqliteConnection(lite, login)
        if login.backend == "postgresql":
            import psycopg

            postgres = psycopg.connect(
                host=url.host,
                port=url.port or 5432,
                dbname=url.database,
                user=url.username or "",
                password=login.password or None,
                connect_timeout=max(1, int(timeout_seconds)),
                application_name="dutydesk dbchange",
            )
            if read_only:
                postgres.read_only = True
            return PostgresConnection(postgres, login)
        import pymysql

        raw = pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "",
            password=login.password,
            database=url.database,
            autocommit=False,
            connect_timeout=max(1, int(timeout_seconds)),
        )
        return MysqlConnection(raw, login)
    except TargetError:
        raise
    except Exception as error:  # noqa: BLE001 - each driver raises its own connection errors
        where = url.render_as_string(hide_password=True)
        raise TargetError(f"cannot connect to {where}: {first_line(error, login)}") from None


def table_fingerprint(connection: Connection, table: str) -> dict[str, Any]:
    """A table's row count and an order-independent checksum of its rows.

    PostgreSQL and MariaDB compute it themselves (a sum of each row's md5; CHECKSUM TABLE),
    so the rows never leave the server; for SQLite each row's SHA-256 (of its values' text) is
    summed modulo 2**64 here.
    """
    if not TABLE_NAME.match(table):
        return {"table": table, "error": "not a plain table name"}
    try:
        quick = connection.server_fingerprint(table)
        if quick is not None:
            connection.rollback()
            return {"table": table, "exists": True, "rows": quick[0], "checksum": quick[1]}
        cursor = connection.raw.cursor()
        try:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - a checked identifier
            count = total = 0
            while batch := cursor.fetchmany(5_000):
                for row in batch:
                    digest = hashlib.sha256(repr(tuple(map(str, row))).encode()).digest()
                    total = (total + int.from_bytes(digest[:8], "big")) % 2**64
                    count += 1
        finally:
            cursor.close()
    except Exception as error:  # noqa: BLE001 - a table that does not exist (yet) is a result
        connection.rollback()
        return {"table": table, "exists": False, "detail": first_line(error, connection.login)}
    connection.rollback()
    return {"table": table, "exists": True, "rows": count, "checksum": f"{total:016x}"}


def dump(target: DbChangeTarget, folder: Path, stem: str) -> Path:
    """A plain copy of the target taken before an apply: pg_dump, mysqldump or SQLite's
    backup API, into `folder`. TargetError says what failed."""
    login = login_for(target, write=True)
    folder.mkdir(parents=True, exist_ok=True)
    url = login.url
    if login.backend == "sqlite":
        path = folder / f"{stem}.sqlite"
        source = sqlite3.connect(f"{Path(str(url.database)).resolve().as_uri()}?mode=ro", uri=True)
        copy = sqlite3.connect(path)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return path
    path = folder / f"{stem}.sql"
    environment = dict(os.environ)
    if login.backend == "postgresql":
        program = shutil.which("pg_dump")
        arguments = [
            f"--host={url.host}",
            f"--port={url.port or 5432}",
            f"--username={url.username or ''}",
            f"--file={path}",
            "--no-password",
            str(url.database),
        ]
        environment["PGPASSWORD"] = login.password  # never on the command line
    else:
        program = shutil.which("mariadb-dump") or shutil.which("mysqldump")
        arguments = [
            f"--host={url.host}",
            f"--port={url.port or 3306}",
            f"--user={url.username or ''}",
            "--single-transaction",
            f"--result-file={path}",
            str(url.database),
        ]
        environment["MYSQL_PWD"] = login.password
    if program is None:
        raise TargetError(f"no dump program for {login.backend} on this machine's PATH")
    done = subprocess.run(  # noqa: S603 - fixed program, arguments from the target's URL
        [program, *arguments], env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = scrub(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "", login)
        raise TargetError(f"{Path(program).name} failed ({done.returncode}): {detail}")
    return path
