"""A dominant study split into slices by table: the split cannot be seen in the output."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import build_engine, utcnow
from dutydesk.export import _slices, service
from dutydesk.export.models import ExportRun, ExportTime, StudyPart, WarehouseTable
from dutydesk.jobs.models import Job
from dutydesk.metrics._export import run_points
from dutydesk.records.models import Attachment, Record, Schema
from tests.conftest import clear_caches, make_user, sign_in
from tests.export.conftest import generated_store
from tests.export.test_runs import END, START, drain

BIG = "study-big"
# The last export time a shape A run sets, and its start when a study has none (the day before).
LAST_EXPORT_REQUEST = {"useLastExportTime": True, "endDateTime": END}


@pytest.fixture
def dominant_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A record store where one study holds most records, in five schemas with attachments,
    plus legacy survey records (converted into one of its schemas); two small studies."""
    path = tmp_path / "records.sqlite"
    counts: dict[str, Any] = {"seed": 5, "participants": 20, "days": 2, "attachment_share": 0.1}
    generated_store(path, names=[BIG], studies=1, records_per_day=200, **counts)
    url = generated_store(path, studies=2, records_per_day=15, **counts)
    _add_surveys(url)
    monkeypatch.setenv("DUTYDESK_RECORDS_URL", url)
    return url


def _add_surveys(url: str) -> None:
    """Survey records of the big study answering its `background-survey` schema, one that cannot be
    converted, and the `ios-survey` schema they come in."""
    engine = build_engine(url)
    try:
        with Session(engine) as session:
            template = session.scalars(
                select(Record).where(Record.study_id == BIG).order_by(Record.uploaded_on.desc())
            ).first()
            assert template is not None
            survey = session.get(Schema, (BIG, "background-survey", 1))
            assert survey is not None
            field = next(f["name"] for f in survey.fields if f["type"] == "INT")
            session.add(Schema(study_id=BIG, schema_id="ios-survey", revision=1, fields=[]))
            answers = json.dumps(
                [{"item": field, "questionTypeName": "Integer", "numericAnswer": 3}]
            )
            session.add(
                Attachment(
                    id="answers-1",
                    content=answers.encode(),
                    content_type="application/json",
                    size=len(answers),
                    md5="x",
                )
            )
            for number, item in enumerate(
                ["background-survey", "background-survey", "no-such-survey"]
            ):
                session.add(
                    Record(
                        id=f"survey-{number}",
                        study_id=BIG,
                        health_code=template.health_code,
                        schema_id="ios-survey",
                        schema_revision=1,
                        uploaded_on=template.uploaded_on - number,
                        created_on=template.created_on,
                        data={"item": item, "answers": "answers-1"},
                        user_sharing_scope="ALL_QUALIFIED_RESEARCHERS",
                    )
                )
            session.commit()
    finally:
        engine.dispose()


def export_into(
    warehouse: Path,
    slice_records: int,
    db: Session,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    body: dict[str, Any] | None = None,
) -> ExportRun:
    """Run the request (queued, its jobs drained here) into `warehouse` with the setting."""
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("DUTYDESK_EXPORT_SLICE_RECORDS", str(slice_records))
    clear_caches()
    db.execute(delete(ExportTime))
    db.execute(delete(WarehouseTable))
    run = service.start_run(db, body or LAST_EXPORT_REQUEST, created_by="test")
    db.commit()
    drain(db, factory)
    db.refresh(run)
    return run


def files(warehouse: Path) -> dict[str, object]:
    """Every file: a Parquet file's columns and rows in order read, any other file's bytes."""
    found: dict[str, object] = {}
    for path in sorted(p for p in warehouse.rglob("*") if p.is_file()):
        name = str(path.relative_to(warehouse))
        if path.suffix == ".parquet":
            relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning=false)")
            rows = relation.fetchall()
            found[name] = (relation.columns, relation.types, sorted(rows, key=repr))
        else:
            found[name] = path.read_bytes()
    return found


def log_lines(run: ExportRun) -> list[str]:
    """The run's log without its time stamps and the final line's duration."""
    lines = [line[20:] for line in run.log.splitlines()]
    return [line for line in lines if not line.startswith("Finished processing request in")]


