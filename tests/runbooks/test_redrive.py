"""Re-drive batches through their service: adding IDs (bad lines named, duplicates merged),
submitting as a change request, signoffs dropped by an edit, the export over exactly the IDs,
verification with its reasons, the export's own failures collected, and the monthly batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import build_engine, utcnow
from dutydesk.export.models import ExportRun
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.people.models import User
from dutydesk.records import service as records_service
from dutydesk.records.models import Record
from dutydesk.records.store import records_session_factory, upgrade_records
from dutydesk.runbooks import ChangeState, get_change, rules_met, run_change, sign_off
from dutydesk.runbooks.redrive import _run, service
from dutydesk.runbooks.redrive.jobs import open_month_batch
from dutydesk.runbooks.redrive.models import BatchState, RedriveBatch, RedriveItem
from dutydesk.tickets.models import Ticket
from tests.conftest import clear_caches
from tests.tickets.conftest import add_person

UPLOADED = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp() * 1000)
WALK = [{"name": "steps", "type": "INT"}]


def fill_store(url: str) -> None:
    """A small record store: study-a (exported) with a walk schema, study-off (not exported),
    participants who share, one who will withdraw, and records of each kind."""
    upgrade_records(url)
    engine = build_engine(url)
    factory = records_session_factory(engine)
    with factory() as records:
        for study, project in (("study-a", "proj-a"), ("study-off", None)):
            records_service.upsert_study(
                records, study, study, project=project, data_access_team="team"
            )
            records_service.upsert_schema(records, study, "walk", 1, WALK)
        for code in ("hc-1", "hc-2", "hc-w"):
            records_service.set_participant_scope(records, "study-a", code, "SPONSORS_AND_PARTNERS")
        records_service.set_participant_scope(
            records, "study-off", "hc-9", "ALL_QUALIFIED_RESEARCHERS"
        )

        def record(record_id: str, study: str, code: str, **extra: object) -> None:
            body = {
                "id": record_id,
                "study_id": study,
                "health_code": code,
                "schema_id": "walk",
                "schema_revision": 1,
                "uploaded_on": UPLOADED,
                "data": {"steps": 100},
                "user_sharing_scope": "SPONSORS_AND_PARTNERS",
                **extra,
            }
            records_service.add_record(records, body)

        for number in range(1, 6):
            record(f"r-a{number}", "study-a", "hc-1" if number % 2 else "hc-2")
        record("r-w1", "study-a", "hc-w")
        record("r-off1", "study-off", "hc-9")
        # A record whose schema the store no longer has (written straight into the table).
        records.add(
            Record(
                id="r-gone1",
                study_id="study-a",
                health_code="hc-1",
                schema_id="gone",
                schema_revision=1,
                uploaded_on=UPLOADED,
                data={"x": 1},
                user_sharing_scope="SPONSORS_AND_PARTNERS",
            )
        )
        records.commit()
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    """The small record store and an empty warehouse, named in the settings."""
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    fill_store(url)
    monkeypatch.setenv("DUTYDESK_RECORDS_URL", url)
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", str(tmp_path / "warehouse"))
    clear_caches()
    engine = build_engine(url)
    yield records_session_factory(engine)
    engine.dispose()


@pytest.fixture
def records(store: sessionmaker[Session]) -> Iterator[Session]:
    with store() as session:
        yield session


def drain(db: Session, factory: sessionmaker[Session]) -> int:
    """Run due queued jobs here, as workers would, until none is left."""
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


def warehouse_rows(warehouse: Path, record_id: str | None = None) -> dict[str, int]:
    """Rows per data table in the warehouse (of one record, when given)."""
    counts = {}
    for folder in sorted(p for p in warehouse.glob("*/*") if p.is_dir()):
        if folder.name.endswith("-status") or not list(folder.rglob("*.parquet")):
            continue
        where = f"WHERE recordId = '{record_id}'" if record_id else ""
        row = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet', union_by_name=true) "
            + where
        ).fetchone()
        counts[folder.name] = int(row[0]) if row else 0
    return counts


def report_of(batch: RedriveBatch) -> dict[str, Any]:
    """The batch's verification report (it must have one)."""
    assert batch.verification is not None, f"batch {batch.id} was not verified"
    return batch.verification


