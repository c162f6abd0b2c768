"""Fixtures of the intake tests: integrations made through the service, committed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dutydesk.intake import service
from dutydesk.intake.service import NewToken


def make_integration(db: Session, kind: str, name: str | None = None, **options: Any) -> NewToken:
    """A committed integration of `kind`, with its token."""
    made = service.create_integration(
        db, name=name or f"{kind}-1", kind=kind, actor="test", **options
    )
    db.commit()
    return made
