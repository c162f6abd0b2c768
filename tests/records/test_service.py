"""Validation and loading: wrong-typed values are kept and described, unknown things refused."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.records import service
from dutydesk.records.fields import describe_problems
from dutydesk.records.models import Attachment, Record
from tests.records.conftest import STUDY, TAPPING_FIELDS

GOOD_DATA = {
    "count": 12,
    "speed": 0.5,
    "when": "2026-01-02T03:04:05.678+09:00",
    "hand": "left",
    "symptoms": ["a", "other"],
    "happy": True,
    "day": "2026-01-02",
    "blob": [1, "two", {"three": 3}],
    "raw": "attachment-1",
}


def record(**changes: Any) -> dict[str, Any]:
    """A valid tapping record payload, with `changes` applied (None removes a key)."""
    payload: dict[str, Any] = {
        "study_id": STUDY,
        "health_code": "hc-sharing",
        "schema_id": "tapping",
        "schema_revision": 1,
        "uploaded_on": 1_767_312_000_000,
        "data": dict(GOOD_DATA),
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


def test_valid_record_has_no_validation_errors_and_gets_defaults(rdb: Session, study: str) -> None:
    made = service.validate_record(rdb, record(uploaded_on=None))
    assert made.validation_errors is None
    assert uuid.UUID(made.id).version == 4
    assert made.uploaded_on > 1_767_312_000_000
    assert made.user_sharing_scope == "ALL_QUALIFIED_RESEARCHERS"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("count", "12", "field count: expected INT, got string"),
        ("count", 1.5, "field count: expected INT, got fractional number"),
        ("speed", "fast", "field speed: expected FLOAT, got string"),
        ("when", "yesterday", "field when: expected TIMESTAMP, got unparsable string"),
        ("when", True, "field when: expected TIMESTAMP, got boolean"),
        ("hand", 3, "field hand: expected SINGLE_CHOICE, got number"),
        ("symptoms", "a", "field symptoms: expected MULTI_CHOICE, got string"),
        ("happy", "true", "field happy: expected BOOLEAN, got string"),
        ("day", "02/01/2026", "field day: expected CALENDAR_DATE, got unparsable string"),
        ("raw", 42, "field raw: expected ATTACHMENT_V2, got number"),
    ],
)
def test_wrong_typed_value_is_kept_and_described(
    rdb: Session, study: str, field: str, value: Any, problem: str
) -> None:
    data = {**GOOD_DATA, field: value}
    made = service.validate_record(rdb, record(data=data))
    assert made.validation_errors == problem
    assert made.data[field] == value


def test_values_that_fit_loosely_are_accepted(rdb: Session, study: str) -> None:
    data = {**GOOD_DATA, "count": 12.0, "when": 1_767_312_000_000, "blob": "text", "speed": 3}
    assert service.validate_record(rdb, record(data=data)).validation_errors is None


def test_metadata_values_are_checked_against_the_studys_upload_metadata_fields(
    rdb: Session, study: str
) -> None:
    made = service.validate_record(rdb, record(user_metadata={"runs": "three"}))
    assert made.validation_errors == "metadata field runs: expected INT, got string"


def test_several_problems_are_joined_after_errors_the_uploader_gave(
    rdb: Session, study: str
) -> None:
    data = {**GOOD_DATA, "count": "x", "happy": 0}
    made = service.validate_record(rdb, record(data=data, validation_errors="phone said so"))
    assert made.validation_errors == (
        "phone said so; field count: expected INT, got string; "
        "field happy: expected BOOLEAN, got number"
    )


def test_record_scope_is_kept_as_given_even_when_the_participant_withdrew(
    rdb: Session, study: str
) -> None:
    given = service.validate_record(
        rdb, record(health_code="hc-withdrawn", user_sharing_scope="SPONSORS_AND_PARTNERS")
    )
    assert given.user_sharing_scope == "SPONSORS_AND_PARTNERS"
    defaulted = service.validate_record(rdb, record(health_code="hc-withdrawn"))
    assert defaulted.user_sharing_scope == "NO_SHARING"
    assert service.validate_record(rdb, record(health_code="new")).user_sharing_scope is None


def test_times_may_be_given_as_iso_8601_with_an_offset(rdb: Session, study: str) -> None:
    made = service.validate_record(
        rdb, record(uploaded_on="2026-01-02T00:00:00Z", created_on="2026-01-02T09:00:00+09:00")
    )
    assert made.uploaded_on == made.created_on == 1_767_312_000_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"study_id": "nope"}, "unknown study 'nope'"),
        ({"schema_id": "walking"}, "unknown schema 'walking' revision 1 in study 'study-x'"),
        ({"schema_revision": 2}, "unknown schema 'tapping' revision 2 in study 'study-x'"),
    ],
)
def test_unknown_study_or_schema_is_refused_naming_it(
    rdb: Session, study: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(service.UnknownReference, match=re.escape(message)):
        service.validate_record(rdb, record(**changes))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (record(colour="red", size=3), "unknown keys colour, size"),
        (record(health_code=""), "health_code is missing"),
        (record(data=[1, 2]), "data must be object, got array"),
        (record(schema_revision="1"), "schema_revision must be integer or null, got string"),
        (record(schema_revision=None), "schema_id and schema_revision go together"),
        (record(created_on_time_zone="+9"), "created_on_time_zone must look like +0900"),
        (record(uploaded_on="2026-01-02T00:00:00"), "uploaded_on '2026-01-02T00:00:00' has no"),
        (record(user_data_groups=["a", 1]), "user_data_groups must be a list of strings"),
        ([1, 2], "a record must be a JSON object, got array"),
    ],
)
def test_malformed_record_is_refused_with_a_clear_reason(
    rdb: Session, study: str, payload: Any, message: str
) -> None:
    with pytest.raises(service.RecordError, match=re.escape(message)):
        service.validate_record(rdb, payload)


def test_bad_field_definitions_are_refused(rdb: Session, study: str) -> None:
    with pytest.raises(service.RecordError, match="field x has unknown type 'TEXT'"):
        service.upsert_schema(rdb, STUDY, "bad", 1, [{"name": "x", "type": "TEXT"}])
    with pytest.raises(service.RecordError, match="field x is defined twice"):
        service.upsert_schema(rdb, STUDY, "bad", 1, [{"name": "x", "type": "INT"}] * 2)
    with pytest.raises(service.RecordError, match="field x has unknown keys colour"):
        service.upsert_schema(rdb, STUDY, "bad", 1, [{"name": "x", "type": "INT", "colour": 1}])
    with pytest.raises(service.UnknownReference, match="unknown study 'nope'"):
        service.upsert_schema(rdb, "nope", "tapping", 1, TAPPING_FIELDS)
    with pytest.raises(service.RecordError, match="unknown sharing scope 'EVERYONE'"):
        service.set_participant_scope(rdb, STUDY, "hc", "EVERYONE")


def test_a_field_of_a_type_loaded_by_hand_is_not_checked(rdb: Session, study: str) -> None:
    fields = [{"name": "x", "type": "FUTURE_TYPE"}, {"type": "INT"}]
    assert describe_problems(fields, {"x": 1, "None": "s"}) == []


def test_upserting_a_study_replaces_its_settings(rdb: Session, study: str) -> None:
    changed = service.upsert_study(rdb, STUDY, "Renamed", project=None, disable_export=True)
    rdb.commit()
    assert (changed.name, changed.project, changed.disable_export) == ("Renamed", None, True)


def test_attachment_keeps_its_bytes_size_and_md5(rdb: Session) -> None:
    made = service.add_attachment(rdb, b'{"taps": [1, 2]}', "application/json")
    rdb.commit()
    stored = rdb.get(Attachment, made.id)
    assert stored is not None
    assert (stored.content, stored.size) == (b'{"taps": [1, 2]}', 16)
    assert stored.md5 == hashlib.md5(b'{"taps": [1, 2]}').hexdigest()
    with pytest.raises(service.RecordError, match="the body is empty"):
        service.add_attachment(rdb, b"", "text/plain")


def stored_count(rdb: Session) -> int:
    return int(rdb.scalar(select(func.count()).select_from(Record)) or 0)


def jsonl(*payloads: Any) -> list[str]:
    return [json.dumps(payload) + "\n" for payload in payloads]


def test_import_reports_bad_lines_by_number_and_keeps_going(rdb: Session, study: str) -> None:
    lines = [
        *jsonl(record(id="r1")),
        "{not json\n",
        "\n",
        *jsonl(record(id="r2", study_id="nope"), record(id="r3", data={"count": "x"})),
        b"\xff\xfe broken\n",
        *jsonl(record(id="r4", colour="red")),
    ]
    report = service.import_jsonl(rdb, lines)
    rdb.commit()
    assert (report.imported, report.skipped) == (2, 0)
    assert [number for number, _ in report.bad_lines] == [2, 4, 6, 7]
    reasons = dict(report.bad_lines)
    assert reasons[2].startswith("not JSON: ")
    assert reasons[4] == "unknown study 'nope'"
    assert reasons[6] == "not UTF-8 text"
    assert reasons[7].startswith("unknown keys colour")
    kept = rdb.get(Record, "r3")
    assert kept is not None and kept.validation_errors == "field count: expected INT, got string"


def test_importing_the_same_file_twice_adds_nothing_the_second_time(
    rdb: Session, study: str
) -> None:
    lines = jsonl(record(id="r1"), record(), record(id="r1"), record(health_code="hc-withdrawn"))
    first = service.import_jsonl(rdb, lines)
    rdb.commit()
    assert (first.imported, first.skipped) == (3, 1)
    second = service.import_jsonl(rdb, lines)
    rdb.commit()
    assert (second.imported, second.skipped, second.bad_lines) == (0, 4, [])
    assert stored_count(rdb) == 3


def test_import_skips_a_stored_id_without_overwriting_it(rdb: Session, study: str) -> None:
    service.import_jsonl(rdb, jsonl(record(id="r1", day_in_study=1)))
    report = service.import_jsonl(rdb, jsonl(record(id="r1", day_in_study=99)))
    rdb.commit()
    assert report.skipped == 1
    kept = rdb.get(Record, "r1")
    assert kept is not None and kept.day_in_study == 1
