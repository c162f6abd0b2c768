"""The export demo's real month of runs: the seeded metric rules fire on the data-loss day,
for study-a's unique health codes, and on no other day or series."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.alarms import rules
from dutydesk.alarms.evaluate import replay
from dutydesk.alarms.models import Alarm
from dutydesk.db import utcnow
from dutydesk.export.demo import LOSS_DAYS_AGO, LOSS_STUDY
from dutydesk.metrics._export import backfill
from dutydesk.records.store import upgrade_records
from tests.conftest import clear_caches
from tests.export.test_runs import drain


@pytest.fixture
def empty_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, migrated record store and warehouse named in the settings."""
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    upgrade_records(url)
    monkeypatch.setenv("DUTYDESK_RECORDS_URL", url)
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", str(tmp_path / "warehouse"))
    clear_caches()
    return tmp_path


def test_demo_months_data_loss_day_fires_and_no_other_day_does(
    empty_records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    registry.load_domains()
    registry.demo_seeders["export"](db, registry.DemoContext(password="x" * 12, made=[]))
    db.commit()
    drain(db, factory)
    rules.seed_default_rules(db, "test")
    now = utcnow()
    # The month's export series, as the desk's metrics roll-up writes them before the replay.
    backfill(db, now - dt.timedelta(days=40))
    fired: set[tuple[dt.date, str, str]] = set()
    evaluated = 0
    for rule in rules.list_rules(db):
        if rule.kind != "metric_shift":
            continue
        for _at, outcomes in replay(db, rule, now - dt.timedelta(days=40), now):
            evaluated += len(outcomes)
            for outcome in outcomes:
                if outcome.decision.firing:
                    # A point is dated at the end of the day it measured.
                    point_at = dt.datetime.fromisoformat(outcome.decision.numbers["at"])
                    day = (point_at - dt.timedelta(days=1)).date()
                    fired.add((day, rule.name, outcome.decision.instance))
    loss_day = now.date() - dt.timedelta(days=LOSS_DAYS_AGO)
    assert evaluated > 100
    # The loss day fires (study-a's unique health codes, and the counts that fell with them:
    # numTotal, accepted records, study-a's tables); no other day fires, in any series.
    assert {day for day, _rule, _series in fired} == {loss_day}, sorted(fired)
    assert (
        loss_day,
        "shift-unique-health-codes",
        f"export.uniqueHealthCodes[{LOSS_STUDY}]",
    ) in fired
    assert not any("uniqueHealthCodes[study-b" in s for _d, _r, s in fired)
    alarm = db.scalar(
        select(Alarm).where(
            Alarm.fingerprint
            == f"rule:shift-unique-health-codes:export.uniqueHealthCodes[{LOSS_STUDY}]"
        )
    )
    assert alarm is not None and alarm.ticket_id is not None
    assert alarm.state == "resolved"  # the next night was normal again