def approve(db: Session, batch: RedriveBatch, approver: User) -> None:
    assert batch.change_id is not None
    change = get_change(db, batch.change_id)
    sign_off(
        db, change, approver, data_version=change.data_version, evidence_hash=change.evidence_hash
    )


def test_adding_names_bad_lines_keeps_the_rest_and_merges_duplicates(
    db: Session, records: Session
) -> None:
    batch = service.open_batch(db, actor="olga")
    lines = [
        "r-a1",
        "r-a2",
        "no-such-record",
        "r-a1",
        "",
        "# a comment",
        "r-off1",
        "two ids",
        "r-w1",
    ]
    report = service.add_ids(
        db,
        records,
        batch,
        lines,
        study="study-a",
        reason="ticket DD-4",
        source="form",
        actor="olga",
    )
    assert report.added == ["r-a1", "r-a2", "r-w1"]
    assert report.duplicates == ["r-a1"]
    assert [str(problem) for problem in report.refused] == [
        "line 3: unknown record ID 'no-such-record'",
        "line 7: record 'r-off1' belongs to study 'study-off', not 'study-a'",
        "line 8: 'two ids' is not a record ID (one per line)",
    ]
    again = service.add_ids(
        db, records, batch, ["r-a2"], study=None, reason="again", source="api", actor="ana"
    )
    assert again.added == [] and again.duplicates == ["r-a2"]
    merged = db.scalar(select(RedriveItem).where(RedriveItem.record_id == "r-a2"))
    assert merged is not None and merged.times_added == 2 and merged.reason == "ticket DD-4"
    assert "1 duplicate merged (r-a2)" in again.summary()


def test_one_open_batch_a_month_opened_by_the_tick_and_again_after_submission(
    db: Session, records: Session
) -> None:
    olga = add_person(db, "olga", "operator", "olga@desk.example")
    open_month_batch(db)
    first = db.scalars(select(RedriveBatch)).one()
    assert first.month == service.month_of() and first.state == BatchState.open
    assert service.open_batch(db, actor="ana").id == first.id
    service.add_ids(
        db, records, first, ["r-a1"], study="study-a", reason="x", source="cli", actor="olga"
    )
    service.submit(db, first, olga)
    assert first.state == BatchState.pending and first.open_month is None
    second = service.open_batch(db, actor="ana")
    assert second.id != first.id and second.month == first.month


