"""The run page's chart data and chart: records and unique participants per study for the run
and the succeeded runs before it (slices of one study summed, later and failed runs left out)."""

from __future__ import annotations

import datetime as dt
import json
import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.export._run_chart import run_history
from dutydesk.export.models import ExportRun, StudyPart
from tests.conftest import make_user, sign_in

NIGHT = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)


def add_run(db: Session, day: int, state: str, parts: dict[str, list[int]]) -> ExportRun:
    """A run `day` nights after NIGHT with, per study, one slice per record count."""
    run = ExportRun(
        request={},
        request_text="nightly",
        run_key=f"k{day}",
        state=state,
        export_date=str((NIGHT + dt.timedelta(days=day)).date()),
        created_by="test",
        created_at=NIGHT + dt.timedelta(days=day),
        metrics={
            "set_counters": {
                f"uniqueHealthCodes[{study}]": sum(counts) // 3 for study, counts in parts.items()
            }
        },
    )
    db.add(run)
    db.flush()
    for study, counts in parts.items():
        for slice_no, count in enumerate(counts):
            db.add(
                StudyPart(
                    run_id=run.id,
                    study_id=study,
                    slice_no=slice_no,
                    state=state,
                    metrics={"counters": {"numTotal": count}},
                )
            )
    db.flush()
    return run


def test_run_history_puts_the_run_after_the_succeeded_runs_before_it(db: Session) -> None:
    add_run(db, 0, "succeeded", {"s1": [90], "s2": [30]})
    add_run(db, 1, "failed", {"s1": [1]})
    add_run(db, 2, "succeeded", {"s1": [60, 60]})
    run = add_run(db, 3, "succeeded", {"s1": [45], "s2": [30]})
    add_run(db, 4, "succeeded", {"s1": [120]})
    history = run_history(db, run)
    assert history["studies"] == ["s1", "s2"]
    assert history["current"] == 2 and history["runs"][-1] == run.id
    assert history["records"] == {"s1": [90.0, 120.0, 45.0], "s2": [30.0, None, 30.0]}
    assert history["unique"] == {"s1": [30.0, 40.0, 15.0], "s2": [10.0, None, 10.0]}
    assert history["times"][-1] == int(run.created_at.timestamp())


def test_the_run_page_carries_its_chart_data(client: TestClient, db: Session) -> None:
    add_run(db, 0, "succeeded", {"s1": [90]})
    run = add_run(db, 1, "succeeded", {"s1": [45]})
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/exports/{run.id}")
    assert page.status_code == 200
    assert "uPlot-1.6.32.iife.min.js" in page.text
    found = re.search(r"data-history='([^']+)'", page.text)
    assert found, "the run page should carry its chart data"
    data = json.loads(found.group(1).replace("&#34;", '"'))
    assert data["records"] == {"s1": [90.0, 45.0]}
    assert 'id="run-history-records"' in page.text and 'id="run-history-unique"' in page.text
