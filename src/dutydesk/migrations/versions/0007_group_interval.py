"""escalations remember the occurrences their notices told of (the group interval)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("occurrences_told", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("occurrences_told_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_column("occurrences_told_at")
        batch_op.drop_column("occurrences_told")