def test_submit_edit_after_approval_run_and_verify(
    db: Session,
    factory: sessionmaker[Session],
    records: Session,
    store: sessionmaker[Session],
    home: Path,
    tmp_path: Path,
) -> None:
    olga = add_person(db, "olga", "operator", "olga@desk.example")
    abe = add_person(db, "abe", "approver", "abe@desk.example")
    batch = service.open_batch(db, actor="olga")
    ids = ["r-a1", "r-a2", "r-w1", "r-gone1"]
    service.add_ids(
        db, records, batch, ids, study="study-a", reason="DD-7", source="form", actor="olga"
    )
    service.add_ids(
        db, records, batch, ["r-off1"], study="study-off", reason="DD-7", source="cli", actor="olga"
    )
    change = service.submit(db, batch, olga)
    assert change.kind == "redrive" and change.state == ChangeState.pending
    assert change.evidence["count"] == 5
    assert change.evidence["per_study"] == {"study-a": 4, "study-off": 1}
    import hashlib

    listed = "".join(f"{i}\n" for i in sorted([*ids, "r-off1"]))
    assert change.evidence["sha256"] == hashlib.sha256(listed.encode()).hexdigest()
    approve(db, batch, abe)
    assert change.state == ChangeState.approved and batch.state == BatchState.approved

    # An edit after approval revises the request: the signoff is dropped.
    report = service.add_ids(
        db,
        records,
        batch,
        ["r-a3"],
        study="study-a",
        reason="DD-8",
        source="api",
        actor="olga",
        user=olga,
    )
    assert report.revised
    assert change.state == ChangeState.pending and change.data_version == 2
    assert rules_met(db, change)[0] is False
    assert batch.state == BatchState.pending
    approve(db, batch, abe)
    assert change.state == ChangeState.approved

    # The participant of r-w1 withdraws after the upload and before the run.
    with store() as fresh:
        records_service.set_participant_scope(fresh, "study-a", "hc-w", "NO_SHARING")
        fresh.commit()
    run_change(db, change, olga)
    db.commit()
    drain(db, factory)
    db.refresh(batch)
    db.refresh(change)
    assert change.state == ChangeState.done
    assert batch.state == BatchState.done, batch.verification
    run = db.get(ExportRun, batch.export_run_id)
    assert run is not None and run.state == "succeeded"
    assert run.request["recordIdOverride"].endswith(".txt")
    assert run.request["tag"] == f"[redrive-batch={batch.id};month={batch.month}]"
    assert run.request["studyWhitelist"] == ["study-a"]
    report_rows = {row[0]: row[2:] for row in report_of(batch)["not_present"]}
    assert report_rows == {
        "r-w1": ["excluded: sharing scope", report_rows["r-w1"][1]],
        "r-gone1": ["excluded: no schema", "schema study-a-gone-v1 is not in the record store"],
        "r-off1": ["excluded: study not exported", "study study-off is not exported"],
    }
    assert "NO_SHARING" in report_rows["r-w1"][1]
    assert report_of(batch)["counts"]["present"] == 3
    assert report_of(batch)["missing"] == 0
    warehouse = tmp_path / "warehouse"
    assert warehouse_rows(warehouse, "r-w1") == dict.fromkeys(warehouse_rows(warehouse), 0)
    before = warehouse_rows(warehouse)
    assert before["study-a-walk-v1"] == 3

    # Running the batch's export again replaces the first run's rows: no duplicates.
    _run.export_again(db, batch, olga)
    assert batch.state == BatchState.running
    db.commit()
    drain(db, factory)
    db.refresh(batch)
    assert batch.state == BatchState.done
    assert warehouse_rows(warehouse) == before
    assert len(set(db.scalars(select(ExportRun.run_key)))) == 1
    assert len(db.scalars(select(ExportRun)).all()) == 2
    from dutydesk.runbooks import timeline

    assert any(
        "exported again" in str(event.detail.get("text", "")) for event in timeline(db, change)
    )


def test_a_record_missing_without_a_reason_fails_the_batch_and_opens_a_ticket(
    db: Session, factory: sessionmaker[Session], records: Session, store: sessionmaker[Session]
) -> None:
    olga = add_person(db, "olga", "operator", "olga@desk.example")
    abe = add_person(db, "abe", "approver", "abe@desk.example")
    batch = service.open_batch(db, actor="olga")
    service.add_ids(
        db,
        records,
        batch,
        ["r-a1", "r-a4"],
        study="study-a",
        reason="x",
        source="cli",
        actor="olga",
    )
    change = service.submit(db, batch, olga)
    approve(db, batch, abe)
    # r-a4 disappears from the record store before the run.
    with store() as fresh:
        gone = fresh.get(Record, "r-a4")
        fresh.delete(gone)
        fresh.commit()
    run_change(db, change, olga)
    db.commit()
    drain(db, factory)
    db.refresh(batch)
    assert batch.state == BatchState.failed
    assert report_of(batch)["missing"] == 1
    assert report_of(batch)["not_present"] == [
        ["r-a4", "study-a", "missing", "no longer in the record store"]
    ]
    ticket = db.get(Ticket, batch.ticket_id)
    assert ticket is not None and "1 records missing" in ticket.title
    assert "r-a4" in ticket.description


def test_an_export_run_adds_its_failed_records_to_the_open_batch(
    db: Session, factory: sessionmaker[Session], store: sessionmaker[Session]
) -> None:
    from dutydesk.export import service as export_service

    with store() as fresh:
        fresh.execute(text("UPDATE records SET data = '{oops' WHERE id = 'r-a5'"))
        fresh.commit()
    export_service.start_run(
        db,
        {
            "useLastExportTime": False,
            "startDateTime": "2026-11-19T00:00:00.000Z",
            "endDateTime": "2026-11-21T00:00:00.000Z",
        },
        created_by="test",
    )
    db.commit()
    drain(db, factory)
    batch = db.scalars(select(RedriveBatch)).one()
    assert batch.state == BatchState.open
    items = {item.record_id: item for item in service.items(db, batch)}
    assert set(items) == {"r-a5"}
    run_id = db.scalars(select(ExportRun.id)).one()
    assert items["r-a5"].reason.startswith(f"failed in export run {run_id}: ")
    assert items["r-a5"].source == "export"


