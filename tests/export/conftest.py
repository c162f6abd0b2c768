"""Fixtures of the export tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dutydesk.db import build_engine
from dutydesk.export import _engine
from dutydesk.export.request import SharingMode
from dutydesk.records.generate import generate
from dutydesk.records.store import records_session_factory, upgrade_records
from tests.conftest import clear_caches
from tests.test_worker import make_desk  # noqa: F401 (a fixture of the kill test)


def filled_store(url: str, **counts: Any) -> str:
    """The record store at `url` (SQLite or PostgreSQL) migrated and filled by the generator;
    returns `url`."""
    upgrade_records(url)
    engine = build_engine(url)
    try:
        generate(records_session_factory(engine), end_date=dt.date(2026, 11, 20), **counts)
    finally:
        engine.dispose()
    return url


EXPORT_DATE = "2026-11-21"


def whole_window_job(study: str, mode: SharingMode, **job: Any) -> _engine.StudyJob:
    """An engine job exporting every record of `study`, dated EXPORT_DATE, run key `test`."""
    return _engine.StudyJob(
        study_id=study,
        export_date=EXPORT_DATE,
        run_key="test",
        sharing_mode=mode,
        start_ms=0,
        end_ms=2**62,
        **job,
    )


def generated_store(path: Path, **counts: Any) -> str:
    """A migrated SQLite record store at `path` filled by the generator; returns its URL."""
    return filled_store(f"sqlite:///{path}", **counts)


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A small generated record store and an empty warehouse, named in the settings."""
    url = generated_store(
        tmp_path / "records.sqlite",
        seed=3,
        studies=3,
        participants=20,
        days=2,
        records_per_day=60,
        attachment_share=0.05,
    )
    monkeypatch.setenv("DUTYDESK_RECORDS_URL", url)
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", str(tmp_path / "warehouse"))
    clear_caches()
    yield tmp_path / "warehouse"
