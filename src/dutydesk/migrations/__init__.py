"""Alembic migrations of the ops database, run as an explicit step (`dutydesk db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from dutydesk.db import build_engine

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    """An Alembic config for the ops database at `url`, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` down to `revision`."""
    command.downgrade(alembic_config(url), revision)


def heads(url: str = "sqlite://") -> list[str]:
    """The head revisions of the migration scripts (one, in a healthy tree)."""
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def pending(url: str) -> bool:
    """Whether the database at `url` is behind the newest migration."""
    engine = build_engine(url)
    try:
        return current(engine) not in heads(url)
    finally:
        engine.dispose()


def model_drift(engine: Engine) -> list[object]:
    """Differences between the models and the database's schema (empty when they match)."""
    from alembic.autogenerate import compare_metadata

    from dutydesk.db import Base
    from dutydesk.registry import load_domains

    load_domains()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
