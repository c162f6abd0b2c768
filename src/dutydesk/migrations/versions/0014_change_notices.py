"""change notices: each audited change's risk level, sent at once or in the daily digest

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
