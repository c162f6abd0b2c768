"""Alembic environment of the record store: its own models and version table, batch mode."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from dutydesk.db import build_engine
from dutydesk.records.migrations import VERSION_TABLE
from dutydesk.records.models import RecordsBase

config = context.config
target_metadata = RecordsBase.metadata


def run_migrations() -> None:
    """Run migrations online against the configured URL (or a connection passed in)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = build_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
