"""The export request: parsing, validation, JSON form and redrive copies (spec §1 and §11).

Departures from Bridge-EX, on purpose (DESIGN §6): unknown fields are refused, not dropped (the
legacy ``date`` too); JSON types are checked strictly (no string-to-boolean or float-to-int
coercion, ``redriveCount`` can't be negative); a field given under both its name and its alias is
an error; the record-ID override is also accepted as ``recordIdOverride`` (a path or URL) and is
written back under that name. A blank override or DynamoDB prefix counts as absent and is dropped.

Date-times keep the fixed offset written in the string, at millisecond precision as in Joda.
Accepted: ``YYYY-MM-DDTHH[:mm[:ss[.fff]]]`` then ``Z``, ``±HH``, ``±HHmm`` or ``±HH:mm``. As Joda
does, month, day, hour, minute and second may have one digit (``2016-08-13T0:00-0700``), ``,`` may
stand for ``.``, and digits past the milliseconds are dropped. A string without an offset is
refused, where Bridge-EX would have read it in the JVM's time zone.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, TypeVar

NO_TAG = "(no tag)"
REDRIVE_TAG_PREFIX = "redrive export; original: "

_T = TypeVar("_T")
_ALIASES = {"appWhitelist": "studyWhitelist", "recordIdS3Override": "recordIdOverride"}
_FIELDS = frozenset(
    [
        "startDateTime",
        "endDateTime",
        "useLastExportTime",
        "recordIdOverride",
        "redriveCount",
        "sharingMode",
        "studyWhitelist",
        "tableWhitelist",
        "exporterDdbPrefixOverride",
        "synapseProjectOverrideMap",
        "tag",
    ]
)
_KEY_FIELDS = frozenset({"appId", "schemaId", "revision"})
_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
_JSON_TYPES |= {list: "an array", dict: "an object", type(None): "null"}
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"T([0-9]{1,2})(?::([0-9]{1,2})(?::([0-9]{1,2})(?:[.,]([0-9]{1,9}))?)?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
)


class InvalidRequest(ValueError):
    """An export request that can't be run; the message says what to fix."""


class SharingMode(StrEnum):
    """Which records an export takes, by the participant's effective sharing scope (spec §3)."""

    ALL = "ALL"  # every record, even NO_SHARING
    SHARED = "SHARED"  # SPONSORS_AND_PARTNERS and ALL_QUALIFIED_RESEARCHERS (the default)
    PUBLIC_ONLY = "PUBLIC_ONLY"  # ALL_QUALIFIED_RESEARCHERS only


