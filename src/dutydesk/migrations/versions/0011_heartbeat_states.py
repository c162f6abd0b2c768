"""heartbeat checks keep their state (new, up, down) so a missed deadline raises the alarm
once; a check may expect a cron schedule in a time zone instead of a period; a ping whose
body was cut keeps the size it had

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ping_checks") as batch:
        batch.add_column(sa.Column("status", sa.String(8), nullable=False, server_default="new"))
        batch.add_column(sa.Column("schedule", sa.String(100), nullable=True))
        batch.add_column(sa.Column("tz", sa.String(64), nullable=False, server_default="UTC"))
    # A check that has had a success is up; one whose last word was a failure is down.
    op.execute(
        "UPDATE ping_checks SET status = CASE WHEN last_ping_kind = 'fail' THEN 'down' "
        "ELSE 'up' END WHERE last_success_at IS NOT NULL OR last_ping_kind = 'fail'"
    )
    with op.batch_alter_table("pings") as batch:
        batch.add_column(sa.Column("body_cut_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pings") as batch:
        batch.drop_column("body_cut_from")
    with op.batch_alter_table("ping_checks") as batch:
        batch.drop_column("tz")
        batch.drop_column("schedule")
        batch.drop_column("status")
