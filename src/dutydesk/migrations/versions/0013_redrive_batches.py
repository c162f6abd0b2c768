"""re-drive batches: one open batch a month, its record IDs with study and reason, verification

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "redrive_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("open_month", sa.String(length=7), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("export_run_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("verification", sa.JSON(), nullable=True),
        sa.Column("verified_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_run_id"],
            ["export_runs.id"],
            name=op.f("fk_redrive_batches_export_run_id_export_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redrive_batches")),
        sa.UniqueConstraint("open_month", name=op.f("uq_redrive_batches_open_month")),
    )
    with op.batch_alter_table("redrive_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redrive_batches_month"), ["month"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_redrive_batches_change_id"), ["change_id"], unique=False
        )
    op.create_table(
        "redrive_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=100), nullable=False),
        sa.Column("study_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("times_added", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("added_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["redrive_batches.id"],
            name=op.f("fk_redrive_items_batch_id_redrive_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redrive_items")),
        sa.UniqueConstraint(
            "batch_id", "record_id", name=op.f("uq_redrive_items_batch_id_record_id")
        ),
    )
    with op.batch_alter_table("redrive_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_redrive_items_batch_id_study_id", ["batch_id", "study_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("redrive_items", schema=None) as batch_op:
        batch_op.drop_index("ix_redrive_items_batch_id_study_id")
    op.drop_table("redrive_items")
    with op.batch_alter_table("redrive_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redrive_batches_change_id"))
        batch_op.drop_index(batch_op.f("ix_redrive_batches_month"))
    op.drop_table("redrive_batches")
