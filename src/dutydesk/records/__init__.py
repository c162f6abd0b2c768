"""The record store: studies, schemas, participants, records and attachments to export."""

from __future__ import annotations

from dutydesk.records.store import (
    records_engine,
    records_session_factory,
    records_url,
    upgrade_records,
)

__all__ = ["records_engine", "records_session_factory", "records_url", "upgrade_records"]
