"""change notices: each audited change's risk level, sent at once or in the daily digest

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dutydesk.db import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_event_id", sa.Integer(), nullable=False),
        sa.Column("risk", sa.String(length=8), nullable=False),
        sa.Column("told", sa.String(length=8), nullable=False),
        sa.Column("list_name", sa.String(length=100), nullable=False),
        sa.Column("digest_day", sa.Date(), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_event_id"],
            ["audit_events.id"],
            name=op.f("fk_change_notices_audit_event_id_audit_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_notices")),
        sa.UniqueConstraint("audit_event_id", name=op.f("uq_change_notices_audit_event_id")),
    )
    op.create_index(op.f("ix_change_notices_risk"), "change_notices", ["risk"])
    op.create_index(op.f("ix_change_notices_digest_day"), "change_notices", ["digest_day"])
    op.create_table(
        "change_digests",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("list_name", sa.String(length=100), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_change_digests")),
    )


def downgrade() -> None:
    op.drop_table("change_digests")
    op.drop_index(op.f("ix_change_notices_digest_day"), table_name="change_notices")
    op.drop_index(op.f("ix_change_notices_risk"), table_name="change_notices")
    op.drop_table("change_notices")
