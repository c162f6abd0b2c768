"""intake: integrations, inbox items, rate counts, ping checks, pings; alarms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 11:27:49.353574
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=8), nullable=False),
        sa.Column("signing_secret", sa.String(length=200), nullable=True),
        sa.Column("group_by", sa.JSON(), nullable=False),
        sa.Column("resolve_when", sa.JSON(), nullable=False),
        sa.Column("close_on_resolve", sa.Boolean(), nullable=False),
        sa.Column("default_severity", sa.String(length=16), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=False),
        sa.Column("rate_window_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("name", name=op.f("uq_integrations_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_integrations_token_hash")),
    )
    op.create_table(
        "inbox_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("alarm_ids", sa.JSON(), nullable=False),
        sa.Column("ticket_ids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_inbox_items_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_items")),
    )
    with op.batch_alter_table("inbox_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_items_integration_id_received_at",
            ["integration_id", "received_at"],
            unique=False,
        )
        batch_op.create_index("ix_inbox_items_received_at", ["received_at"], unique=False)

    op.create_table(
        "intake_rate_counts",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("minute", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_intake_rate_counts_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "minute", name=op.f("pk_intake_rate_counts")),
    )
    op.create_table(
        "ping_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        sa.Column("last_ping_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_ping_kind", sa.String(length=16), nullable=True),
        sa.Column("last_start_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_ping_checks_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ping_checks")),
        sa.UniqueConstraint("integration_id", name=op.f("uq_ping_checks_integration_id")),
    )
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("ticket_key", sa.String(length=200), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("first_fired_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_fired_at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_alarms_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_alarms_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_alarms_fingerprint")),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alarms_integration_id"), ["integration_id"], unique=False
        )
        batch_op.create_index(
            "ix_alarms_state_last_fired_at", ["state", "last_fired_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alarms_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index("ix_alarms_ticket_key_state", ["ticket_key", "state"], unique=False)

    op.create_table(
        "pings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("at", dutydesk.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["ping_checks.id"],
            name=op.f("fk_pings_check_id_ping_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pings")),
    )
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.create_index("ix_pings_check_id_at", ["check_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.drop_index("ix_pings_check_id_at")

    op.drop_table("pings")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index("ix_alarms_ticket_key_state")
        batch_op.drop_index(batch_op.f("ix_alarms_ticket_id"))
        batch_op.drop_index("ix_alarms_state_last_fired_at")
        batch_op.drop_index(batch_op.f("ix_alarms_integration_id"))

    op.drop_table("alarms")
    op.drop_table("ping_checks")
    op.drop_table("intake_rate_counts")
    with op.batch_alter_table("inbox_items", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_items_received_at")
        batch_op.drop_index("ix_inbox_items_integration_id_received_at")

    op.drop_table("inbox_items")
    op.drop_table("integrations")
