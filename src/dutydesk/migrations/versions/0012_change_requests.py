"""change requests: kinds, payload, evidence, data_version, signoffs, signoff rules, timeline

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AT = dutydesk.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("evidence_hash", sa.String(length=64), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("revised_by_id", sa.Integer(), nullable=True),
        sa.Column("tracker_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_change_requests_author_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["revised_by_id"],
            ["users.id"],
            name=op.f("fk_change_requests_revised_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_change_requests_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
    )
    with op.batch_alter_table("change_requests") as batch:
        batch.create_index("ix_change_requests_state_kind", ["state", "kind"], unique=False)
        batch.create_index("ix_change_requests_author_id", ["author_id"], unique=False)

    op.create_table(
        "change_signoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("evidence_hash", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("dropped_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["change_requests.id"],
            name=op.f("fk_change_signoffs_change_id_change_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_change_signoffs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_signoffs")),
        sa.UniqueConstraint(
            "change_id",
            "user_id",
            "data_version",
            name=op.f("uq_change_signoffs_change_id_user_id_data_version"),
        ),
    )
    with op.batch_alter_table("change_signoffs") as batch:
        batch.create_index("ix_change_signoffs_change_id", ["change_id"], unique=False)

    op.create_table(
        "change_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["change_requests.id"],
            name=op.f("fk_change_comments_change_id_change_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_change_comments_author_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_comments")),
    )
    with op.batch_alter_table("change_comments") as batch:
        batch.create_index("ix_change_comments_change_id", ["change_id"], unique=False)

    op.create_table(
        "change_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["change_requests.id"],
            name=op.f("fk_change_events_change_id_change_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_events")),
    )
    with op.batch_alter_table("change_events") as batch:
        batch.create_index("ix_change_events_change_id_id", ["change_id", "id"], unique=False)

    op.create_table(
        "signoff_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signoff_rules")),
        sa.UniqueConstraint("kind", "role", name=op.f("uq_signoff_rules_kind_role")),
    )


def downgrade() -> None:
    op.drop_table("signoff_rules")
    with op.batch_alter_table("change_events") as batch:
        batch.drop_index("ix_change_events_change_id_id")
    op.drop_table("change_events")
    with op.batch_alter_table("change_comments") as batch:
        batch.drop_index("ix_change_comments_change_id")
    op.drop_table("change_comments")
    with op.batch_alter_table("change_signoffs") as batch:
        batch.drop_index("ix_change_signoffs_change_id")
    op.drop_table("change_signoffs")
    with op.batch_alter_table("change_requests") as batch:
        batch.drop_index("ix_change_requests_author_id")
        batch.drop_index("ix_change_requests_state_kind")
    op.drop_table("change_requests")