def test_a_dominant_study_split_in_slices_exports_exactly_what_it_exports_whole(
    dominant_store: str,
    tmp_path: Path,
    db: Session,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = export_into(tmp_path / "whole", 0, db, factory, monkeypatch)
    whole_times = {t.study_id: t.last_export_ms for t in db.scalars(select(ExportTime))}
    sliced = export_into(tmp_path / "sliced", 1, db, factory, monkeypatch)
    sliced_times = {t.study_id: t.last_export_ms for t in db.scalars(select(ExportTime))}

    assert whole.state == sliced.state == "succeeded"
    parts = db.scalars(select(StudyPart).where(StudyPart.run_id == sliced.id)).all()
    big = sorted(part.slice_no for part in parts if part.study_id == BIG)
    assert big == list(range(len(big))) and len(big) >= 3  # the big study fanned out
    whole_parts = db.scalars(select(StudyPart).where(StudyPart.run_id == whole.id)).all()
    assert {p.slice_no for p in whole_parts} == {0}
    assert all(p.slice_tables is None for p in whole_parts)
    assert sliced.studies == whole.studies

    expected, got = files(tmp_path / "whole"), files(tmp_path / "sliced")
    assert sorted(got) == sorted(expected)
    assert any("/attachments/" in name for name in expected)
    assert any(f"{BIG}-background-survey-v1/" in name for name in expected)
    for name, content in expected.items():
        assert got[name] == content, name
    for name in ("counters", "set_counters", "key_values"):
        assert sliced.metrics[name] == whole.metrics[name], name
    assert whole.metrics["counters"][f"surveyWorker[{BIG}].surveyCount"] == 2
    assert whole.metrics["counters"][f"surveyWorker[{BIG}].errorCount"] == 1
    assert log_lines(sliced) == log_lines(whole)
    assert sliced_times == whole_times and set(whole_times) == set(whole.studies)
    # The metric series are per study, the sum of its slices.
    assert series(db, sliced) == series(db, whole)
    assert ("export.uniqueHealthCodes", (("study", BIG),)) in series(db, whole)


def series(db: Session, run: ExportRun) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The run's metric points by name and labels, durations left out."""
    return {
        (point.name, tuple(sorted(point.labels.items()))): point.value
        for point in run_points(db, run)
        if not point.name.endswith(("Seconds", "duration"))
    }


def test_slices_share_the_tables_largest_first_and_slice_zero_keeps_the_record_level_work(
    dominant_store: str,
) -> None:
    counts = _slices.table_counts(dominant_store, BIG, 0, 2**62, at_least=100)
    assert sum(counts.values()) == 403 and None in counts  # records without a schema
    slices = _slices.split_tables(BIG, counts, 100)
    assert len(slices) == 5  # ceil(403 / 100), and five tables to share
    tables = [table for tables in slices for table in tables]
    assert sorted(tables) == sorted(k for k in counts if k is not None and k[0] != "ios-survey")
    assert _slices.split_tables(BIG, counts, 0) == []  # 0: never split
    assert _slices.split_tables(BIG, counts, 403) == []  # not more than the setting
    assert _slices.table_counts(dominant_store, BIG, 0, 2**62, at_least=403) == {}


def test_failed_tables_in_two_slices_leave_the_run_partial_and_are_redriven_together(
    dominant_store: str,
    tmp_path: Path,
    db: Session,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    client: TestClient,
) -> None:
    body = {"useLastExportTime": False, "startDateTime": START, "endDateTime": END, "tag": "t"}
    whole = export_into(tmp_path / "whole", 0, db, factory, monkeypatch, body)
    assert whole.state == "succeeded"
    complete = files(tmp_path / "whole")
    # In a fresh warehouse a plain file stands where two tables of two later slices go.
    start_ms = int(dt.datetime.fromisoformat(START).timestamp() * 1000)
    end_ms = int(dt.datetime.fromisoformat(END).timestamp() * 1000)
    counts = _slices.table_counts(dominant_store, BIG, start_ms, end_ms, at_least=1)
    slices = _slices.split_tables(BIG, counts, 1)
    blocked = [f"{BIG}-{slices[n][0][0]}-v{slices[n][0][1]}" for n in (1, 2)]
    sliced_home = tmp_path / "sliced"
    (sliced_home / BIG).mkdir(parents=True)
    for key in blocked:
        (sliced_home / BIG / key).write_text("in the way")
    run = export_into(sliced_home, 1, db, factory, monkeypatch, body)

    assert run.state == "partial"
    parts = db.scalars(select(StudyPart).where(StudyPart.run_id == run.id)).all()
    failed = {part.slice_no: part.failed_tables for part in parts if part.failed_tables}
    assert failed == {1: [blocked[0]], 2: [blocked[1]]}
    assert f"Redriving tables: {', '.join(sorted(blocked))}" in run.log
    # The run's page lists each slice as a part of its study, with its failed table.
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/exports/{run.id}").text
    assert f">slice 1/{len(slices)}</small>" in page
    assert f">slice {len(slices)}/{len(slices)}</small>" in page
    assert f"failed: {blocked[0]}" in page
    # One redrive for the study, with the failed tables of both slices, waiting its delay.
    [redrive] = db.scalars(select(ExportRun).where(ExportRun.parent_run_id == run.id)).all()
    assert sorted(
        f"{BIG}-{t['schemaId']}-v{t['revision']}" for t in redrive.request["tableWhitelist"]
    ) == sorted(blocked)
    assert redrive.request["studyWhitelist"] == [BIG]
    # The obstacles go; the redrive comes due and writes both tables, as the whole study did.
    for key in blocked:
        (sliced_home / BIG / key).unlink()
    for job in db.scalars(select(Job).where(Job.state == "queued")):
        job.run_after = utcnow()
    db.commit()
    drain(db, factory)
    db.refresh(redrive)
    assert redrive.state == "succeeded"
    assert by_table(files(sliced_home)) == by_table(complete)


def by_table(found: dict[str, object]) -> dict[str, object]:
    """The files but the status tables', a run's file named the same whatever its run key."""
    return {
        re.sub(r"/part-[0-9a-f]+\.parquet$", "/part.parquet", name): content
        for name, content in found.items()
        if "-status/" not in name
    }
