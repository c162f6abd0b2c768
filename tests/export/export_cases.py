"""Hostile export cases drawn by hypothesis, and the reference check of their export.

A case is one study: upload-metadata fields, a schema or two of every field type, attachments
(empty, inline, in files, missing) and records whose values are right, wrong in type, marked
up, astral, at the edges of their range or impossible (spec §6-§8). `check_export` compares
every table the engine writes, row by row and cell by cell, with the reference (`_values`,
`_cells`, and the common values and sharing rule of `test_engine`), and every attachment file
with the legacy naming rules (§7). Used by `test_export_properties.py` (a bounded run in CI)
and `bench/export_properties.py` (a long run).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import assume
from hypothesis import strategies as st

from dutydesk.export import _values
from dutydesk.export._cells import field_cell
from dutydesk.export._columns import (
    Column,
    CommonValue,
    Document,
    FieldValue,
    OriginalTable,
    RawData,
    RawMetadata,
    app_version_table_columns,
    default_table_columns,
    original_table,
    schema_table_columns,
)
from dutydesk.export._engine import StudyResult
from dutydesk.export._fields import FieldDef, UploadFieldType, parse_field_defs
from dutydesk.export._sql import quote_name
from dutydesk.export.request import SharingMode
from tests.export.store_builder import StoreContent
from tests.export.test_engine import accepted_by, expected_common

STUDY = "s"
SCOPES = ["NO_SHARING", "SPONSORS_AND_PARTNERS", "ALL_QUALIFIED_RESEARCHERS"]

# --- Hostile text and JSON --------------------------------------------------------------------

# Pieces that exercise the sanitiser: markup, script content, entities, every whitespace it
# collapses and some it does not, astral characters (two UTF-16 units), quotes, backslashes.
TEXT_PIECES = [
    "a",
    "Zz",
    "é",
    "😀",
    "𝄞x",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\f",
    "\u00a0",
    "\u2003",
    "&amp;",
    "&lt;b&gt;",
    "&nbsp;",
    "&#10;",
    "&#x1F600;",
    "&bogus;",
    "&",
    "<",
    ">",
    "a < b",
    "<b>",
    "</i>",
    "<p class='x'>",
    '<a href="x>y">',
    "<script>alert(1)</script>",
    "<style>p{}</style>",
    "<!-- c -->",
    "<!--",
    "<br/>",
    "<1>",
    '"',
    "'",
    "\\",
    "null",
    "true",
    "42",
    "0",
    "-",
    ".",
    ",",
]
hostile_text = st.lists(st.sampled_from(TEXT_PIECES), max_size=8).map("".join) | st.text(
    # No NUL: PostgreSQL's text cannot hold it.
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)

# Timestamps: the strict form, the lenient forms, impossible dates and times, offsets.
_year = st.sampled_from(["0000", "0001", "1969", "1970", "2015", "2016", "2100", "9999"])
_month = st.sampled_from(["01", "02", "04", "06", "12", "00", "13"])
_day = st.sampled_from(["01", "09", "28", "29", "30", "31", "00", "32"])
_hour = st.sampled_from(["00", "10", "23", "24"])
_minsec = st.sampled_from(["00", "09", "59", "60"])
_fraction = st.sampled_from(["", ".7", ".76", ".765", ".7654", ",5", ".123456789", "."])
_offset = st.sampled_from(
    ["", "Z", "+0530", "+05:30", "-07", "-0700", "+2359", "+2400", "-00:00", "+05:3", "z"]
)


@st.composite
def timestamp_text(draw: st.DrawFn) -> str:
    """An ISO 8601 text, often valid, often one component out of its range or form."""
    date = draw(_year)
    if draw(st.booleans()):
        date += "-" + draw(_month)
        if draw(st.booleans()):
            date += "-" + draw(_day)
    if not draw(st.booleans()):
        return date
    time = "T" + draw(_hour)
    for _ in range(draw(st.integers(0, 2))):
        time += ":" + draw(_minsec)
    return date + time + draw(_fraction) + draw(_offset)


INT64 = 2**63
# Text long enough to be cut at every limit (48, 100, 128, 250, a field's maxLength).
long_text = st.builds(lambda text, times: text * times, hostile_text, st.integers(1, 60))
json_numbers = (
    st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, INT64 - 1, -INT64, INT64, 2**64 - 1, 2**64, 10**16, -(10**16)])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-13.9, 3.14, 100.0, 1e20, -0.0, 0.5, 9.2e18, 1.7e308, 5e-324, 1e16])
)
json_scalars = (
    st.none() | st.booleans() | json_numbers | hostile_text | long_text | timestamp_text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)

# --- Schemas ----------------------------------------------------------------------------------

_NAME_ALPHABET = string.ascii_letters + string.digits + "_-. é😀'\""
# A few names shared between upload metadata and schemas (a schema's `metadata.<name>` field
# takes the place of the metadata field's column, §5), and names of any shape.
field_names = st.sampled_from(["a", "b", "metadata.a", "metadata.b", "x.csv", ".dot", "dot."]) | (
    st.text(alphabet=_NAME_ALPHABET, min_size=1, max_size=6)
)
answers = (
    st.sampled_from(["Yes", "No", "42", "true", "null", "a, b", "é", " x", "😀"]) | field_names
)


@st.composite
def field_def(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """One field of any type, with the options its type reads."""
    kind = draw(st.sampled_from(list(UploadFieldType)))
    item: dict[str, Any] = {"name": name, "type": kind.value}
    if draw(st.booleans()):
        item["maxLength"] = draw(st.sampled_from([1, 2, 5, 10, 20, 48, 1000, 1001, 9999]))
    if draw(st.booleans()):
        item["unboundedText"] = draw(st.booleans())
    if kind is UploadFieldType.MULTI_CHOICE:
        item["multiChoiceAnswerList"] = draw(st.lists(answers, max_size=4, unique=True))
        item["allowOtherChoices"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        item["fileExtension"] = draw(st.sampled_from([".csv", ".txt", ".json", ".x.y"]))
    return item


@st.composite
def field_list(draw: st.DrawFn, max_size: int) -> list[dict[str, Any]]:
    """Fields with distinct names."""
    names = draw(st.lists(field_names, max_size=max_size, unique=True))
    return [draw(field_def(name)) for name in names]


# --- Cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    """One drawn study and how it is exported."""

    content: StoreContent
    mode: SharingMode
    bad_data: set[str] = field(default_factory=set)  # records whose data text is no JSON
    ensure_ascii: bool = True  # how the store's JSON text was written
    in_files: set[str] = field(default_factory=set)  # attachments kept as files, not inline
    # Each record's userMetadata text as the store gives it back (rawMetadata is that text).
    stored_user_metadata: dict[str, str | None] = field(default_factory=dict)


def _value_for(draw: st.DrawFn, item: dict[str, Any], attachment_ids: list[str]) -> Any:
    """A value for a field: usually of its kind, often hostile."""
    kind = UploadFieldType(item["type"])
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(json_values)
    if kind.value.startswith("ATTACHMENT") or kind is UploadFieldType.LARGE_TEXT_ATTACHMENT:
        return draw(st.sampled_from(attachment_ids))
    if kind is UploadFieldType.TIMESTAMP:
        return draw(timestamp_text() | json_numbers)
    if kind is UploadFieldType.MULTI_CHOICE:
        known = item.get("multiChoiceAnswerList", [])
        pool = st.sampled_from(known) | answers if known else answers
        return draw(st.lists(pool | json_scalars, max_size=4))
    if kind is UploadFieldType.BOOLEAN:
        return draw(st.booleans())
    if kind in (UploadFieldType.INT, UploadFieldType.FLOAT):
        return draw(json_numbers)
    return draw(hostile_text | long_text)


def _document(draw: st.DrawFn, fields: list[dict[str, Any]], ids: list[str]) -> Any:
    """A data or upload-metadata document for `fields`: an object with some of them."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # not an object: no field has a value
    document = {item["name"]: _value_for(draw, item, ids) for item in fields if draw(st.booleans())}
    if draw(st.booleans()):
        document[draw(field_names)] = draw(json_values)  # a key no field names
    return document


