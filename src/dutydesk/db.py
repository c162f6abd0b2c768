"""The ops database: engine, sessions and the few places SQLite and PostgreSQL differ."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    MetaData,
    Table,
    Update,
    bindparam,
    create_engine,
    delete,
    event,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeDecorator

from dutydesk.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")
log = logging.getLogger(__name__)

# The first line of a driver's message is kept in what the desk prints; this much of it.
_DETAIL_CHARS = 300
# Words of a driver's message that mean the database could not be reached or opened.
_UNREACHABLE_WORDS = (
    "unable to open database",
    "connection failed",
    "could not connect",
    "connection refused",
    "connection is bad",
    "server closed the connection",
    "could not translate host name",
    "authentication failed",
    "timeout expired",
)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base for every table of the ops database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def sqlite_busy_timeout_ms() -> int:
    """How long SQLite waits for a competing writer (web, worker and beat share one file)."""
    return round(get_settings().sqlite_busy_timeout_seconds * 1000)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout, foreign keys, and `BEGIN IMMEDIATE` for sessions that ask for it."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so the `begin` hook below decides its kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def build_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, with the SQLite settings several processes need.

    Statement parameters are left out of errors and logs: they can hold secrets (a token's
    hash, a password hash, a webhook's body).
    """
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_timeout_ms = sqlite_busy_timeout_ms()
        connect_args = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def describe_database_error(error: DBAPIError, subject: str = "the database") -> str:
    """`<what failed>: <what to do>` for an error the database driver raised, naming `subject`.

    Never the statement or its parameters, which SQLAlchemy's own text of the error carries.
    """
    original = error.orig if error.orig is not None else error
    lines = str(original).strip().splitlines()
    detail = (lines[0] if lines else type(original).__name__)[:_DETAIL_CHARS]
    lowered = detail.lower()
    sqlstate = str(getattr(original, "sqlstate", None) or "")
    # SQLite: "database is locked" (another writer), PostgreSQL: lock not available, deadlock.
    if "is locked" in lowered or sqlstate in {"55P03", "40P01"}:
        return f"{subject} is locked by another process ({detail}): retry, or stop the other writer"
    unreachable = error.connection_invalidated or sqlstate.startswith(("08", "28", "3D"))
    if isinstance(error, OperationalError) and any(
        words in lowered for words in _UNREACHABLE_WORDS
    ):
        unreachable = True
    if unreachable:
        return f"cannot reach {subject} ({detail}): check its URL and that it is running"
    if isinstance(error, IntegrityError):
        return f"{subject} refused the change ({detail}): it conflicts with what is stored"
    return f"{subject} failed ({detail}): check the database, then retry"


def is_sqlite(bind: Engine | Any) -> bool:
    """Whether a bind (engine, connection or session bind) talks to SQLite."""
    return bool(bind.dialect.name == "sqlite")


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    return build_engine(url)


