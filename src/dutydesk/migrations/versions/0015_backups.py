"""backups: targets, backup rows with checksums, restore drills with RPO and RTO

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dutydesk.db import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backup_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("every_minutes", sa.Integer(), nullable=False),
        sa.Column("drill_every_minutes", sa.Integer(), nullable=False),
        sa.Column("max_age_minutes", sa.Integer(), nullable=False),
        sa.Column("keep_hourly", sa.Integer(), nullable=False),
        sa.Column("keep_daily", sa.Integer(), nullable=False),
        sa.Column("keep_weekly", sa.Integer(), nullable=False),
        sa.Column("continuous", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_targets")),
        sa.UniqueConstraint("name", name=op.f("uq_backup_targets_name")),
    )
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("schema_revision", sa.String(64), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("table_counts", sa.JSON(), nullable=False),
        sa.Column("row_checksums", sa.JSON(), nullable=False),
        sa.Column("verification", sa.String(16), nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["backup_targets.id"],
            name=op.f("fk_backups_target_id_backup_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    op.create_index("ix_backups_target_id_started_at", "backups", ["target_id", "started_at"])
    op.create_table(
        "backup_drills",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("backup_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("restored_to", UTCDateTime(), nullable=True),
        sa.Column("rpo_seconds", sa.Double(), nullable=True),
        sa.Column("rto_seconds", sa.Double(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["backup_targets.id"],
            name=op.f("fk_backup_drills_target_id_backup_targets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["backup_id"],
            ["backups.id"],
            name=op.f("fk_backup_drills_backup_id_backups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_drills")),
    )
    op.create_index(
        "ix_backup_drills_target_id_started_at", "backup_drills", ["target_id", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_backup_drills_target_id_started_at", table_name="backup_drills")
    op.drop_table("backup_drills")
    op.drop_index("ix_backups_target_id_started_at", table_name="backups")
    op.drop_table("backups")
    op.drop_table("backup_targets")