@st.composite
def cases(draw: st.DrawFn, *, max_records: int = 8) -> Case:
    """A study with a schema or two, upload metadata, attachments and records."""
    metadata_fields = draw(field_list(3))
    schemas = {("t", 1): draw(field_list(5))}
    if draw(st.booleans()):
        schemas[("t", 2)] = draw(field_list(3))
    for fields in schemas.values():
        try:
            schema_table_columns(parse_field_defs(metadata_fields), parse_field_defs(fields))
        except ValueError:  # duplicate column names: a schema Bridge refused too
            assume(False)
    try:
        default_table_columns(parse_field_defs(metadata_fields))
    except ValueError:
        assume(False)
    attachments: dict[str, bytes] = {}
    for index in range(draw(st.integers(0, 4))):
        text = draw(hostile_text | st.just(""))
        attachments[draw(st.sampled_from([f"att{index}", f"dir/att{index}", f"x{index}.csv"]))] = (
            text.encode()
        )
    names = [item["name"] for fields in schemas.values() for item in fields]
    ids = [*attachments, "missing", *(f"id-{name}" for name in names[:2])]
    participants = {f"hc{n}": draw(st.sampled_from([*SCOPES, "junk"])) for n in range(3)}
    records: list[dict[str, Any]] = []
    bad: set[str] = set()
    for index in range(draw(st.integers(1, max_records))):
        schema = draw(st.sampled_from([*schemas, None, ("gone", 1)]))
        fields = schemas.get(schema, []) if schema else []
        rid = f"r{index}"
        records.append(
            {
                "id": rid,
                "health_code": draw(st.sampled_from([*participants, "stranger"])),
                "schema_id": schema[0] if schema else None,
                "schema_revision": schema[1] if schema else None,
                "uploaded_on": 1000 + index,
                "created_on": draw(
                    st.none()
                    | st.integers(-(2**40), 2**42)
                    | st.sampled_from([10**16, -(10**16), INT64 - 1, -INT64])
                ),
                "created_on_time_zone": draw(st.none() | st.sampled_from(["+0900", "-0700"])),
                # A JSON null would be SQL NULL, which the column refuses.
                "data": _or_empty(_document(draw, fields, ids)),
                "metadata": draw(
                    st.none()
                    | st.fixed_dictionaries(
                        {},
                        optional={"appVersion": json_values, "phoneInfo": json_values},
                    )
                ),
                "user_metadata": None
                if draw(st.booleans())
                else _document(draw, metadata_fields, ids),
                "user_sharing_scope": draw(st.none() | st.sampled_from([*SCOPES, "bogus", ""])),
                "user_external_id": draw(st.none() | hostile_text | long_text),
                "user_data_groups": draw(st.none() | st.lists(hostile_text, max_size=3)),
                "user_substudy_memberships": draw(
                    st.none()
                    | st.dictionaries(
                        hostile_text, st.sampled_from(["<none>", "", "ext", "a=b"]), max_size=3
                    )
                ),
                "validation_errors": draw(st.none() | hostile_text | long_text),
                "day_in_study": draw(st.none() | st.integers(-5, 2**31 - 1)),
                "raw_data_attachment_id": draw(
                    st.none() | st.sampled_from([*ids, "", " ", "\t"]) | hostile_text
                ),
            }
        )
        if draw(st.integers(0, 15)) == 0:
            bad.add(rid)
    return Case(
        content=StoreContent(
            study=STUDY,
            schemas=schemas,
            metadata_fields=metadata_fields,
            id_excluded=draw(st.booleans()),
            participants=participants,
            records=records,
            attachments=dict(attachments),
        ),
        mode=draw(st.sampled_from(list(SharingMode))),
        bad_data=bad,
        ensure_ascii=draw(st.booleans()),
        in_files={a for a in attachments if draw(st.booleans())},
    )


