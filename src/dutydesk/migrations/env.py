"""Alembic environment of the ops database."""

from dutydesk.migrations import OPS

OPS.run_env()
