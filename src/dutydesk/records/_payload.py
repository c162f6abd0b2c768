"""The shape of a record payload: its keys, their JSON types, and the errors of this package."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from dutydesk.records.fields import json_type

TIME_ZONE_PATTERN = re.compile(r"^[+-]\d{4}$")

# Every top-level key of a record and the JSON types it accepts ("null": it may be null).
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "id": ("string",),
    "study_id": ("string",),
    "health_code": ("string",),
    "schema_id": ("string", "null"),
    "schema_revision": ("integer", "null"),
    "uploaded_on": ("integer", "string", "null"),
    "created_on": ("integer", "string", "null"),
    "created_on_time_zone": ("string", "null"),
    "data": ("object",),
    "metadata": ("object", "null"),
    "user_metadata": ("object", "null"),
    "user_sharing_scope": ("string", "null"),
    "user_external_id": ("string", "null"),
    "user_data_groups": ("array", "null"),
    "user_substudy_memberships": ("object", "null"),
    "validation_errors": ("string", "null"),
    "day_in_study": ("integer", "null"),
    "raw_data_attachment_id": ("string", "null"),
}


class RecordError(ValueError):
    """Something cannot go into the record store; the message says what and why."""


class AlreadyStored(RecordError):
    """A record with this id is already in the store."""


class UnknownReference(RecordError):
    """A record or schema names a study or schema the store does not have."""


def _kind(value: Any) -> str:
    """The JSON type of a top-level value, telling integers from other numbers."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return json_type(value)


def epoch_ms(value: int | str, key: str) -> int:
    """Epoch milliseconds from an integer or an ISO 8601 time with an offset."""
    if isinstance(value, int):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{key} must be epoch milliseconds or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{key} {value!r} has no UTC offset")
    return int(parsed.timestamp() * 1000)


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def check_shape(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise RecordError(f"a record must be a JSON object, got {_kind(payload)}")
    unknown = sorted(set(payload) - set(RECORD_KEYS))
    if unknown:
        raise RecordError(
            f"unknown keys {', '.join(unknown)}; a record has {', '.join(RECORD_KEYS)}"
        )
    for key in ("study_id", "health_code"):
        if not payload.get(key):
            raise RecordError(f"{key} is missing")
    for key, value in payload.items():
        if _kind(value) not in RECORD_KEYS[key]:
            wanted = " or ".join(RECORD_KEYS[key])
            raise RecordError(f"{key} must be {wanted}, got {_kind(value)}")
    if (payload.get("schema_id") is None) != (payload.get("schema_revision") is None):
        raise RecordError("schema_id and schema_revision go together: give both or neither")
    zone = payload.get("created_on_time_zone")
    if zone is not None and not TIME_ZONE_PATTERN.match(zone):
        raise RecordError(f"created_on_time_zone must look like +0900, got {zone!r}")
    if not all(isinstance(group, str) for group in payload.get("user_data_groups") or []):
        raise RecordError("user_data_groups must be a list of strings")
    return payload
