"""Export runs end to end: queued jobs fan out per study, the last one ends the run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from dutydesk.db import utcnow
from dutydesk.export import service
from dutydesk.export.models import ExportRun, ExportTime, StudyPart, WarehouseTable
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.metrics.models import MetricPoint

END = "2026-11-21T00:00:00.000-08:00"
START = "2026-11-10T00:00:00.000-08:00"


def drain(db: Session, factory: sessionmaker[Session]) -> int:
    """Run due queued jobs here, as workers would, until none is left; returns how many ran."""
    ran = 0
    while True:
        queued = db.scalars(
            select(Job.id).where(Job.state == "queued", Job.run_after <= utcnow()).order_by(Job.id)
        ).all()
        db.commit()
        if not queued:
            return ran
        for job_id in queued:
            assert jobs.execute(job_id, "test-worker", factory) == "succeeded"
            ran += 1


def table_rows(warehouse: Path) -> dict[str, int]:
    """Rows per table folder, read the way researchers read them."""
    counts = {}
    for folder in sorted(p for p in warehouse.glob("*/*") if p.is_dir()):
        if not list(folder.rglob("*.parquet")):
            continue
        row = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet', "
            "hive_partitioning=true, union_by_name=true)"
        ).fetchone()
        counts[folder.name] = int(row[0]) if row else 0
    return counts


def test_queued_run_fans_out_per_study_and_ends_with_the_final_line(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    run = service.start_run(
        db,
        {"useLastExportTime": False, "startDateTime": START, "endDateTime": END},
        created_by="test",
    )
    db.commit()
    drain(db, factory)
    db.refresh(run)
    assert run.state == "succeeded"
    parts = db.scalars(select(StudyPart).where(StudyPart.run_id == run.id)).all()
    assert sorted(p.study_id for p in parts) == sorted(run.studies)
    assert "study-c" not in run.studies or len(run.studies) == 3
    assert run.final_line is not None
    assert run.final_line.startswith("Finished processing request in ")
    assert run.final_line.endswith(run.request_text)
    assert "Exporting the following studies: " in run.log
    counters = run.metrics["counters"]
    assert counters["numTotal"] > 0
    assert any(k.endswith(".lineCount") for k in counters)
    assert db.scalar(select(MetricPoint).where(MetricPoint.series.like("uniqueHealthCodes[%")))
    keys = {t.key for t in db.scalars(select(WarehouseTable))}
    assert {f"{s}-status" for s in run.studies} <= keys
    assert table_rows(records)


def test_rerunning_a_request_leaves_no_duplicate_rows(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    body = {"useLastExportTime": False, "startDateTime": START, "endDateTime": END}
    service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    first = table_rows(records)
    service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    assert table_rows(records) == first


def test_a_study_part_killed_mid_run_is_redone_without_duplicates(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    body = {"useLastExportTime": False, "startDateTime": START, "endDateTime": END}
    run = service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    complete = table_rows(records)
    # A worker died after writing its files but before recording the part: the sweep re-runs it.
    part = db.scalars(select(StudyPart).where(StudyPart.run_id == run.id)).first()
    assert part is not None
    part.state = "queued"
    run.state = "running"
    db.commit()
    jobs.enqueue(db, "export.study", {"part_id": part.id})
    db.commit()
    drain(db, factory)
    db.refresh(run)
    assert run.state == "succeeded"
    assert table_rows(records) == complete


def test_last_export_time_request_starts_each_study_where_it_stopped(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    body = {"useLastExportTime": True, "endDateTime": END}
    run = service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    db.refresh(run)
    times = {t.study_id: t.last_export_ms for t in db.scalars(select(ExportTime))}
    assert set(times) == set(run.studies)
    assert set(times.values()) == {int(dt.datetime.fromisoformat(END).timestamp() * 1000)}
    again = service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    db.refresh(again)
    assert again.studies == []  # every study is exported up to the end already


def test_cli_runs_an_export_in_the_foreground_and_prints_the_final_line(
    records: Path, home: Path
) -> None:
    from dutydesk.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(
        app, ["export", "run", "--start", START, "--end", END, "--study", "study-a"]
    )
    assert result.exit_code == 0, result.output
    assert "Finished processing request in " in result.output
    assert "studyWhitelist" not in result.output
    status = runner.invoke(app, ["export", "status"])
    assert "succeeded" in status.output
    tables = runner.invoke(app, ["export", "tables"])
    assert "study-a-appVersion" in tables.output


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--start", END, "--end", START], "startDateTime"),
        (["--start", "yesterday", "--end", END], "startDateTime"),
        (["--start", START, "--end", END, "--table", "nonsense"], "STUDY/SCHEMA/REVISION"),
    ],
)
def test_cli_refuses_a_bad_export_request_naming_the_problem(
    records: Path, arguments: list[str], says: str
) -> None:
    from dutydesk.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["export", "run", *arguments])
    assert result.exit_code == 2
    assert says in result.output


def test_a_table_whose_columns_cannot_evolve_fails_alone(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    import json
    import sqlite3

    body = {"useLastExportTime": False, "startDateTime": START, "endDateTime": END}
    service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    store = records.parent / "records.sqlite"
    with sqlite3.connect(store) as connection:
        study, schema, revision, fields = connection.execute(
            "SELECT study_id, schema_id, revision, fields FROM schemas "
            "WHERE study_id = 'study-a' ORDER BY schema_id LIMIT 1"
        ).fetchone()
        kept = json.loads(fields)[:-1]  # a column disappears: Bridge refuses that change
        connection.execute(
            "UPDATE schemas SET fields = ? WHERE study_id = ? AND schema_id = ? AND revision = ?",
            [json.dumps(kept), study, schema, revision],
        )
    second = service.start_run(
        db,
        {**body, "tag": "after a schema change"},
        created_by="test",
    )
    db.commit()
    drain(db, factory)
    db.refresh(second)
    key = f"{study}-{schema}-v{revision}"
    assert second.state == "partial"
    parts = db.scalars(select(StudyPart).where(StudyPart.run_id == second.id)).all()
    failed = {k for p in parts for k in p.failed_tables}
    assert failed == {key}
    assert any(f"Table {key} has deleted columns" in (p.error or "") for p in parts)
    assert second.metrics["counters"][f"{key}.errorCount"] == 1
    others = [k for k in second.metrics["counters"] if k.endswith(".lineCount") and key not in k]
    assert others
    assert not db.scalars(select(ExportRun).where(ExportRun.parent_run_id == second.id)).all()


def test_record_id_list_request_exports_exactly_those_records(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    import sqlite3

    with sqlite3.connect(records.parent / "records.sqlite") as connection:
        ids = [
            row[0]
            for row in connection.execute(
                "SELECT r.id FROM records r JOIN participants p ON p.study_id = r.study_id "
                "AND p.health_code = r.health_code WHERE r.user_sharing_scope = "
                "'ALL_QUALIFIED_RESEARCHERS' AND p.sharing_scope = 'ALL_QUALIFIED_RESEARCHERS' "
                "AND r.schema_id IS NOT NULL ORDER BY r.id LIMIT 5"
            )
        ]
    listing = records.parent / "ids.txt"
    listing.write_text("\n".join([*ids, "no-such-record"]) + "\n")
    run = service.start_run(
        db, {"useLastExportTime": False, "recordIdOverride": str(listing)}, created_by="test"
    )
    db.commit()
    drain(db, factory)
    db.refresh(run)
    assert run.state == "succeeded"
    assert run.metrics["counters"]["numTotal"] == 6
    assert "Missing health data record for ID no-such-record" in run.log
    exported = {
        row[0]
        for folder in records.glob("*/*-appVersion")
        for row in duckdb.sql(
            f"SELECT recordId FROM read_parquet('{folder}/**/*.parquet')"
        ).fetchall()
    }
    assert exported == set(ids)


def test_a_table_that_failed_to_write_is_redriven_once_and_lands_without_duplicates(
    records: Path, db: Session, factory: sessionmaker[Session]
) -> None:
    body = {"useLastExportTime": False, "startDateTime": START, "endDateTime": END, "tag": "t"}
    first = service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    db.refresh(first)
    complete = table_rows(records)
    # Start again in an empty warehouse where one table's folder cannot be made (a plain file
    # stands in its way): that table fails, the others are written.
    for path in sorted(records.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    blocked = next(key for key in complete if "-tapping-" in key)
    study = blocked.split("-tapping-")[0]
    (records / study).mkdir(parents=True)
    (records / study / blocked).write_text("in the way")
    run = service.start_run(db, body, created_by="test")
    db.commit()
    drain(db, factory)
    db.refresh(run)
    assert run.state == "partial"
    assert f"Redriving tables: {blocked}" in run.log
    [redrive] = db.scalars(select(ExportRun).where(ExportRun.parent_run_id == run.id)).all()
    assert redrive.request["redriveCount"] == 1
    assert redrive.request["tag"] == "redrive export; original: t"
    schema_id, _, revision = blocked.removeprefix(f"{study}-").rpartition("-v")
    assert redrive.request["tableWhitelist"] == [
        {"appId": study, "schemaId": schema_id, "revision": int(revision)}
    ]
    assert redrive.request["studyWhitelist"] == [study]
    waiting = db.scalars(select(Job).where(Job.state == "queued")).all()
    assert [job.kind for job in waiting] == ["export.run"]
    assert waiting[0].run_after > utcnow() + dt.timedelta(minutes=10)  # the redrive delay
    # The obstacle goes; the redrive comes due and writes the table, and only that table.
    (records / study / blocked).unlink()
    waiting[0].run_after = utcnow()
    db.commit()
    drain(db, factory)
    db.refresh(redrive)
    assert redrive.state == "succeeded"
    assert table_rows(records)[blocked] == complete[blocked]
    assert {k: v for k, v in table_rows(records).items() if not k.endswith("-status")} == {
        k: v for k, v in complete.items() if not k.endswith("-status")
    }
