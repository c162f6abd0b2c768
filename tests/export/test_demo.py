"""The demo month of exports, with its night of data loss, made once: the past nights as
finished runs, last night's as a real export, and a nightly schedule."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.export import service
from dutydesk.export.demo import DEMO_DAYS, DEMO_SCHEDULE, LOSS_DAYS_AGO, LOSS_STUDY
from dutydesk.export.models import ExportRun, ExportSchedule
from dutydesk.jobs.models import Job
from dutydesk.metrics.service import series
from dutydesk.records.store import upgrade_records
from dutydesk.review._trends import trends
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


def seed(db: Session) -> registry.DemoContext:
    registry.load_domains()
    context = registry.DemoContext(password="x" * 12, made=[])
    registry.demo_seeders["export"](db, context)
    db.commit()
    return context


def test_demo_month_is_written_as_finished_runs_with_one_real_export_queued(
    empty_records: Path, db: Session
) -> None:
    seed(db)
    seed(db)  # a second demo start adds nothing
    runs = list(db.scalars(select(ExportRun).order_by(ExportRun.id)))
    assert len(runs) == DEMO_DAYS
    assert [run.state for run in runs] == ["succeeded"] * (DEMO_DAYS - 1) + ["queued"]
    export_jobs = db.scalar(select(func.count()).where(Job.kind == "export.run"))
    assert export_jobs == 1
    # One past run per night, each the next morning, oldest first, each with its final line.
    days = [dt.date.fromisoformat(run.export_date) for run in runs]
    assert days == [
        utcnow().date() - dt.timedelta(days=back) for back in range(DEMO_DAYS - 1, -1, -1)
    ]
    for run in runs[:-1]:
        assert run.final_line and run.final_line.startswith("Finished processing request in")
        assert run.metrics["counters"]["numTotal"] > 0
    # The past nights' status rows are in the warehouse, one per study and night.
    status = empty_records / "warehouse" / "study-a" / "study-a-status"
    rows = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{status}/**/*.parquet', hive_partitioning=true)"
    ).fetchone()
    assert rows == (DEMO_DAYS - 1,)


def test_demo_month_shows_a_sixty_percent_drop_in_unique_health_codes(
    empty_records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    seed(db)
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


@pytest.mark.parametrize("days_ago", [LOSS_DAYS_AGO, LOSS_DAYS_AGO + 1])
def test_a_past_nights_counts_are_what_a_real_export_of_that_night_counts(
    empty_records: Path, db: Session, factory: sessionmaker[Session], days_ago: int
) -> None:
    seed(db)
    day = utcnow().date() - dt.timedelta(days=days_ago)
    past = db.scalars(
        select(ExportRun).where(ExportRun.export_date == str(day + dt.timedelta(days=1)))
    ).one()
    real = service.start_run(db, past.request, created_by="test")
    db.commit()
    drain(db, factory)  # the run, as workers would run it
    db.refresh(real)
    watched = {
        name: value for name, value in real.metrics["counters"].items() if name != "numAttachments"
    }
    assert past.metrics["counters"] == watched
    assert past.metrics["set_counters"] == real.metrics["set_counters"]
    assert past.studies == real.studies


def test_the_demo_months_export_series_are_there_before_any_roll_up(
    empty_records: Path, db: Session
) -> None:
    # The charts and the review read the `export.*` series; a past night has them as a real
    # run's end writes them, so a desk just started shows the month and its loss at once.
    seed(db)
    unique = f"export.uniqueHealthCodes[{LOSS_STUDY}]"
    assert len(series(db, unique)) == DEMO_DAYS - 1
    assert len(series(db, "export.numTotal[study-b]")) == DEMO_DAYS - 1
    now = utcnow()
    moved = trends(db, now - dt.timedelta(days=7), now)
    assert moved and moved[0].series == unique, moved


def test_demo_has_the_nightly_schedule(empty_records: Path, db: Session) -> None:
    seed(db)
    schedule = db.scalars(select(ExportSchedule)).one()
    assert (schedule.name, schedule.schedule_type, schedule.enabled) == (
        DEMO_SCHEDULE,
        "DAILY",
        True,
    )
