"""The intake demo seeder: integrations, inbox history that landed on tickets, once."""

from __future__ import annotations

import glob as globbing
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms.models import Alarm
from dutydesk.db import utcnow
from dutydesk.intake.demo import seed_intake
from dutydesk.intake.log_sources import list_log_sources, scan_source
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


def test_demo_registers_a_log_source_over_the_log_it_writes_in_home(
    db: Session, home: Path
) -> None:
    seed_intake(db, registry.DemoContext(password="x", made=[]))
    [source] = list_log_sources(db)
    written = sorted(globbing.glob(source.glob))
    assert written and all(Path(name).is_relative_to(home / "logs") for name in written)
    result = scan_source(db, source, utcnow())
    assert result["files"] == 1 and result["events"] >= 24
