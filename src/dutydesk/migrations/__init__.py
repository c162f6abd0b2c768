"""Alembic migrations, run as an explicit step (`dutydesk db upgrade`).

Two trees share one mechanism: the ops database's (this folder) and the record store's
(`dutydesk.records.migrations`), each with its own scripts, version table and models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData

from dutydesk.db import build_engine

HERE = Path(__file__).parent


def is_unmodelled(name: str | None) -> bool:
    """Whether a table belongs to what the models cannot describe: the ticket search index.

    That index is an FTS5 virtual table (with its shadow tables) on SQLite and a tsvector table
    on PostgreSQL, made by dialect-specific SQL in migration 0003.
    """
    return name is not None and (name == "ticket_search" or name.startswith("ticket_search_"))


def _include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    return not (type_ == "table" and is_unmodelled(name))


def _include_object(
    obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    table = getattr(obj, "table", None)
    table_name = getattr(table, "name", None) if table is not None else None
    return not (is_unmodelled(name) if type_ == "table" else is_unmodelled(table_name))


@dataclass(frozen=True)
class MigrationTree:
    """One Alembic tree: its scripts, its version table and the models it must match."""

    folder: Path
    version_table: str
    metadata: Callable[[], MetaData]

    def config(self, url: str) -> Config:
        """An Alembic config for the database at `url`, without an ini file."""
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        return config

    def upgrade(self, url: str, revision: str = "head") -> None:
        """Bring the database at `url` up to `revision`."""
        command.upgrade(self.config(url), revision)

    def downgrade(self, url: str, revision: str) -> None:
        """Take the database at `url` down to `revision`."""
        command.downgrade(self.config(url), revision)

    def heads(self, url: str = "sqlite://") -> list[str]:
        """The head revisions of the scripts (one, in a healthy tree)."""
        return list(ScriptDirectory.from_config(self.config(url)).get_heads())

    def current_of(self, connection: Connection) -> str | None:
        """The revision of the database `connection` is open on (None: never migrated)."""
        context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
        return context.get_current_revision()

    def current(self, engine: Engine) -> str | None:
        """The revision the database is at, or None when it has never been migrated."""
        with engine.connect() as connection:
            return self.current_of(connection)

    def pending(self, url: str) -> bool:
        """Whether the database at `url` is behind the newest migration."""
        engine = build_engine(url)
        try:
            return self.current(engine) not in self.heads(url)
        finally:
            engine.dispose()

    def model_drift(self, engine: Engine) -> list[object]:
        """Differences between the models and the database's schema (empty when they match)."""
        from alembic.autogenerate import compare_metadata

        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "version_table": self.version_table,
                    "include_name": _include_name,
                    "include_object": _include_object,
                },
            )
            return list(compare_metadata(context, self.metadata()))

    def run_env(self) -> None:
        """The body of the tree's `env.py`: migrate online, batch mode for SQLite."""
        from alembic import context

        def run(connection: Connection) -> None:
            context.configure(
                connection=connection,
                target_metadata=self.metadata(),
                version_table=self.version_table,
                render_as_batch=True,
                compare_type=True,
                include_name=_include_name,
                include_object=_include_object,
            )
            with context.begin_transaction():
                context.run_migrations()

        given = context.config.attributes.get("connection")
        if given is not None:
            run(given)
            return
        engine = build_engine(context.config.get_main_option("sqlalchemy.url") or "")
        try:
            with engine.connect() as connection:
                run(connection)
                connection.commit()
        finally:
            engine.dispose()


def _ops_metadata() -> MetaData:
    from dutydesk.db import Base
    from dutydesk.registry import load_domains

    load_domains()
    return Base.metadata


OPS = MigrationTree(HERE, "alembic_version", _ops_metadata)

alembic_config = OPS.config
upgrade = OPS.upgrade
downgrade = OPS.downgrade
heads = OPS.heads
current = OPS.current
pending = OPS.pending
model_drift = OPS.model_drift
