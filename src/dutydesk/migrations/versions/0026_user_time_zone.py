"""per-user time zone: the IANA zone the console shows a person's dates in

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Everyone already signed up keeps seeing UTC until they choose otherwise. Plain ALTER
    # TABLE, not a batch copy: on SQLite a copy of `users` would have to drop the table that
    # tokens, sessions and most other tables point at, which foreign keys refuse.
    op.add_column(
        "users", sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC")
    )


def downgrade() -> None:
    # SQLite drops a plain column in place (3.35 and later), as PostgreSQL does.
    op.drop_column("users", "time_zone")
