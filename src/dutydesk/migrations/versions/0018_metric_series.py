"""metric series: points get a name and labels; hourly and daily roll-ups; the heartbeats of
the desk's own processes; review marks and their action items

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import dutydesk.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str) -> sa.Column[object]:
    return sa.Column(name, dutydesk.db.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"))
    # Points written before: `name[key]` is the name with one label, `key`.
    connection = op.get_bind()
    points = sa.table(
        "metric_points", sa.column("series", sa.String), sa.column("name"), sa.column("labels")
    )
    for (series,) in connection.execute(sa.select(points.c.series).distinct()):
        name, _, rest = series.partition("[")
        labels = {"key": rest.removesuffix("]")}
        if not rest or not rest.endswith("]") or "]" in rest[:-1]:
            name, labels = series, {}
        connection.execute(
            points.update()
            .where(points.c.series == series)
            .values(name=name, labels=sa.bindparam("new_labels", labels, sa.JSON()))
        )
    op.create_table(
        "metric_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series", sa.String(300), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        _moment("at"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("last", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_rollups")),
        sa.UniqueConstraint("series", "period", "at", name="uq_metric_rollups_series_period_at"),
    )
    op.create_table(
        "process_heartbeats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _moment("started_at"),
        _moment("beat_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_heartbeats")),
        sa.UniqueConstraint("role", "host", "pid", name="uq_process_heartbeats"),
    )
    op.create_table(
        "review_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        _moment("period_start"),
        _moment("period_end"),
        _moment("marked_at"),
        sa.Column("marked_by", sa.String(200), nullable=False),
        sa.Column("attendees", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_marks")),
    )
    op.create_table(
        "review_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(300), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["review_marks.id"],
            name=op.f("fk_review_actions_review_id_review_marks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_review_actions_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_actions")),
    )


def downgrade() -> None:
    op.drop_table("review_actions")
    op.drop_table("review_marks")
    op.drop_table("process_heartbeats")
    op.drop_table("metric_rollups")
    with op.batch_alter_table("metric_points") as batch:
        batch.drop_column("labels")
        batch.drop_column("name")
