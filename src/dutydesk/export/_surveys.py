"""Legacy iOS survey records (spec §4): schema `ios-survey` becomes the survey's own schema.

Such a record's data holds `item` (the survey's schema id, at revision 1) and `answers` (the id
of an attachment holding a JSON list of answers). Each answer gives its value under a key that
depends on its question type; the value lands in the field named by the answer's `item`, and an
answer's `unit` in `<item>_unit`. An answer to an attachment field becomes an attachment of its
own. The few such records are converted here, one by one, before the tables are written; the
rest of the export treats them as records of the survey's schema.

Counters: `surveyWorker[<study>].surveyCount` per record converted, `.errorCount` per record
that could not be (it is then left out of every table, as Bridge did).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from dutydesk.export._attachments import read_attachments
from dutydesk.export._fields import FieldDef
from dutydesk.records.models import UploadFieldType

SURVEY_SCHEMA = "ios-survey"
SURVEY_REVISION = 1

# The answer key that holds the value, by question type (Bridge's ExportHelper).
ANSWER_KEYS = {
    "Boolean": "booleanAnswer",
    "Date": "dateAnswer",
    "Decimal": "numericAnswer",
    "Integer": "numericAnswer",
    "MultipleChoice": "choiceAnswers",
    "SingleChoice": "choiceAnswers",
    "None": "scaleAnswer",
    "Scale": "scaleAnswer",
    "Text": "textAnswer",
    "TimeInterval": "intervalAnswer",
    "TimeOfDay": "dateComponentsAnswer",
}

ATTACHMENT_TYPES = {
    UploadFieldType.ATTACHMENT_BLOB,
    UploadFieldType.ATTACHMENT_CSV,
    UploadFieldType.ATTACHMENT_JSON_BLOB,
    UploadFieldType.ATTACHMENT_JSON_TABLE,
    UploadFieldType.ATTACHMENT_V2,
    UploadFieldType.LARGE_TEXT_ATTACHMENT,
}


class SurveyError(ValueError):
    """A survey record that cannot be converted; the message says why."""


@dataclass(frozen=True)
class Converted:
    """A survey record as a record of its own schema."""

    record_id: str
    schema_id: str
    data: dict[str, Any]
    attachments: dict[str, bytes]  # made for answers to attachment fields, by attachment id


def convert(
    record_id: str,
    data: Any,
    schemas: dict[tuple[str, int], list[FieldDef]],
    read_attachment: Callable[[str], bytes | None],
) -> Converted:
    """The survey record `record_id` with `data` as a record of its schema; SurveyError if not."""
    if not isinstance(data, dict):
        raise SurveyError("survey data is not a JSON object")
    item = data.get("item")
    if not isinstance(item, str) or not item.strip():
        raise SurveyError("survey has no item")
    fields = schemas.get((item, SURVEY_REVISION))
    if fields is None:
        raise SurveyError(f"schema {item}-v{SURVEY_REVISION} not found")
    link = data.get("answers")
    if not isinstance(link, str) or not link.strip():
        raise SurveyError("survey has no answers link")
    content = read_attachment(link)
    if content is None:
        raise SurveyError(f"answers attachment {link} not found")
    try:
        answers = json.loads(content)
    except ValueError as error:
        raise SurveyError(f"answers attachment {link} is not JSON: {error}") from None
    if not isinstance(answers, list):
        raise SurveyError(f"answers attachment {link} is not a JSON list")
    types = {field.name: field.type for field in fields}
    converted: dict[str, Any] = {}
    attachments: dict[str, bytes] = {}
    for answer in answers:
        if not isinstance(answer, dict):
            raise SurveyError("an answer is not a JSON object")
        name = answer.get("item")
        if not isinstance(name, str) or not name:
            raise SurveyError("an answer has no item")
        question = answer.get("questionTypeName", answer.get("questionType"))
        key = ANSWER_KEYS.get(question) if isinstance(question, str) else None
        value = answer.get(key) if key else None
        if value is not None:
            if types.get(name) in ATTACHMENT_TYPES:
                attachment_id = f"{record_id}-{name}"
                attachments[attachment_id] = json.dumps(value, separators=(",", ":")).encode()
                converted[name] = attachment_id
            else:
                converted[name] = value
        unit = answer.get("unit")
        if unit is not None:
            converted[f"{name}_unit"] = unit
    return Converted(record_id, item, converted, attachments)


def convert_surveys(
    connection: duckdb.DuckDBPyConnection,
    study_id: str,
    schemas: dict[tuple[str, int], list[FieldDef]],
    count: Callable[[str, int], None],
    log: Callable[[str], None],
) -> None:
    """Turn the accepted survey records of `scored` into records of their schemas, in place.

    Made attachments go to the temporary table `made_attachments`, which the attachment
    copies and large-text columns read beside the record store's own.
    """
    rows = connection.execute(
        "SELECT id, data FROM scored WHERE accepted AND schema_id = ? AND schema_revision = ?",
        [SURVEY_SCHEMA, SURVEY_REVISION],
    ).fetchall()
    if not rows:
        return

    def read_attachment(attachment_id: str) -> bytes | None:
        return read_attachments(connection, [attachment_id]).get(attachment_id)

    prefix = f"surveyWorker[{study_id}]"
    for record_id, text in rows:
        try:
            done = convert(record_id, json.loads(text), schemas, read_attachment)
        except (SurveyError, ValueError) as error:
            count(f"{prefix}.errorCount", 1)
            log(f"Error processing survey record {record_id}: {error}")
            connection.execute("UPDATE scored SET accepted = false WHERE id = ?", [record_id])
            continue
        count(f"{prefix}.surveyCount", 1)
        for attachment_id, content in done.attachments.items():
            connection.execute(
                "INSERT INTO made_attachments VALUES (?, ?)", [attachment_id, content]
            )
        connection.execute(
            "UPDATE scored SET schema_id = ?, schema_revision = ?, data = ?, "
            "data_type = 'OBJECT' WHERE id = ?",
            [done.schema_id, SURVEY_REVISION, json.dumps(done.data), record_id],
        )
