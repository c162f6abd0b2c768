"""The intake demo seeder: integrations, inbox history that landed on tickets, once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms.models import Alarm
from dutydesk.intake.demo import seed_intake
from dutydesk.intake.models import InboxItem, Integration


def test_demo_seeds_integrations_and_inbox_history_once(db: Session) -> None:
    context = registry.DemoContext(password="x", made=[])
    seed_intake(db, context)
    kinds = set(db.scalars(select(Integration.kind)))
    assert {"alertmanager", "generic", "email", "github", "ci", "heartbeat"} <= kinds
    outcomes = set(db.scalars(select(InboxItem.outcome)))
    assert outcomes == {"accepted", "rejected"}
    assert db.scalar(select(func.count()).select_from(Alarm).where(Alarm.ticket_id.is_not(None)))
    items = db.scalar(select(func.count()).select_from(InboxItem))
    seed_intake(db, context)
    assert db.scalar(select(func.count()).select_from(InboxItem)) == items
