"""dashboard series keys: one row per metric series (key, name, labels), filled from the points;
the points' index covers their value

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    series = op.create_table(
        "metric_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_series")),
        sa.UniqueConstraint("key", name=op.f("uq_metric_series_key")),
    )
    # Every series the points hold, with the name and labels of its first point (as the
    # series list read them before), in key order.
    points = sa.table(
        "metric_points",
        sa.column("id", sa.Integer),
        sa.column("series", sa.String),
        sa.column("name", sa.String),
        sa.column("labels", sa.JSON),
    )
    first = sa.select(sa.func.min(points.c.id)).group_by(points.c.series)
    op.execute(
        series.insert().from_select(
            ["key", "name", "labels"],
            sa.select(points.c.series, points.c.name, points.c.labels)
            .where(points.c.id.in_(first))
            .order_by(points.c.series),
        )
    )
    with op.batch_alter_table("metric_points") as batch:
        batch.create_index("ix_metric_points_series_at_value", ["series", "at", "value"])
        batch.drop_index("ix_metric_points_series_at")


def downgrade() -> None:
    with op.batch_alter_table("metric_points") as batch:
        batch.create_index("ix_metric_points_series_at", ["series", "at"])
        batch.drop_index("ix_metric_points_series_at_value")
    op.drop_table("metric_series")
