"""PostgreSQL: `pg_dump -Fc` from one exported snapshot, restores into scratch databases, and
what a database holds (rows per table, sampled-row checksums, the Alembic revision)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

SAMPLED_ROWS = 50
TOOL_TIMEOUT_SECONDS = 6 * 3600


class ToolFailed(RuntimeError):
    """A PostgreSQL program exited with an error; the message carries the end of its stderr."""


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries the password."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    return plain.render_as_string(hide_password=False), env


def psycopg_url(url: str) -> str:
    """The URL psycopg takes (no SQLAlchemy driver suffix), password included."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def program(name: str) -> str:
    """The path of a PostgreSQL program, from `DUTYDESK_BACKUP_POSTGRES_BIN` or the PATH."""
    from dutydesk.settings import get_settings

    candidate = Path(get_settings().backup_postgres_bin) / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ToolFailed(
            f"{name} not found in {get_settings().backup_postgres_bin} nor on the PATH; "
            "install the PostgreSQL client programs or set DUTYDESK_BACKUP_POSTGRES_BIN"
        )
    return found


def run(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run a program; its stdout, or ToolFailed with the end of its stderr."""
    done = subprocess.run(  # noqa: S603
        args, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ToolFailed(f"{Path(args[0]).name} exited with {done.returncode}: {' '.join(tail)}")
    return done.stdout


def _tables(cursor: Any) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY table_schema, table_name"
    )
    return [(str(schema), str(name)) for schema, name in cursor.fetchall()]


def _primary_key(cursor: Any, schema: str, table: str) -> list[str]:
    cursor.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (f'"{schema}"."{table}"',),
    )
    return [str(row[0]) for row in cursor.fetchall()]


def describe_with(cursor: Any) -> dict[str, Any]:
    """Rows per table, a checksum of the first sampled rows by primary key, and the revision,
    as the cursor's transaction sees them."""
    from psycopg import sql

    counts: dict[str, int] = {}
    sums: dict[str, str] = {}
    revision = None
    for schema, table in _tables(cursor):
        name = table if schema == "public" else f"{schema}.{table}"
        ident = sql.Identifier(schema, table)
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(ident))
        counts[name] = int(cursor.fetchone()[0])
        key = _primary_key(cursor, schema, table)
        order = (
            sql.SQL(", ").join(sql.Identifier(column) for column in key)
            if key
            else sql.SQL("t::text")
        )
        cursor.execute(
            sql.SQL(
                "SELECT md5(coalesce(string_agg(s.r, '|' ORDER BY s.n), '')) FROM "
                "(SELECT t::text AS r, row_number() OVER (ORDER BY {order}) AS n "
                "FROM {table} AS t ORDER BY {order} LIMIT {limit}) AS s"
            ).format(order=order, table=ident, limit=sql.Literal(SAMPLED_ROWS))
        )
        sums[name] = str(cursor.fetchone()[0])
        if name == "alembic_version":
            cursor.execute("SELECT version_num FROM alembic_version")
            row = cursor.fetchone()
            revision = str(row[0]) if row else None
    return {"table_counts": counts, "row_checksums": sums, "schema_revision": revision}


def describe(url: str) -> dict[str, Any]:
    """`describe_with` in a read-only transaction of its own."""
    import psycopg

    with psycopg.connect(psycopg_url(url)) as connection, connection.cursor() as cursor:
        return describe_with(cursor)


def dump(url: str, into: Path) -> dict[str, Any]:
    """`pg_dump -Fc` into a file, from the very snapshot whose rows are counted and sampled."""
    import psycopg

    uri, env = libpq(url)
    with psycopg.connect(psycopg_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        row = cursor.fetchone()
        assert row is not None
        snapshot = str(row[0])
        described = describe_with(cursor)
        run(
            [program("pg_dump"), "-Fc", f"--snapshot={snapshot}", "-f", str(into), "-d", uri],
            env,
        )
    return described


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server (dropped afterwards); yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"dutydesk_drill_{secrets.token_hex(6)}"
    admin = psycopg_url(server_url)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def restore(dump_file: Path, url: str) -> None:
    """`pg_restore` a custom-format dump into the (empty) database at `url`."""
    uri, env = libpq(url)
    run([program("pg_restore"), "--no-owner", "--exit-on-error", "-d", uri, str(dump_file)], env)


def amcheck(url: str) -> str:
    """`pg_amcheck` of a database (installing the amcheck extension in it): `ok` or the
    problems found; `skipped: ...` when the program is not there."""
    try:
        tool = program("pg_amcheck")
    except ToolFailed as error:
        return f"skipped: {error}"
    uri, env = libpq(url)
    try:
        run([tool, "--install-missing", "--heapallindexed", uri], env)
    except ToolFailed as error:
        return str(error)
    return "ok"
