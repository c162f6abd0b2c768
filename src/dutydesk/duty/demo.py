"""Demo duty: the operators and approvers take weekly turns on "ops", with one override."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.duty import service
from dutydesk.duty.models import Rotation

DEMO_ROTATION = "ops"
DEMO_MEMBERS = ("olga", "omar", "ada", "dirk")


@registry.demo_seeder("duty")
def seed_duty(session: Session, context: registry.DemoContext) -> None:
    """The "ops" rotation (hand-off Monday 09:00 Berlin) and omar standing in tomorrow."""
    if session.scalar(select(Rotation.id).where(Rotation.name == DEMO_ROTATION)) is not None:
        return
    rotation = service.create_rotation(
        session,
        name=DEMO_ROTATION,
        members=DEMO_MEMBERS,
        time_zone="Europe/Berlin",
        handoff_weekday="monday",
        handoff_time="09:00",
        lead="ada",
    )
    start = (utcnow() + dt.timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    service.add_override(
        session,
        rotation,
        username="omar",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=10),
        reason="olga at a training day",
        actor="demo",
    )
    context.note(f"rotation {DEMO_ROTATION} ({', '.join(DEMO_MEMBERS)}) with one override")