@dataclasses.dataclass(frozen=True, order=True)
class SchemaKey:
    """One schema table: study, schema and revision; str() is ``<study>-<schema>-v<rev>``."""

    study_id: str
    schema_id: str
    revision: int

    def __post_init__(self) -> None:
        if not self.study_id.strip():
            raise InvalidRequest("appId must be specified")
        if not self.schema_id.strip():
            raise InvalidRequest("schemaId must be specified")
        if isinstance(self.revision, bool) or self.revision <= 0:
            raise InvalidRequest("revision must be specified and positive")

    def __str__(self) -> str:
        return f"{self.study_id}-{self.schema_id}-v{self.revision}"

    def to_json(self) -> dict[str, Any]:
        """The key as JSON, under the names Bridge writes: appId, schemaId, revision."""
        return {"appId": self.study_id, "schemaId": self.schema_id, "revision": self.revision}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportRequest:
    """A validated export request (spec §1); construction runs the same checks as parse_request."""

    use_last_export_time: bool
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    record_id_override: str | None = None
    redrive_count: int = 0
    sharing_mode: SharingMode = SharingMode.SHARED
    study_whitelist: frozenset[str] | None = None
    table_whitelist: frozenset[SchemaKey] | None = None
    exporter_ddb_prefix_override: str | None = None
    synapse_project_override_map: Mapping[str, str] | None = dataclasses.field(
        default=None, hash=False
    )
    tag: str = NO_TAG

    def __post_init__(self) -> None:
        # Blank strings count as absent, and collections are copied so the caller can't change them.
        for name in ("record_id_override", "exporter_ddb_prefix_override"):
            value = getattr(self, name)
            object.__setattr__(self, name, value if value and value.strip() else None)
        if self.study_whitelist is not None:
            object.__setattr__(self, "study_whitelist", frozenset(self.study_whitelist))
        if self.table_whitelist is not None:
            object.__setattr__(self, "table_whitelist", frozenset(self.table_whitelist))
        if self.synapse_project_override_map is not None:
            project_map = MappingProxyType(dict(self.synapse_project_override_map))
            object.__setattr__(self, "synapse_project_override_map", project_map)
        self._check()

    def _check(self) -> None:
        """Bridge-EX's build() rules 2 to 7, in its order (rule 1 belongs to parsing)."""
        start, end, override = self.start_date_time, self.end_date_time, self.record_id_override
        if any(value is not None and value.utcoffset() is None for value in (start, end)):
            raise InvalidRequest("startDateTime and endDateTime need a UTC offset.")
        if self.redrive_count < 0:
            raise InvalidRequest("redriveCount can't be negative.")
        if sum((self.use_last_export_time, start is not None, override is not None)) != 1:
            raise InvalidRequest(
                "Exactly one of useLastExportTime=true, startDateTime and recordIdOverride "
                "must be specified."
            )
        if self.use_last_export_time and end is None:
            raise InvalidRequest("If useLastExportTime is true, endDateTime must be specified.")
        if start is not None and end is None:
            raise InvalidRequest("If startDateTime is specified, endDateTime must be specified.")
        if start is not None and end is not None and start >= end:
            raise InvalidRequest("startDateTime must be before endDateTime.")
        if end is not None and override is not None:
            raise InvalidRequest("endDateTime can't be specified with recordIdOverride.")
        if (self.exporter_ddb_prefix_override is None) != (
            self.synapse_project_override_map is None
        ):
            raise InvalidRequest(
                "exporterDdbPrefixOverride and synapseProjectOverrideMap must both be specified "
                "or both be absent."
            )
        collections = {
            "synapseProjectOverrideMap": self.synapse_project_override_map,
            "studyWhitelist": self.study_whitelist,
            "tableWhitelist": self.table_whitelist,
        }
        for name, collection in collections.items():
            if collection is not None and not collection:
                raise InvalidRequest(f"If {name} is specified, it can't be empty.")

    @property
    def shape(self) -> Literal["A", "B", "C"]:
        """A: each study from its last export to the end; B: a fixed window; C: listed records."""
        if self.use_last_export_time:
            return "A"
        return "B" if self.start_date_time is not None else "C"

    def to_json(self) -> dict[str, Any]:
        """The request as JSON (spec §1): absent fields left out, parse_request reads it back."""
        out: dict[str, Any] = {}
        if self.start_date_time is not None:
            out["startDateTime"] = format_datetime(self.start_date_time)
        if self.end_date_time is not None:
            out["endDateTime"] = format_datetime(self.end_date_time)
        if self.record_id_override is not None:
            out["recordIdOverride"] = self.record_id_override
        out["redriveCount"] = self.redrive_count
        out["useLastExportTime"] = self.use_last_export_time
        out["sharingMode"] = self.sharing_mode.value
        if self.study_whitelist is not None:
            out["studyWhitelist"] = sorted(self.study_whitelist)
        if self.table_whitelist is not None:
            out["tableWhitelist"] = [key.to_json() for key in sorted(self.table_whitelist)]
        if self.exporter_ddb_prefix_override is not None:
            out["exporterDdbPrefixOverride"] = self.exporter_ddb_prefix_override
        if self.synapse_project_override_map is not None:
            out["synapseProjectOverrideMap"] = dict(
                sorted(self.synapse_project_override_map.items())
            )
        out["tag"] = self.tag
        return out

    def __str__(self) -> str:
        # Bridge-EX's toString() to the letter: every log line about the request carries it.
        text = ""
        if self.start_date_time is not None:
            text += f"startDateTime={format_datetime(self.start_date_time)}, "
        if self.end_date_time is not None:
            text += f"endDateTime={format_datetime(self.end_date_time)}"
        if self.record_id_override is not None:
            text += f"recordIdS3Override={self.record_id_override}"
        return (
            f"{text}, redriveCount={self.redrive_count}, tag={self.tag}, "
            f"useLastExportTime={str(self.use_last_export_time).lower()}"
        )

    def redrive_copy(
        self,
        *,
        record_id_override: str | None = None,
        study_id: str | None = None,
        tables: Collection[SchemaKey] | None = None,
        study_start: datetime | None = None,
    ) -> ExportRequest:
        """The redrive of failed records (give record_id_override) or of one study's tables (§11).

        Both forms count one more redrive, turn useLastExportTime off and tag the copy
        ``redrive export; original: <tag>`` (once). Records: the dates are cleared and the copy
        reads the given record-ID list. Tables: the copy is limited to study_id and tables; the
        end is kept, and for a shape-A request study_start (that study's computed start, required
        then, ignored otherwise) becomes startDateTime.
        """
        tag = self.tag if self.tag.startswith(REDRIVE_TAG_PREFIX) else REDRIVE_TAG_PREFIX + self.tag
        if record_id_override is not None:
            if study_id is not None or tables is not None or study_start is not None:
                raise ValueError("a record redrive takes record_id_override alone")
            return dataclasses.replace(
                self,
                start_date_time=None,
                end_date_time=None,
                record_id_override=record_id_override,
                redrive_count=self.redrive_count + 1,
                use_last_export_time=False,
                tag=tag,
            )
        if study_id is None or not tables:
            raise ValueError("give record_id_override, or study_id and the tables to redrive")
        start = self.start_date_time
        if self.shape == "A":
            if study_start is None:
                raise ValueError("study_start is required to redrive a useLastExportTime request")
            start = study_start
        return dataclasses.replace(
            self,
            start_date_time=start,
            study_whitelist=frozenset({study_id}),
            table_whitelist=frozenset(tables),
            redrive_count=self.redrive_count + 1,
            use_last_export_time=False,
            tag=tag,
        )


