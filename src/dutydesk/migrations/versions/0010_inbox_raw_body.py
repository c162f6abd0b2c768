"""the inbox keeps a body's exact bytes when its text is not a faithful copy (bytes that are
not UTF-8, NUL), so nothing a sender sent is lost

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_items") as batch:
        batch.add_column(sa.Column("raw_body", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox_items") as batch:
        batch.drop_column("raw_body")
