"""Schema field definitions and whether a JSON value fits a field's type (as Bridge judges it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dutydesk.records.models import UploadFieldType as T

ATTACHMENT_TYPES = frozenset(
    {
        T.ATTACHMENT_BLOB,
        T.ATTACHMENT_CSV,
        T.ATTACHMENT_JSON_BLOB,
        T.ATTACHMENT_JSON_TABLE,
        T.ATTACHMENT_V2,
        T.LARGE_TEXT_ATTACHMENT,
    }
)
STRING_TYPES = frozenset({T.CALENDAR_DATE, T.DURATION_V2, T.TIME_V2, T.SINGLE_CHOICE, T.STRING})

# Optional keys of a field definition and the JSON type each must have. `required` is
# accepted because Bridge schemas carry it; the store does not enforce it.
OPTIONAL_FIELD_KEYS: dict[str, str] = {
    "maxLength": "number",
    "unboundedText": "boolean",
    "multiChoiceAnswerList": "array",
    "allowOtherChoices": "boolean",
    "fileExtension": "string",
    "mimeType": "string",
    "required": "boolean",
}


class FieldDefinitionError(ValueError):
    """A schema's (or a study's upload-metadata) field definitions are malformed."""


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type: string, number, boolean, array, object, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_field_definitions(fields: Any) -> list[dict[str, Any]]:
    """The field definitions as a list of dicts, or an error naming what is wrong."""
    if not isinstance(fields, list):
        raise FieldDefinitionError(f"fields must be a list, got {json_type(fields)}")
    seen: set[str] = set()
    for position, field in enumerate(fields, 1):
        if not isinstance(field, dict):
            raise FieldDefinitionError(f"field #{position} must be an object")
        name = field.get("name")
        if not isinstance(name, str) or not name:
            raise FieldDefinitionError(f"field #{position} has no name")
        if name in seen:
            raise FieldDefinitionError(f"field {name} is defined twice")
        seen.add(name)
        if field.get("type") not in T.__members__:
            raise FieldDefinitionError(
                f"field {name} has unknown type {field.get('type')!r}; "
                f"choose one of {', '.join(T.__members__)}"
            )
        unknown = sorted(set(field) - {"name", "type"} - set(OPTIONAL_FIELD_KEYS))
        if unknown:
            raise FieldDefinitionError(f"field {name} has unknown keys {', '.join(unknown)}")
        for key, expected in OPTIONAL_FIELD_KEYS.items():
            value = field.get(key)
            if value is not None and json_type(value) != expected:
                raise FieldDefinitionError(
                    f"field {name}: {key} must be a {expected}, got {json_type(value)}"
                )
        max_length = field.get("maxLength")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise FieldDefinitionError(f"field {name}: maxLength must be a positive integer")
        answers = field.get("multiChoiceAnswerList") or []
        if not all(isinstance(answer, str) for answer in answers):
            raise FieldDefinitionError(f"field {name}: multiChoiceAnswerList must hold strings")
    return fields


def _is_timestamp(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_calendar_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem_of_int(value: Any) -> str | None:
    if not _is_number(value):
        return json_type(value)
    if isinstance(value, float) and not value.is_integer():
        return "fractional number"
    return None


def _problem_of_timestamp(value: Any) -> str | None:
    if _is_number(value):
        return None
    if isinstance(value, str):
        return None if _is_timestamp(value) else "unparsable string"
    return json_type(value)


def _problem_of_date(value: Any) -> str | None:
    if isinstance(value, str):
        return None if _is_calendar_date(value) else "unparsable string"
    return json_type(value)


def _expects(check: Callable[[Any], bool]) -> Callable[[Any], str | None]:
    return lambda value: None if check(value) else json_type(value)


_PROBLEM: dict[str, Callable[[Any], str | None]] = {
    **{kind.value: _expects(lambda v: isinstance(v, str)) for kind in ATTACHMENT_TYPES},
    **{kind.value: _expects(lambda v: isinstance(v, str)) for kind in STRING_TYPES},
    T.CALENDAR_DATE.value: _problem_of_date,
    T.BOOLEAN.value: _expects(lambda v: isinstance(v, bool)),
    T.FLOAT.value: _expects(_is_number),
    T.INT.value: _problem_of_int,
    T.INLINE_JSON_BLOB.value: lambda _value: None,
    T.MULTI_CHOICE.value: _expects(lambda v: isinstance(v, list)),
    T.TIMESTAMP.value: _problem_of_timestamp,
}


def describe_problem(field: Mapping[str, Any], value: Any, label: str = "field") -> str | None:
    """`field NAME: expected TYPE, got KIND` when `value` does not fit the field, else None.

    A missing or null value fits every field. The value itself is never quoted: it may be
    personal data, and the message is exported.
    """
    # A type this code does not know (a schema loaded by hand) is not checked.
    check = _PROBLEM.get(str(field.get("type")))
    if value is None or check is None:
        return None
    got = check(value)
    if got is None:
        return None
    return f"{label} {field['name']}: expected {field['type']}, got {got}"


def describe_problems(
    fields: Iterable[Mapping[str, Any]], values: Mapping[str, Any], label: str = "field"
) -> list[str]:
    """One problem line for each value that does not fit its field, in field order."""
    problems = []
    for field in fields:
        name = field.get("name")
        if not isinstance(name, str):
            continue  # a definition loaded by hand without a name describes nothing
        problem = describe_problem(field, values.get(name), label)
        if problem is not None:
            problems.append(problem)
    return problems