def _or_empty(document: Any) -> Any:
    return {} if document is None else document


# --- The check --------------------------------------------------------------------------------


def read_table(path: str) -> list[dict[str, Any]]:
    """A table file's rows, timestamps as epoch ms (the reference's form)."""
    reader = f"read_parquet('{path}', hive_partitioning = false)"
    relation = duckdb.sql(f"SELECT * FROM {reader}")
    stamps = [n for n, t in zip(relation.columns, relation.types, strict=True) if t == "TIMESTAMP"]
    if stamps:
        replaced = ", ".join(
            f"epoch_ms({quote_name(name)}) AS {quote_name(name)}" for name in stamps
        )
        relation = duckdb.sql(f"SELECT * REPLACE ({replaced}) FROM {reader}")
    names = relation.columns
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def stored_text(value: Any, ensure_ascii: bool) -> str | None:
    """A JSON column's text as the store holds it."""
    return None if value is None else json.dumps(value, ensure_ascii=ensure_ascii)


def _common_record(record: dict[str, Any], case: Case) -> dict[str, Any]:
    """The record as `test_engine`'s reference reads it: JSON columns as text."""
    texts = {
        name: stored_text(record.get(name), case.ensure_ascii)
        for name in ("data", "metadata", "user_metadata", "user_data_groups")
    }
    texts["user_substudy_memberships"] = stored_text(
        record.get("user_substudy_memberships"), case.ensure_ascii
    )
    if record["id"] in case.bad_data:
        texts["data"] = "{not json"
    scope = case.content.participants.get(record["health_code"])
    return record | texts | {"user_scope": scope}


