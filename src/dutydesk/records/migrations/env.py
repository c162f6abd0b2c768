"""Alembic environment of the record store."""

from dutydesk.records.migrations import RECORDS

RECORDS.run_env()