def test_a_table_that_cannot_be_redriven_adds_its_records_to_the_open_batch(
    db: Session, factory: sessionmaker[Session], store: sessionmaker[Session]
) -> None:
    from dutydesk.export import service as export_service
    from dutydesk.export.models import WarehouseTable

    # The registered walk table has a column the schema no longer has: a column conflict,
    # which the export's own re-drives cannot fix.
    db.add(
        WarehouseTable(
            key="study-a-walk-v1",
            study_id="study-a",
            kind="schema",
            columns=[{"name": "dropped_field", "type": "STRING", "max_length": 100}],
        )
    )
    export_service.start_run(
        db,
        {
            "useLastExportTime": False,
            "startDateTime": "2026-11-19T00:00:00.000Z",
            "endDateTime": "2026-11-21T00:00:00.000Z",
            "studyWhitelist": ["study-a"],
        },
        created_by="test",
    )
    db.commit()
    drain(db, factory)
    run = db.scalars(select(ExportRun)).one()
    assert run.state == "partial"
    batch = db.scalars(select(RedriveBatch)).one()
    items = service.items(db, batch)
    assert [item.record_id for item in items] == ["r-a1", "r-a2", "r-a3", "r-a4", "r-a5", "r-w1"]
    assert {item.reason for item in items} == {
        f"table study-a-walk-v1 failed in export run {run.id} (not retryable): "
        "Table study-a-walk-v1 has deleted columns: dropped_field"
    }
    # Told of the same run again, nothing is added twice.
    with store() as records:
        assert _run.collect_failures(db, records, run) == 0
    assert len(service.items(db, batch)) == 6


