"""The demo month of exports, with its night of data loss, made once."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.export.demo import DEMO_DAYS, LOSS_STUDY
from dutydesk.export.models import ExportRun
from dutydesk.metrics.service import series
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


def test_demo_month_shows_a_sixty_percent_drop_in_unique_health_codes(
    empty_records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    registry.load_domains()
    context = registry.DemoContext(password="x" * 12, made=[])
    registry.demo_seeders["export"](db, context)
    db.commit()
    registry.demo_seeders["export"](db, context)  # a second demo start adds nothing
    db.commit()
    assert db.scalar(select(func.count()).select_from(ExportRun)) == DEMO_DAYS
    drain(db, factory)
    states = set(db.scalars(select(ExportRun.state)))
    assert states == {"succeeded"}
    points = [value for _, value in series(db, f"uniqueHealthCodes[{LOSS_STUDY}]")]
    assert len(points) == DEMO_DAYS
    typical = statistics.median(points)
    lowest = min(points)
    assert 0.3 * typical <= lowest <= 0.5 * typical, points
    others = [value for _, value in series(db, "uniqueHealthCodes[study-b]")]
    assert min(others) > 0.7 * statistics.median(others)
