"""services to diagnose: their checklist lines and sources, and diagnosis results

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-07 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0024"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, dutydesk.db.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "diagnose_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("db_passwords", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _moment("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_diagnose_services"),
        sa.UniqueConstraint("name", name="uq_diagnose_services_name"),
    )
    op.create_table(
        "diagnoses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        _moment("at"),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["diagnose_services.id"],
            name="fk_diagnoses_service_id_diagnose_services",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_diagnoses_ticket_id_tickets",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_diagnoses"),
    )
    op.create_index("ix_diagnoses_service_id_at", "diagnoses", ["service_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_diagnoses_service_id_at", table_name="diagnoses")
    op.drop_table("diagnoses")
    op.drop_table("diagnose_services")
