"""The demo starts green: once its seeders ran and its jobs are done, with the demo's mail
catcher as the outgoing mail server, nothing is failed or undelivered and the self-check passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.audit.models import AuditEvent
from dutydesk.demo import seed_demo
from dutydesk.export.models import ExportRun
from dutydesk.jobs.models import Job
from dutydesk.jobs.service import tick
from dutydesk.notify import watchdog
from dutydesk.notify.democatcher import catcher, catcher_environment, free_port
from dutydesk.notify.models import Delivery
from dutydesk.people.demo import DEMO_USERS
from dutydesk.records.store import upgrade_records
from dutydesk.settings import get_settings
from tests.conftest import clear_caches
from tests.export.test_runs import drain


def test_demo_has_no_failure_nobody_meant_and_its_notices_reach_the_catcher(
    home: Path, monkeypatch: pytest.MonkeyPatch, db: Session, factory: sessionmaker[Session]
) -> None:
    for name, value in catcher_environment(free_port()).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DUTYDESK_DEMO_PASSWORD", "demo password 1")
    clear_caches()
    settings = get_settings()
    upgrade_records(settings.effective_records_url)
    server = catcher(settings)
    server.start()
    try:
        seed_demo(settings, factory)
        # Green from the first moment, before beat's first tick has escalated anything.
        first = watchdog.check(db)
        assert first.ok, first.unnoticed
        db.rollback()
        tick(factory)  # what beat's first tick starts
        drain(db, factory)  # every job due now succeeds (drain asserts it)
    finally:
        server.stop()
    assert set(db.scalars(select(ExportRun.state))) == {"succeeded"}
    assert db.scalar(select(func.count()).where(Job.state == "failed")) == 0
    grouped = select(Delivery.state, func.count()).group_by(Delivery.state)
    states = {state: count for state, count in db.execute(grouped)}
    assert set(states) == {"sent"}, states
    caught = list((home / "demo-mail").glob("*.eml"))
    assert len(caught) == states["sent"]
    check = watchdog.check(db)
    assert check.ok, check.unnoticed
    # Every demo user's creation is in the audit log, as the demo's.
    created = db.scalars(
        select(AuditEvent.object_id).where(
            AuditEvent.object_type == "users",
            AuditEvent.action == "create",
            AuditEvent.actor == "demo",
        )
    ).all()
    assert len(created) == len(DEMO_USERS)
