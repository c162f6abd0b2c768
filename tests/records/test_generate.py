"""The generator: realistic studies, the same for the same seed, with the mistakes real data has."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.records import service
from dutydesk.records.fields import describe_problems
from dutydesk.records.generate import GenerateError, GenerateReport, generate, study_ids
from dutydesk.records.models import Participant, Record, RecordsBase, Schema, Study

END = dt.date(2026, 1, 31)
DAY_MS = 86_400_000


def make(factory: sessionmaker[Session], seed: int = 7, **changes: Any) -> GenerateReport:
    """Generate a small workspace (4 studies, 20 participants, 3 days of 40 records)."""
    options: dict[str, Any] = {
        "seed": seed,
        "studies": 4,
        "participants": 20,
        "days": 3,
        "records_per_day": 40,
        "attachment_share": 0.3,
        "end_date": END,
    }
    options.update(changes)
    return generate(factory, **options)


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every record-store table, in a stable order."""
    with engine.connect() as connection:
        return {
            name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for name, table in RecordsBase.metadata.tables.items()
        }


def test_counts_follow_the_arguments(records_factory: sessionmaker[Session], rdb: Session) -> None:
    report = make(records_factory)
    assert (report.studies, report.participants, report.schemas) == (4, 80, 20)
    assert report.records == 4 * 3 * 40
    assert rdb.scalar(select(Record.id).limit(1)) is not None
    assert len(list(rdb.scalars(select(Record.id)))) == report.records
    assert len(list(rdb.scalars(select(Participant.health_code)))) == 80
    assert len(list(rdb.scalars(select(Schema.schema_id)))) == 20
    assert service.record_counts(rdb) == dict.fromkeys(study_ids(4), 120)


def test_same_seed_gives_the_same_data_and_another_seed_does_not(
    records_engine: Engine, records_factory: sessionmaker[Session], tmp_path: Any
) -> None:
    from dutydesk.db import build_engine
    from dutydesk.records.store import records_session_factory, upgrade_records

    make(records_factory)
    urls = [f"sqlite:///{tmp_path / name}.sqlite" for name in ("again", "other")]
    engines = []
    for url, seed in zip(urls, (7, 8), strict=True):
        upgrade_records(url)
        engines.append(build_engine(url))
        make(records_session_factory(engines[-1]), seed=seed)
    try:
        first, again, other = (dump(engine) for engine in (records_engine, *engines))
    finally:
        for engine in engines:
            engine.dispose()
    for table in first:
        assert first[table] == again[table], table
    assert first["records"] != other["records"]


def test_studies_are_configured_except_one(rdb: Session, records_factory: Any) -> None:
    make(records_factory)
    studies = list(rdb.scalars(select(Study).order_by(Study.id)))
    assert [study.id for study in studies] == ["study-a", "study-b", "study-c", "study-d"]
    assert [study.project is None for study in studies] == [False, False, False, True]
    assert all(study.upload_metadata_fields for study in studies)


def test_some_participants_withdrew_after_uploading(
    rdb: Session, records_factory: sessionmaker[Session]
) -> None:
    report = make(records_factory)
    withdrawn = rdb.execute(
        select(Record.id)
        .join(
            Participant,
            (Participant.study_id == Record.study_id)
            & (Participant.health_code == Record.health_code),
        )
        .where(
            Participant.sharing_scope == "NO_SHARING",
            Record.user_sharing_scope == "SPONSORS_AND_PARTNERS",
        )
    ).all()
    assert report.withdrawn == 8
    assert withdrawn, "no records of withdrawn participants"
    odd = set(rdb.scalars(select(Record.user_sharing_scope).distinct()))
    assert odd - {"NO_SHARING", "SPONSORS_AND_PARTNERS", "ALL_QUALIFIED_RESEARCHERS"}