def expected_cell(
    column: Column, record: dict[str, Any], case: Case, fields: dict[str, FieldDef]
) -> Any:
    """The reference value of one cell (timestamps as epoch ms, attachments as file names)."""
    source = column.source
    attachments = case.content.attachments
    if isinstance(source, CommonValue):
        if source.name in ("createdOn", "recordUploadedOn"):
            millis = record["created_on" if source.name == "createdOn" else "uploaded_on"]
            return _values.timestamp_millis(millis)
        return expected_common(source.name, record)
    if isinstance(source, RawData):
        attachment = _values.raw_data_attachment_id(record["raw_data_attachment_id"])
        return _values.attachment_handle(attachment, _content(attachments, attachment))
    if isinstance(source, RawMetadata):
        stored = case.stored_user_metadata.get(record["id"], record["user_metadata"])
        return stored if _parsed(stored) is not None else None
    if isinstance(source, OriginalTable):
        schema, revision = record["schema_id"], record["schema_revision"]
        return original_table(STUDY, schema, revision, case.content.id_excluded)
    assert source is not None
    text = record["data" if source.document is Document.DATA else "user_metadata"]
    cell = field_cell(
        source,
        _parsed(text),
        read_text=lambda a: None if a not in attachments else attachments[a].decode(),  # type: ignore[union-attr]
        read_content=lambda a: _content(attachments, a),
    )
    if isinstance(source, FieldValue) and cell is not None and column.type.name == "ATTACHMENT":
        definition = fields.get(source.field)
        return _values.attachment_file_name(
            source.field,
            definition.type.value if definition else "ATTACHMENT_V2",
            definition.file_extension if definition else None,
            str(cell),
        )
    return cell


def _content(attachments: dict[str, Any], attachment: str | None) -> bytes | None:
    stored = attachments.get(attachment) if attachment is not None else None
    return stored if isinstance(stored, bytes) else None


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return _values.parse_json(text)
    except ValueError:
        return None


def check_export(case: Case, result: StudyResult, warehouse: Path) -> int:
    """Assert the engine's tables and files equal the reference; returns the cells checked."""
    records = {r["id"]: _common_record(r, case) for r in case.content.records}
    accepted = {rid for rid, r in records.items() if accepted_by(r, case.mode)}
    metadata_fields = parse_field_defs(case.content.metadata_fields)
    expected_tables: dict[str, tuple[list[Column], set[str], dict[str, FieldDef]]] = {}
    for (schema, revision), items in case.content.schemas.items():
        fields = parse_field_defs(items)
        rows = {
            rid
            for rid in accepted
            if (records[rid]["schema_id"], records[rid]["schema_revision"]) == (schema, revision)
        }
        if rows:
            columns = schema_table_columns(metadata_fields, fields)
            key = f"{STUDY}-{schema}-v{revision}"
            expected_tables[key] = (columns, rows, {f.name: f for f in fields})
    default_rows = {rid for rid in accepted if records[rid]["schema_id"] is None}
    if default_rows:
        columns = default_table_columns(metadata_fields)
        expected_tables[f"{STUDY}-default"] = (columns, default_rows, {})
    if accepted:
        expected_tables[f"{STUDY}-appVersion"] = (app_version_table_columns(), accepted, {})
    written = {table.key: table for table in result.tables}
    assert sorted(written) == sorted(expected_tables)
    checked = 0
    expected_files: dict[str, bytes] = {}
    for key, (columns, rows, fields) in expected_tables.items():
        table = written[key]
        assert table.error is None and table.path is not None, table.error
        assert [c.name for c in table.columns] == [c.name for c in columns]
        actual_rows = read_table(table.path)
        assert list(actual_rows[0]) == [c.name for c in columns] if actual_rows else True
        by_id = {row["recordId"]: row for row in actual_rows}
        assert len(by_id) == len(actual_rows) == table.rows
        assert set(by_id) == rows, key
        for rid in sorted(rows):
            for column in columns:
                expected = expected_cell(column, records[rid], case, fields)
                actual = by_id[rid][column.name]
                assert actual == expected, (key, rid, column.name, actual, expected)
                checked += 1
                if column.type.name == "ATTACHMENT" and expected is not None:
                    if isinstance(column.source, RawMetadata):
                        continue
                    attachment = (
                        expected
                        if isinstance(column.source, RawData)
                        else _values.attachment_id(_field_value(column, records[rid]))
                    )
                    content = _content(case.content.attachments, attachment)
                    if content:
                        name = f"{STUDY}/{key}/attachments/{str(expected).replace('/', '_')}"
                        expected_files[name] = content
    files = {
        str(path.relative_to(warehouse)): path.read_bytes()
        for path in warehouse.rglob("attachments/*")
        if path.is_file()
    }
    assert files == expected_files
    return checked


def _field_value(column: Column, record: dict[str, Any]) -> Any:
    source = column.source
    assert isinstance(source, FieldValue)
    text = record["data" if source.document is Document.DATA else "user_metadata"]
    document = _parsed(text)
    return document.get(source.field) if isinstance(document, dict) else None
