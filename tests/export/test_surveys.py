"""Legacy iOS survey records: exported as records of the survey's own schema (spec §4)."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dutydesk.export import _surveys
from dutydesk.export._fields import parse_field_defs
from dutydesk.export.request import SharingMode
from tests.export.test_engine import one_study_store, rows_of, run_study

SURVEY_FIELDS = [
    {"name": "age", "type": "INT"},
    {"name": "weight", "type": "FLOAT"},
    {"name": "weight_unit", "type": "STRING", "maxLength": 8},
    {"name": "smoker", "type": "BOOLEAN"},
    {"name": "drinks", "type": "MULTI_CHOICE", "multiChoiceAnswerList": ["wine", "beer"]},
    {"name": "feeling", "type": "INT"},
    {"name": "story", "type": "ATTACHMENT_V2"},
    {"name": "born", "type": "STRING"},
]
ANSWERS = [
    {"item": "age", "questionTypeName": "Integer", "numericAnswer": 44},
    {"item": "weight", "questionTypeName": "Decimal", "numericAnswer": 71.5, "unit": "kg"},
    {"item": "smoker", "questionTypeName": "Boolean", "booleanAnswer": False},
    {"item": "drinks", "questionTypeName": "MultipleChoice", "choiceAnswers": ["beer"]},
    {"item": "feeling", "questionTypeName": "Scale", "scaleAnswer": 7},
    {"item": "story", "questionTypeName": "Text", "textAnswer": "It began in spring."},
    {"item": "born", "questionTypeName": "Date", "dateAnswer": "1982-03-04"},
    {"item": "ignored", "questionTypeName": "Unheard", "someAnswer": 1},
]


def schemas() -> dict[tuple[str, int], Any]:
    return {("health", 1): parse_field_defs(SURVEY_FIELDS)}


def test_answers_land_in_their_fields_by_question_type() -> None:
    converted = _surveys.convert(
        "r1",
        {"item": "health", "answers": "att-1"},
        schemas(),
        lambda attachment: json.dumps(ANSWERS).encode() if attachment == "att-1" else None,
    )
    assert converted.schema_id == "health"
    assert converted.data == {
        "age": 44,
        "weight": 71.5,
        "weight_unit": "kg",
        "smoker": False,
        "drinks": ["beer"],
        "feeling": 7,
        "story": "r1-story",
        "born": "1982-03-04",
    }
    assert converted.attachments == {"r1-story": b'"It began in spring."'}


@pytest.mark.parametrize(
    ("data", "answers", "problem"),
    [
        ("not an object", "[]", "not a JSON object"),
        ({"answers": "att-1"}, "[]", "no item"),
        ({"item": "nosuch", "answers": "att-1"}, "[]", "schema nosuch-v1 not found"),
        ({"item": "health"}, "[]", "no answers link"),
        ({"item": "health", "answers": "gone"}, "[]", "answers attachment gone not found"),
        ({"item": "health", "answers": "att-1"}, "{oops", "is not JSON"),
        ({"item": "health", "answers": "att-1"}, '{"a": 1}', "is not a JSON list"),
        ({"item": "health", "answers": "att-1"}, '[{"numericAnswer": 1}]', "has no item"),
    ],
)
def test_a_survey_that_cannot_be_converted_says_why(data: Any, answers: str, problem: str) -> None:
    with pytest.raises(_surveys.SurveyError, match=problem):
        _surveys.convert(
            "r1",
            data,
            schemas(),
            lambda attachment: answers.encode() if attachment == "att-1" else None,
        )


def test_survey_records_are_exported_into_the_survey_table(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    with closing(one_study_store(path)) as connection, connection:
        connection.execute(
            "INSERT INTO schemas VALUES ('s', 'health', 1, ?)", [json.dumps(SURVEY_FIELDS)]
        )
        connection.execute("INSERT INTO schemas VALUES ('s', 'ios-survey', 1, '[]')")
        connection.execute("INSERT INTO participants VALUES ('s', 'hc', 'SPONSORS_AND_PARTNERS')")
        connection.execute(
            "INSERT INTO attachments (id, content, content_type, size, md5) "
            "VALUES ('att-1', ?, 'application/json', 1, 'x')",
            [json.dumps(ANSWERS).encode()],
        )
        for record_id, data in [
            ("good", {"item": "health", "answers": "att-1"}),
            ("broken", {"item": "health", "answers": "missing"}),
        ]:
            connection.execute(
                "INSERT INTO records (id, study_id, health_code, schema_id, schema_revision, "
                "uploaded_on, data, user_sharing_scope) VALUES (?, 's', 'hc', 'ios-survey', 1, "
                "1000, ?, 'SPONSORS_AND_PARTNERS')",
                [record_id, json.dumps(data)],
            )
    warehouse = tmp_path / "wh"
    result = run_study(path, warehouse, "s", SharingMode.SHARED)

    assert result.counters["surveyWorker[s].surveyCount"] == 1
    assert result.counters["surveyWorker[s].errorCount"] == 1
    assert any("Error processing survey record broken" in line for line in result.log)
    tables = {table.key: table for table in result.tables}
    assert "s-ios-survey-v1" not in tables
    [row] = rows_of(tables["s-health-v1"].path or "")
    assert row["recordId"] == "good"
    assert row["age"] == 44 and row["weight"] == 71.5
    assert row["weight_unit"] == "kg"
    assert row["smoker"] is False and row["drinks.beer"] is True and row["drinks.wine"] is False
    assert row["feeling"] == 7 and row["born"] == "1982-03-04"
    story = warehouse / "s" / "s-health-v1" / "attachments" / row["story"]
    assert story.read_bytes() == b'"It began in spring."'
    # The broken survey is in no table, the summary included.
    summary = rows_of(tables["s-appVersion"].path or "")
    assert [r["recordId"] for r in summary] == ["good"]
    assert summary[0]["originalTable"] == "s-health-v1"