def test_the_demo_opens_this_months_batch_once(
    db: Session, store: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk import registry
    from dutydesk.runbooks.redrive import demo

    monkeypatch.setattr(demo, "DEMO_STUDY", "study-a")
    context = registry.DemoContext(password="x", made=[])
    demo.seed_redrive(db, context)
    demo.seed_redrive(db, context)
    batch = db.scalars(select(RedriveBatch)).one()
    assert batch.state == BatchState.open and batch.month == service.month_of()
    assert len(service.record_ids(db, batch)) == 7
    assert context.made == [f"re-drive batch {batch.id} ({batch.month}) with 7 IDs"]


def test_a_long_list_is_checked_in_chunks_and_each_bad_line_named(
    db: Session, records: Session
) -> None:
    batch = service.open_batch(db, actor="olga")
    lines = ["r-a1", *(f"unknown-{number}" for number in range(1, 1201)), "r-a2"]
    report = service.add_ids(
        db, records, batch, lines, study=None, reason="bulk", source="file", actor="olga"
    )
    assert report.added == ["r-a1", "r-a2"]
    assert len(report.refused) == 1200
    assert str(report.refused[-1]) == "line 1201: unknown record ID 'unknown-1200'"
    again = service.add_ids(
        db, records, batch, lines, study=None, reason="bulk", source="file", actor="olga"
    )
    assert again.added == [] and again.duplicates == ["r-a1", "r-a2"]
    assert service.remove_ids(db, batch, lines, user=None) == 2


def test_the_tick_verifies_a_batch_whose_export_run_failed_outright(
    db: Session, factory: sessionmaker[Session], records: Session
) -> None:
    from dutydesk.export import service as export_service

    olga = add_person(db, "olga", "operator", "olga@desk.example")
    abe = add_person(db, "abe", "approver", "abe@desk.example")
    batch = service.open_batch(db, actor="olga")
    service.add_ids(
        db,
        records,
        batch,
        ["r-a1", "r-a2"],
        study="study-a",
        reason="x",
        source="cli",
        actor="olga",
    )
    change = service.submit(db, batch, olga)
    approve(db, batch, abe)
    job_id = run_change(db, change, olga)
    db.commit()
    assert jobs.execute(job_id, "test-worker", factory) == "succeeded"
    db.expire_all()
    assert batch.state == BatchState.running and batch.export_run_id is not None
    # The worker exporting it dies: the sweep marks the run failed; its end is never reached.
    export_service.fail_run(db, batch.export_run_id, "the worker stopped heartbeating")
    open_month_batch(db)
    assert batch.state == BatchState.failed
    assert report_of(batch)["counts"] == {"failed again": 2}
    ticket = db.get(Ticket, batch.ticket_id)
    assert ticket is not None and "its export run failed" in ticket.title
    assert "the worker stopped heartbeating" in ticket.description


def test_an_export_run_ends_even_when_its_batch_cannot_be_verified_then_the_tick_does(
    db: Session,
    factory: sessionmaker[Session],
    records: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dutydesk.runbooks.redrive import _verify

    olga = add_person(db, "olga", "operator", "olga@desk.example")
    abe = add_person(db, "abe", "approver", "abe@desk.example")
    batch = service.open_batch(db, actor="olga")
    service.add_ids(
        db, records, batch, ["r-a1"], study="study-a", reason="x", source="cli", actor="olga"
    )
    change = service.submit(db, batch, olga)
    approve(db, batch, abe)
    run_change(db, change, olga)
    db.commit()
    real_verify = _verify.verify

    def unreadable(*args: object, **kwargs: object) -> dict[str, Any]:
        raise OSError("the warehouse is not mounted")

    monkeypatch.setattr(_verify, "verify", unreadable)
    drain(db, factory)
    db.expire_all()
    run = db.get(ExportRun, batch.export_run_id)
    assert run is not None and run.state == "succeeded"
    assert batch.state == BatchState.running
    monkeypatch.setattr(_verify, "verify", real_verify)
    open_month_batch(db)
    assert batch.state == BatchState.done
    assert report_of(batch)["counts"] == {"present": 1}


def test_a_rejected_batch_follows_its_change_and_takes_no_more_ids(
    db: Session, records: Session
) -> None:
    from dutydesk.runbooks import reject_change

    olga = add_person(db, "olga", "operator", "olga@desk.example")
    abe = add_person(db, "abe", "approver", "abe@desk.example")
    batch = service.open_batch(db, actor="olga")
    service.add_ids(
        db, records, batch, ["r-a1"], study="study-a", reason="x", source="cli", actor="olga"
    )
    change = service.submit(db, batch, olga)
    reject_change(db, change, abe, comment="not this month")
    assert batch.state == BatchState.rejected
    with pytest.raises(service.RedriveError, match="is rejected; its IDs can no longer change"):
        service.add_ids(
            db,
            records,
            batch,
            ["r-a2"],
            study=None,
            reason="x",
            source="cli",
            actor="olga",
            user=olga,
        )
    with pytest.raises(service.RedriveError, match="only an open batch is submitted"):
        service.submit(db, batch, olga)
    with pytest.raises(service.RedriveError, match="only a batch that has run"):
        _run.export_again(db, batch, olga)


def test_a_table_failed_in_any_slice_of_a_study_makes_its_records_failed_again() -> None:
    from dutydesk.export.models import StudyPart
    from dutydesk.records.models import Study
    from dutydesk.runbooks.redrive import _verify

    run = ExportRun(id=7, state="partial")
    record = Record(
        id="r-x1",
        study_id="study-a",
        health_code="hc-1",
        schema_id="walk",
        schema_revision=1,
        user_sharing_scope="SPONSORS_AND_PARTNERS",
    )
    whole = StudyPart(study_id="study-a", slice_no=0, state="succeeded", failed_tables=[])
    failing = StudyPart(
        study_id="study-a",
        slice_no=1,
        state="partial",
        failed_tables=["study-a-walk-v1"],
        error="study-a-walk-v1: disk full",
    )
    study = Study(id="study-a", project="proj-a", data_access_team="team")
    outcome = _verify._why_not(
        record,
        run=run,
        parts={"study-a": [whole, failing]},
        whitelist=None,
        studies={"study-a": study},
        scopes={("study-a", "hc-1"): "SPONSORS_AND_PARTNERS"},
        schemas={("study-a", "walk", 1)},
        bad={},
        minimum=1,
    )
    assert outcome == (_verify.FAILED_AGAIN, "study-a-walk-v1: disk full")