def redrive_record_ids_name(now: datetime) -> str:
    """The name of a record redrive's ID list: ``redrive-record-ids.<now in UTC>``."""
    return "redrive-record-ids." + format_datetime(now.astimezone(UTC))


def format_datetime(value: datetime) -> str:
    """Write a date-time as Joda's toString(): millis and ``±HH:mm``, or ``Z`` for a zero offset."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"can't write a date-time without a UTC offset: {value}")
    text = value.replace(tzinfo=None).isoformat(timespec="milliseconds")
    if not offset:
        return text + "Z"
    seconds = abs(int(offset.total_seconds()))
    text += f"{'-' if offset < timedelta(0) else '+'}{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
    return text + (f":{seconds % 60:02d}" if seconds % 60 else "")


def parse_datetime(text: str, field: str = "value") -> datetime:
    """Parse an ISO-8601 date-time keeping its fixed offset (forms in the module docstring)."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise InvalidRequest(
            f"{field} is not a date-time with a UTC offset: {text!r} "
            "(expected e.g. 2016-05-09T13:53:13.801-07:00)."
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    try:
        date_part = (int(year), int(month), int(day))
        time_part = (int(hour), int(minute or 0), int(second or 0), millis * 1000)
        return datetime(*date_part, *time_part, tzinfo=_fixed_offset(offset))
    except ValueError as error:
        raise InvalidRequest(f"{field} is not a valid date-time: {text!r} ({error}).") from error