def get_engine() -> Engine:
    """The engine of the configured ops database."""
    return engine_for(get_settings().effective_database_url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """A session maker bound to the ops database (or to `engine`).

    Loads every domain first: the audit hook and the job dispatch hook are session events that
    must be in place before the first change is written, whichever command makes it.
    """
    from dutydesk.registry import load_domains

    load_domains()
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextlib.contextmanager
def transaction(
    factory: sessionmaker[Session] | None = None, *, immediate: bool = False, actor: str = "system"
) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error.

    `immediate=True` takes SQLite's write lock at the start, for writes that read first.
    `actor` is who the audit log names for changes made here.
    """
    session = (factory or session_factory())()
    session.info["actor"] = actor
    if immediate:
        session.connection(execution_options={"immediate": True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_MEMO = "memo"
_BEFORE_COMMIT = "before commit"


def remembering(session: Session) -> None:
    """Let `session_memo` keep what it computes for as long as this session lives."""
    session.info[_MEMO] = {}


def memo_of(session: Session) -> dict[Any, Any] | None:
    """The memo of a `remembering` session (None for others)."""
    memo: dict[Any, Any] | None = session.info.get(_MEMO)
    return memo


def before_commit(session: Session, write: Callable[[], None]) -> None:
    """Run `write()` just before the session's transaction commits (writes a batch put off)."""
    session.info.setdefault(_BEFORE_COMMIT, []).append(write)


@event.listens_for(Session, "before_commit")
def _run_before_commit(session: Session) -> None:
    for write in session.info.pop(_BEFORE_COMMIT, []):
        write()


@event.listens_for(Session, "after_soft_rollback")
def _forget_before_commit(session: Session, previous: SessionTransaction) -> None:
    # Only when the whole transaction is rolled back: a savepoint's rollback (a lost insert
    # race, retried) leaves the rest of the transaction's writes to be made.
    if previous.parent is None:
        session.info.pop(_BEFORE_COMMIT, None)


def session_memo(session: Session, key: Any, compute: Callable[[], T]) -> T:
    """`compute()` once per session for each `key` when the session was made `remembering`;
    otherwise every time.

    For what a short batch of writes only reads (an integration by its token, the silences
    around now): every write of the batch sees it as it stood when the batch first read it.
    """
    memo = memo_of(session)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    value: T = memo[key]
    return value


_occurrence_updates: dict[tuple[str, frozenset[str]], Update] = {}


def occurrence_update(table: Table, names: frozenset[str]) -> Update:
    """`UPDATE table SET occurrences = occurrences + 1, <name> = :new_<name>, ... WHERE id =
    :row_id`, made once for each table and set of changed columns (statements made anew for
    each row cost more than running them)."""
    key = (table.name, names)
    statement = _occurrence_updates.get(key)
    if statement is None:
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(
                occurrences=table.c.occurrences + 1,
                **{name: bindparam(f"new_{name}") for name in sorted(names)},
            )
        )
        _occurrence_updates[key] = statement
    return statement


def delete_in_batches(
    session: Session, table: Table, condition: ColumnElement[bool], *, batch: int = 10_000
) -> int:
    """Delete the rows of `table` (with an `id` column) matching `condition`, `batch` at a
    time, so no statement holds the write lock long; returns how many went."""
    deleted = 0
    while True:
        chosen = select(table.c.id).where(condition).limit(batch).scalar_subquery()
        done = session.execute(delete(table).where(table.c.id.in_(chosen)))
        count = int(getattr(done, "rowcount", 0) or 0)
        deleted += count
        if count < batch:
            return deleted


def write_phase(session: Session) -> None:
    """End the session's transaction and begin the next one holding SQLite's write lock.

    Long jobs read, work outside any transaction, then write: with SQLite a transaction that
    read before another process wrote cannot write any more ("database is locked" at once,
    whatever the busy timeout), so the writing part starts afresh with `BEGIN IMMEDIATE`.
    On PostgreSQL this only commits what came before.
    """
    session.commit()
    session.connection(execution_options={"immediate": True})


# How often, and after what first wait, `retry_when_locked` tries again.
LOCKED_ATTEMPTS = 8
LOCKED_FIRST_WAIT_SECONDS = 0.05


def is_locked(error: BaseException) -> bool:
    """Whether SQLite refused a statement because another process writes the file.

    This comes either after the busy timeout, or at once when a transaction that read first
    tries to write after another process wrote (its snapshot is stale; waiting cannot help,
    only starting the transaction again can).
    """
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


def retry_when_locked(work: Callable[[], T], *, what: str = "a transaction") -> T:
    """Run `work()`, a whole transaction that begins and ends inside it, again after a
    growing, jittered wait while SQLite says "database is locked"; the last attempt's error,
    and any other, propagates. `work` must be safe to run again after a rollback."""
    wait = LOCKED_FIRST_WAIT_SECONDS
    for attempt in range(1, LOCKED_ATTEMPTS + 1):
        try:
            return work()
        except OperationalError as error:
            if attempt == LOCKED_ATTEMPTS or not is_locked(error):
                raise
            log.info("%s found the database locked (attempt %s); trying again", what, attempt)
        time.sleep(wait * random.uniform(0.5, 1.5))  # jitter: competing processes spread out
        wait = min(wait * 2, 2.0)
    raise AssertionError("unreachable")
