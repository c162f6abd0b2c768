"""Alembic migrations of the record store, a tree of its own beside the ops database's."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData

from dutydesk.migrations import MigrationTree

# Its own version table, so the record store may share a PostgreSQL database with the ops one.
VERSION_TABLE = "records_alembic_version"


def _records_metadata() -> MetaData:
    from dutydesk.records.models import RecordsBase

    return RecordsBase.metadata


RECORDS = MigrationTree(Path(__file__).parent, VERSION_TABLE, _records_metadata)

alembic_config = RECORDS.config
upgrade = RECORDS.upgrade
downgrade = RECORDS.downgrade
heads = RECORDS.heads
current_of = RECORDS.current_of
current = RECORDS.current
pending = RECORDS.pending
model_drift = RECORDS.model_drift
