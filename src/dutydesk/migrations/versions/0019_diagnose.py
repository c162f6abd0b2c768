"""diagnose: exception projects, exception groups and events, per-project rate counters;
Supervisor servers, the processes their last poll saw, and the actions asked of them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, dutydesk.db.UTCDateTime(timezone=True), nullable=False)


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"],
        ["exception_projects.id"],
        name=f"fk_{table}_project_id_exception_projects",
        ondelete="CASCADE",
    )


def _server_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["server_id"],
        ["supervisor_servers.id"],
        name=f"fk_{table}_server_id_supervisor_servers",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "exception_projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key", sa.String(32), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=False),
        sa.Column("rate_window_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _moment("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_exception_projects"),
        sa.UniqueConstraint("name", name="uq_exception_projects_name"),
        sa.UniqueConstraint("public_key", name="uq_exception_projects_public_key"),
    )
    op.create_table(
        "exception_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("culprit", sa.String(300), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        _moment("first_seen"),
        _moment("last_seen"),
        sa.Column("first_release", sa.String(200), nullable=True),
        sa.Column("last_release", sa.String(200), nullable=True),
        sa.Column("environment", sa.String(100), nullable=True),
        sa.Column("alarm_fingerprint", sa.String(200), nullable=False),
        _project_fk("exception_groups"),
        sa.PrimaryKeyConstraint("id", name="pk_exception_groups"),
        sa.UniqueConstraint(
            "project_id", "fingerprint", name="uq_exception_groups_project_id_fingerprint"
        ),
    )
    op.create_index("ix_exception_groups_last_seen", "exception_groups", ["last_seen"])
    op.create_table(
        "exception_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        _moment("received_at"),
        sa.Column("release", sa.String(200), nullable=True),
        sa.Column("environment", sa.String(100), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["exception_groups.id"],
            name="fk_exception_events_group_id_exception_groups",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_exception_events"),
    )
    op.create_index(
        "ix_exception_events_group_id_received_at",
        "exception_events",
        ["group_id", "received_at"],
    )
    op.create_table(
        "exception_rate_counts",
        sa.Column("project_id", sa.Integer(), nullable=False),
        _moment("window_start"),
        sa.Column("count", sa.Integer(), nullable=False),
        _project_fk("exception_rate_counts"),
        sa.PrimaryKeyConstraint("project_id", "window_start", name="pk_exception_rate_counts"),
    )

    op.create_table(
        "supervisor_servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("password", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_polled_at", dutydesk.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        _moment("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_supervisor_servers"),
        sa.UniqueConstraint("name", name="uq_supervisor_servers_name"),
    )
    op.create_table(
        "supervised_processes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=False),
        _moment("seen_at"),
        _server_fk("supervised_processes"),
        sa.PrimaryKeyConstraint("id", name="pk_supervised_processes"),
        sa.UniqueConstraint("server_id", "name", name="uq_supervised_processes_server_id_name"),
    )
    op.create_table(
        "supervisor_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _moment("at"),
        sa.Column("outcome", sa.Text(), nullable=False),
        _server_fk("supervisor_actions"),
        sa.PrimaryKeyConstraint("id", name="pk_supervisor_actions"),
    )


def downgrade() -> None:
    op.drop_table("supervisor_actions")
    op.drop_table("supervised_processes")
    op.drop_table("supervisor_servers")
    op.drop_table("exception_rate_counts")
    op.drop_index("ix_exception_events_group_id_received_at", table_name="exception_events")
    op.drop_table("exception_events")
    op.drop_index("ix_exception_groups_last_seen", table_name="exception_groups")
    op.drop_table("exception_groups")
    op.drop_table("exception_projects")
