"""export slices: the schema tables each slice of a split study writes

Revision ID: 0028
Revises: 0026
Create Date: 2026-12-07 06:00:00

`slice_tables` lists a slice's schema tables as [schema id, revision] pairs; NULL for a study
exported whole. Downgrading drops it (and 0021's downgrade keeps each study's first slice).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("export_study_parts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slice_tables", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_study_parts", schema=None) as batch_op:
        batch_op.drop_column("slice_tables")
