"""The alarms demo seeder: rules with the defaults, log counts and groups, once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms.demo import DEMO_SOURCE, seed_alarms
from dutydesk.alarms.evaluate import decide
from dutydesk.alarms.models import AlarmRule
from dutydesk.alarms.rules import get_rule
from dutydesk.intake.demo import seed_intake
from dutydesk.intake.models import ErrorGroup, LogCount
from dutydesk.jobs.models import Job


def test_demo_seeds_rules_log_history_and_a_replay_once(db: Session) -> None:
    context = registry.DemoContext(password="x", made=[])
    seed_intake(db, context)
    seed_alarms(db, context)
    names = set(db.scalars(select(AlarmRule.name)))
    assert {"errors-per-hour", "warnings-per-hour", "shift-unique-health-codes"} <= names
    assert {"nightly-export-finished"} <= names
    assert any(name.endswith("-deadline") for name in names)
    assert any(name.endswith("-silence") for name in names)
    lines = db.scalar(select(func.sum(LogCount.count)).where(LogCount.source == DEMO_SOURCE))
    assert lines and lines > 500
    templates = set(db.scalars(select(ErrorGroup.template)))
    assert "Timeout after <num> ms reading record <num>" in templates
    assert db.scalar(select(func.count()).select_from(Job).where(Job.kind == "alarms.replay"))
    finished = get_rule(db, "nightly-export-finished")
    assert finished.state.get("last_event_at")
    assert decide(db, finished)  # decides without error on the demo data
    rules_before = db.scalar(select(func.count()).select_from(AlarmRule))
    seed_alarms(db, context)
    assert db.scalar(select(func.count()).select_from(AlarmRule)) == rules_before
