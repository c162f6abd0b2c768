"""A run may hold several parts (slices) of one study, each slice once."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.export.models import ExportRun, StudyPart


def a_run(db: Session) -> int:
    run = ExportRun(
        request={}, request_text="{}", run_key="k", export_date="2026-12-07", created_by="test"
    )
    db.add(run)
    db.flush()
    return run.id


def test_a_run_holds_two_slices_of_one_study(db: Session) -> None:
    run_id = a_run(db)
    db.add_all(
        [
            StudyPart(run_id=run_id, study_id="big", start_ms=0, end_ms=10),
            StudyPart(run_id=run_id, study_id="big", slice_no=1, start_ms=10, end_ms=20),
        ]
    )
    db.commit()
    parts = db.scalars(select(StudyPart).order_by(StudyPart.slice_no)).all()
    assert [(p.study_id, p.slice_no, p.start_ms) for p in parts] == [("big", 0, 0), ("big", 1, 10)]


def test_the_same_slice_of_a_study_twice_in_a_run_is_refused(db: Session) -> None:
    run_id = a_run(db)
    db.add(StudyPart(run_id=run_id, study_id="big"))
    db.commit()
    db.add(StudyPart(run_id=run_id, study_id="big", slice_no=0))
    with pytest.raises(IntegrityError):
        db.commit()
