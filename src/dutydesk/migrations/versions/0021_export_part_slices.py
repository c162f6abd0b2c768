"""export study parts split finer: a study's work in several slices

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 04:30:00

A part is one slice of a study in a run (`slice_no`, 0 for a study exported whole), so a run
may hold several parts of one study. Downgrading keeps each study's first slice only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("export_study_parts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slice_no", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_export_study_parts_run_id_study_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_export_study_parts_run_id_study_id_slice_no", ["run_id", "study_id", "slice_no"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM export_study_parts WHERE slice_no <> 0")
    with op.batch_alter_table("export_study_parts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_export_study_parts_run_id_study_id_slice_no", type_="unique")
        batch_op.create_unique_constraint(
            "uq_export_study_parts_run_id_study_id", ["run_id", "study_id"]
        )
        batch_op.drop_column("slice_no")