def _fixed_offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"UTC offset {text} is out of range")
    return timezone((-1 if text[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes))


def parse_request(body: str | bytes | Mapping[str, Any]) -> ExportRequest:
    """Parse and validate an export request from its JSON text or decoded object (spec §1)."""
    fields = _known_fields(_load_object(body), _FIELDS, _ALIASES, "export request", "")
    use_last = _get(fields, "useLastExportTime", bool, "true or false")
    start = _get_datetime(fields, "startDateTime")
    end = _get_datetime(fields, "endDateTime")
    override = _get(fields, "recordIdOverride", str, "a string")
    redrive_count = _get(fields, "redriveCount", int, "an integer")
    sharing = _get(fields, "sharingMode", str, "a string")
    if sharing is not None and sharing not in SharingMode.__members__:
        raise InvalidRequest(
            f"sharingMode must be one of ALL, SHARED, PUBLIC_ONLY, not {sharing!r}."
        )
    studies = _get(fields, "studyWhitelist", list, "an array of study IDs")
    if studies is not None and not all(isinstance(study, str) for study in studies):
        raise InvalidRequest("studyWhitelist must be an array of strings.")
    tables = _get(fields, "tableWhitelist", list, "an array of schema keys")
    prefix = _get(fields, "exporterDdbPrefixOverride", str, "a string")
    project_map = _get(fields, "synapseProjectOverrideMap", dict, "an object")
    if project_map is not None and not all(isinstance(v, str) for v in project_map.values()):
        raise InvalidRequest("synapseProjectOverrideMap must map study IDs to project ID strings.")
    tag = _get(fields, "tag", str, "a string")
    table_keys = None if tables is None else _schema_keys(tables)
    if use_last is None:
        raise InvalidRequest("useLastExportTime must be specified.")
    return ExportRequest(
        use_last_export_time=use_last,
        start_date_time=start,
        end_date_time=end,
        record_id_override=override,
        redrive_count=0 if redrive_count is None else redrive_count,
        sharing_mode=SharingMode.SHARED if sharing is None else SharingMode(sharing),
        study_whitelist=None if studies is None else frozenset(studies),
        table_whitelist=table_keys,
        exporter_ddb_prefix_override=prefix,
        synapse_project_override_map=project_map,
        tag=NO_TAG if tag is None else tag,
    )


def _load_object(body: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidRequest(f"Export request is not UTF-8 text: {error}.") from error
    if not isinstance(body, str):
        raise InvalidRequest(f"Export request must be JSON text, not {type(body).__name__}.")
    if not body.strip():
        raise InvalidRequest("Export request is empty; expected a JSON object.")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"Export request is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}."
        ) from error
    if not isinstance(value, dict):
        raise InvalidRequest(f"Export request must be a JSON object, not {_json_type(value)}.")
    return value


def _known_fields(
    fields: Mapping[str, Any], known: frozenset[str], aliases: Mapping[str, str], what: str, at: str
) -> dict[str, Any]:
    """The fields under their canonical names; unknown fields and doubled aliases are refused."""
    unknown = sorted(str(name) for name in fields if name not in known and name not in aliases)
    if unknown:
        raise InvalidRequest(
            f"{at}Unknown field{'s' if len(unknown) > 1 else ''} in {what}: {', '.join(unknown)}. "
            f"Known fields: {', '.join(sorted(known))}."
        )
    out = dict(fields)
    for alias, name in aliases.items():
        if alias in out:
            if name in out:
                raise InvalidRequest(f"{at}{name} and {alias} are the same field; give only one.")
            out[name] = out.pop(alias)
    return out


def _get(fields: Mapping[str, Any], name: str, kind: type[_T], description: str) -> _T | None:
    """The field's value, None when absent or null, checked to be a JSON value of the given kind."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(f"{name} must be {description}, not {_json_type(value)}.")
    return value


def _get_datetime(fields: Mapping[str, Any], name: str) -> datetime | None:
    text = _get(fields, name, str, "a date-time string such as 2016-05-09T13:53:13.801-07:00")
    return None if text is None else parse_datetime(text, name)


def _schema_keys(items: list[Any]) -> frozenset[SchemaKey]:
    return frozenset(
        _schema_key(item, f"tableWhitelist[{index}]: ") for index, item in enumerate(items)
    )


def _schema_key(item: object, at: str) -> SchemaKey:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{at}must be an object with appId, schemaId and revision.")
    fields = _known_fields(item, _KEY_FIELDS, {"studyId": "appId"}, "a schema key", at)
    try:
        study_id = _get(fields, "appId", str, "a string")
        schema_id = _get(fields, "schemaId", str, "a string")
        revision = _get(fields, "revision", int, "an integer")
        return SchemaKey(study_id or "", schema_id or "", revision or 0)
    except InvalidRequest as error:
        raise InvalidRequest(f"{at}{error}") from error


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)
