"""database change targets with encrypted credentials; dry runs and applies of scripts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dutydesk.db import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "db_change_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("read_user", sa.String(200), nullable=False),
        sa.Column("read_password", sa.Text(), nullable=False),
        sa.Column("write_user", sa.String(200), nullable=False),
        sa.Column("write_password", sa.Text(), nullable=False),
        sa.Column("statement_timeout_ms", sa.Integer(), nullable=False),
        sa.Column("lock_timeout_ms", sa.Integer(), nullable=False),
        sa.Column("backup_target", sa.String(100), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_tested_at", UTCDateTime(), nullable=True),
        sa.Column("last_test", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_db_change_targets")),
        sa.UniqueConstraint("name", name=op.f("uq_db_change_targets_name")),
    )
    op.create_table(
        "db_change_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("script_sha256", sa.String(64), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_db_change_runs")),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["change_requests.id"],
            name=op.f("fk_db_change_runs_change_id_change_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["db_change_targets.id"],
            name=op.f("fk_db_change_runs_target_id_db_change_targets"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_db_change_runs_change_id_id", "db_change_runs", ["change_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_db_change_runs_change_id_id", table_name="db_change_runs")
    op.drop_table("db_change_runs")
    op.drop_table("db_change_targets")
