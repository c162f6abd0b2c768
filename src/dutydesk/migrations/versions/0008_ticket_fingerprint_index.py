"""tickets are found by fingerprint whatever their status (the last closed one of an alarm)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 14:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_fingerprint_id", "tickets", ["fingerprint", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_fingerprint_id", table_name="tickets")
