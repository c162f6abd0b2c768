"""releases: checklist templates, runs and their steps, release windows, broadcasts

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, dutydesk.db.UTCDateTime(timezone=True), nullable=nullable)


def _id(table: str) -> tuple[sa.Column[int], sa.PrimaryKeyConstraint]:
    return (
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )


def upgrade() -> None:
    op.create_table(
        "release_windows",
        *_id("release_windows"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("starts", sa.String(length=5), nullable=False),
        sa.Column("ends", sa.String(length=5), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _moment("created_at"),
        sa.UniqueConstraint("name", name=op.f("uq_release_windows_name")),
    )
    op.create_table(
        "release_templates",
        *_id("release_templates"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("pipelines", sa.JSON(), nullable=False),
        sa.Column("silence_matchers", sa.JSON(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _moment("created_at"),
        _moment("updated_at"),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["release_windows.id"],
            name=op.f("fk_release_templates_window_id_release_windows"),
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("name", name=op.f("uq_release_templates_name")),
    )
    op.create_table(
        "release_template_steps",
        *_id("release_template_steps"),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("skip_for_patch", sa.Boolean(), nullable=False),
        sa.Column("rollback", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["release_templates.id"],
            name=op.f("fk_release_template_steps_template_id_release_templates"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "template_id", "position", name=op.f("uq_release_template_steps_template_id_position")
        ),
    )
    op.create_table(
        "releases",
        *_id("releases"),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("previous_version", sa.String(length=64), nullable=True),
        sa.Column("patch", sa.Boolean(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=True),
        _moment("planned_start", nullable=True),
        _moment("planned_end", nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("silence_id", sa.Integer(), nullable=True),
        sa.Column("attached_events", sa.JSON(), nullable=False),
        _moment("created_at"),
        _moment("started_at", nullable=True),
        _moment("ended_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["release_templates.id"],
            name=op.f("fk_releases_template_id_release_templates"),
        ),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["release_windows.id"],
            name=op.f("fk_releases_window_id_release_windows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_releases_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["silence_id"],
            ["silences.id"],
            name=op.f("fk_releases_silence_id_silences"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_releases_state", "releases", ["state"])
    op.create_table(
        "release_step_runs",
        *_id("release_step_runs"),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("rollback", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signers", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("override_by", sa.String(length=200), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        _moment("started_at", nullable=True),
        _moment("ended_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_step_runs_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "release_id", "position", name=op.f("uq_release_step_runs_release_id_position")
        ),
    )
    op.create_table(
        "release_events",
        *_id("release_events"),
        sa.Column("release_id", sa.Integer(), nullable=False),
        _moment("at"),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_events_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["release_step_runs.id"],
            name=op.f("fk_release_events_step_id_release_step_runs"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_release_events_release_id_at", "release_events", ["release_id", "at"])
    op.create_table(
        "broadcasts",
        *_id("broadcasts"),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        _moment("starts_at"),
        _moment("ends_at", nullable=True),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _moment("created_at"),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_broadcasts_release_id_releases"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_broadcasts_ends_at", "broadcasts", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_broadcasts_ends_at", table_name="broadcasts")
    op.drop_table("broadcasts")
    op.drop_index("ix_release_events_release_id_at", table_name="release_events")
    op.drop_table("release_events")
    op.drop_table("release_step_runs")
    op.drop_index("ix_releases_state", table_name="releases")
    op.drop_table("releases")
    op.drop_table("release_template_steps")
    op.drop_table("release_templates")
    op.drop_table("release_windows")
