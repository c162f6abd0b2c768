"""Alembic migrations of the record store, a tree of its own beside the ops database's."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from dutydesk.db import build_engine

HERE = Path(__file__).parent
# Its own version table, so the record store may share a PostgreSQL database with the ops one.
VERSION_TABLE = "records_alembic_version"


def alembic_config(url: str) -> Config:
    """An Alembic config for the record store at `url`, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the record store at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the record store at `url` down to `revision`."""
    command.downgrade(alembic_config(url), revision)


def heads(url: str = "sqlite://") -> list[str]:
    """The head revisions of the record store's migration scripts (one, in a healthy tree)."""
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_of(connection: Connection) -> str | None:
    """The revision of the record store `connection` is open on (None: never migrated)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def current(engine: Engine) -> str | None:
    """The revision the record store is at, or None when it has never been migrated."""
    with engine.connect() as connection:
        return current_of(connection)


def pending(url: str) -> bool:
    """Whether the record store at `url` is behind the newest migration."""
    engine = build_engine(url)
    try:
        return current(engine) not in heads(url)
    finally:
        engine.dispose()


def model_drift(engine: Engine) -> list[object]:
    """Differences between the record store's models and its schema (empty when they match)."""
    from alembic.autogenerate import compare_metadata

    from dutydesk.records.models import RecordsBase

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "version_table": VERSION_TABLE},
        )
        return list(compare_metadata(context, RecordsBase.metadata))