def test_malformed_values_are_the_ones_the_validator_describes(
    rdb: Session, records_factory: sessionmaker[Session]
) -> None:
    report = make(records_factory, records_per_day=400, studies=1)
    assert 0.01 < report.malformed / report.records < 0.04
    schemas = {(s.schema_id, s.revision): s.fields for s in rdb.scalars(select(Schema))}
    metadata_fields = rdb.scalars(select(Study.upload_metadata_fields)).one()
    described = 0
    for row in rdb.scalars(select(Record)):
        if row.schema_id is None:
            assert row.validation_errors is None
            continue
        problems = describe_problems(schemas[row.schema_id, row.schema_revision], row.data)
        problems += describe_problems(metadata_fields, row.user_metadata or {}, "metadata field")
        assert row.validation_errors == ("; ".join(problems) or None), row.id
        described += bool(problems)
    assert described == report.malformed


def test_records_spread_over_the_days_ending_with_the_end_date(
    rdb: Session, records_factory: sessionmaker[Session]
) -> None:
    make(records_factory)
    first_ms = (END - dt.timedelta(days=2) - dt.date(1970, 1, 1)).days * DAY_MS
    days = {(uploaded - first_ms) // DAY_MS for uploaded in rdb.scalars(select(Record.uploaded_on))}
    assert days == {0, 1, 2}


def test_attachments_are_stored_inline_for_about_the_share_asked(
    rdb: Session, records_factory: sessionmaker[Session]
) -> None:
    report = make(records_factory, attachment_share=0.0)
    assert report.attachments == 0
    assert rdb.scalar(select(Record.id).where(Record.raw_data_attachment_id.is_not(None))) is None


def test_fewer_schemas_can_be_asked_for(
    records_factory: sessionmaker[Session], rdb: Session
) -> None:
    report = make(records_factory, schemas=["voice", "walking"])
    assert report.schemas == 8
    assert set(rdb.scalars(select(Record.schema_id).distinct())) <= {"voice", "walking", None}


def test_generating_again_adds_studies_beside_the_stored_ones(
    records_factory: sessionmaker[Session], rdb: Session
) -> None:
    first = make(records_factory, studies=2)
    before = {row.id: (row.project, row.data_access_team) for row in rdb.scalars(select(Study))}
    rdb.rollback()  # read the second run's studies, not this transaction's snapshot
    second = make(records_factory, seed=8, studies=3, participants=5)
    assert (first.study_ids, second.study_ids) == (
        ("study-a", "study-b"),
        ("study-c", "study-d", "study-e"),
    )
    assert service.record_counts(rdb) == {
        "study-a": 120,
        "study-b": 120,
        "study-c": 120,
        "study-d": 120,
        "study-e": 120,
    }
    # The first run's studies are as they were.
    assert {
        row.id: (row.project, row.data_access_team)
        for row in rdb.scalars(select(Study).where(Study.id.in_(before)))
    } == before
    assert len(list(rdb.scalars(select(Participant.health_code)))) == 2 * 20 + 3 * 5


def test_a_named_study_is_refused_only_when_it_holds_something_else(
    records_factory: sessionmaker[Session], rdb: Session
) -> None:
    make(records_factory, studies=2)
    # The same study made the same way again: nothing to add, nothing refused.
    again = make(records_factory, studies=2, names=["study-a", "study-b"])
    assert (again.study_ids, again.unchanged, again.records) == ((), ("study-a", "study-b"), 0)
    with pytest.raises(
        GenerateError, match="study-b already in the record store with other content"
    ):
        make(records_factory, seed=8, names=["study-b", "study-x"])
    with pytest.raises(
        GenerateError, match="study-a already in the record store with other content"
    ):
        make(records_factory, participants=21, names=["study-a"])
    # A refusal writes nothing.
    assert service.record_counts(rdb) == {"study-a": 120, "study-b": 120}
    made = make(records_factory, names=["study-x"])
    assert made.study_ids == ("study-x",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attachment_share": 1.5}, "attachment share must be between 0 and 1"),
        ({"schemas": 9}, "schemas must be 1 to 5"),
        ({"schemas": ["dance"]}, "unknown schemas ['dance']"),
        ({"days": 0}, "must be at least 1"),
    ],
)
def test_impossible_requests_are_refused(
    records_factory: sessionmaker[Session], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(GenerateError, match=re.escape(message)):
        make(records_factory, **changes)


def test_study_ids_count_past_z() -> None:
    assert study_ids(28)[-3:] == ["study-z", "study-aa", "study-ab"]
