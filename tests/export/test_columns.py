"""The table and column plan: spec §5, §8, §10 and vectors 5, 8, 9, 12, 14, 20."""

from __future__ import annotations

from typing import Any

import pytest

from dutydesk.export._cells import field_cell
from dutydesk.export._columns import (
    COMMON_COLUMNS,
    ChoiceSelected,
    Column,
    ColumnType,
    CommonValue,
    Conversion,
    Document,
    FieldValue,
    OriginalTable,
    OtherChoices,
    RawData,
    RawMetadata,
    TimestampMillis,
    TimestampZone,
    app_version_table_columns,
    app_version_table_key,
    column_type_for_synapse,
    columns_for_field,
    default_table_columns,
    default_table_key,
    original_table,
    safe_file_stem,
    schema_table_columns,
    schema_table_key,
    schema_table_name,
    status_table_columns,
    status_table_key,
)
from dutydesk.export._fields import FieldDef, UploadFieldType, max_length_for, parse_field_defs
from dutydesk.export._migration import compatible_change, plan_migration

COMMON_NAMES = [
    "recordId",
    "appVersion",
    "phoneInfo",
    "uploadDate",
    "healthCode",
    "externalId",
    "dataGroups",
    "createdOn",
    "createdOnTimeZone",
    "userSharingScope",
    "validationErrors",
    "substudyMemberships",
    "dayInStudy",
    "recordUploadedOn",
]


def field(name: str, type_name: str, **extra: Any) -> FieldDef:
    return FieldDef.from_json({"name": name, "type": type_name, **extra})


def names(columns: list[Column]) -> list[str]:
    return [column.name for column in columns]


# --- Field definitions -----------------------------------------------------------------------


def test_field_def_reads_every_bridge_key() -> None:
    parsed = FieldDef.from_json(
        {
            "name": "delicious",
            "type": "MULTI_CHOICE",
            "required": True,
            "maxLength": 30,
            "unboundedText": False,
            "multiChoiceAnswerList": ["Yes", "No"],
            "allowOtherChoices": True,
            "fileExtension": ".txt",
            "mimeType": "text/plain",
        }
    )
    assert parsed == FieldDef(
        name="delicious",
        type=UploadFieldType.MULTI_CHOICE,
        max_length=30,
        unbounded_text=False,
        multi_choice_answer_list=("Yes", "No"),
        allow_other_choices=True,
        file_extension=".txt",
        mime_type="text/plain",
    )


def test_field_def_defaults_for_missing_and_null_keys() -> None:
    parsed = FieldDef.from_json({"name": "foo", "type": "STRING", "unboundedText": None})
    assert parsed == FieldDef("foo", UploadFieldType.STRING)


def test_field_def_with_unknown_type_names_it() -> None:
    with pytest.raises(ValueError, match="Schema field 'foo' has unknown type 'GEOPOINT'"):
        FieldDef.from_json({"name": "foo", "type": "GEOPOINT"})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "STRING"}, "has no name"),
        ({"name": "", "type": "STRING"}, "has no name"),
        ({"name": "foo"}, "unknown type None"),
        ({"name": "foo", "type": "STRING", "maxLength": "20"}, "invalid maxLength '20'"),
        ({"name": "foo", "type": "STRING", "maxLength": 0}, "invalid maxLength 0"),
        ({"name": "foo", "type": "STRING", "maxLength": True}, "invalid maxLength True"),
        ({"name": "foo", "type": "STRING", "unboundedText": "yes"}, "non-boolean unboundedText"),
        ({"name": "m", "type": "MULTI_CHOICE", "multiChoiceAnswerList": [1]}, "AnswerList"),
        ({"name": "m", "type": "MULTI_CHOICE", "multiChoiceAnswerList": "a"}, "AnswerList"),
        ({"name": "a", "type": "ATTACHMENT_V2", "mimeType": 3}, "non-string mimeType"),
    ],
)
def test_field_def_rejects_malformed_json(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FieldDef.from_json(item)


def test_parse_field_defs_keeps_order() -> None:
    parsed = parse_field_defs([{"name": "b", "type": "INT"}, {"name": "a", "type": "FLOAT"}])
    assert [f.name for f in parsed] == ["b", "a"]


# --- Max lengths and one field's columns: vectors 20 (lengths), 5 -----------------------------


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("CALENDAR_DATE", 10),
        ("DURATION_V2", 24),
        ("TIME_V2", 12),
        ("STRING", 100),
        ("SINGLE_CHOICE", 100),
        ("INLINE_JSON_BLOB", 100),
    ],
)
def test_max_length_by_type(type_name: str, expected: int) -> None:
    assert max_length_for(field("f", type_name)) == expected


def test_explicit_max_length_wins() -> None:
    assert max_length_for(field("f", "STRING", maxLength=256)) == 256
    assert max_length_for(field("f", "CALENDAR_DATE", maxLength=256)) == 256


@pytest.mark.parametrize(
    ("type_name", "column_type", "conversion"),
    [
        ("ATTACHMENT_BLOB", ColumnType.ATTACHMENT, Conversion.ATTACHMENT),
        ("ATTACHMENT_CSV", ColumnType.ATTACHMENT, Conversion.ATTACHMENT),
        ("ATTACHMENT_JSON_BLOB", ColumnType.ATTACHMENT, Conversion.ATTACHMENT),
        ("ATTACHMENT_JSON_TABLE", ColumnType.ATTACHMENT, Conversion.ATTACHMENT),
        ("ATTACHMENT_V2", ColumnType.ATTACHMENT, Conversion.ATTACHMENT),
        ("BOOLEAN", ColumnType.BOOLEAN, Conversion.BOOLEAN),
        ("FLOAT", ColumnType.DOUBLE, Conversion.DOUBLE),
        ("INT", ColumnType.INTEGER, Conversion.INTEGER),
        ("LARGE_TEXT_ATTACHMENT", ColumnType.STRING, Conversion.LARGE_TEXT),
    ],
)
def test_single_column_field_types(
    type_name: str, column_type: ColumnType, conversion: Conversion
) -> None:
    assert columns_for_field(field("f", type_name)) == [
        Column("f", column_type, None, FieldValue(Document.DATA, "f", conversion))
    ]


@pytest.mark.parametrize(
    ("extra", "size", "limit"),
    [
        ({}, 100, 100),
        ({"maxLength": 20}, 20, 20),
        ({"maxLength": 1000}, 1000, 1000),
        ({"maxLength": 1001}, None, 1001),  # LARGETEXT column, still cut to 1001
        ({"maxLength": 9999}, None, 9999),
        ({"unboundedText": True}, None, None),
        ({"unboundedText": True, "maxLength": 20}, None, None),
    ],
)
def test_string_field_column_size_and_cut(
    extra: dict[str, Any], size: int | None, limit: int | None
) -> None:
    (column,) = columns_for_field(field("f", "STRING", **extra))
    assert column == Column(
        "f", ColumnType.STRING, size, FieldValue(Document.DATA, "f", Conversion.STRING, limit)
    )


def test_calendar_date_column_is_string_10() -> None:
    (column,) = columns_for_field(field("d", "CALENDAR_DATE"))
    assert (column.type, column.max_length, column.synapse_type) == (
        ColumnType.STRING,
        10,
        "STRING",
    )


def test_timestamp_field_gives_date_and_timezone_columns() -> None:
    assert columns_for_field(field("t", "TIMESTAMP")) == [
        Column("t", ColumnType.TIMESTAMP, None, TimestampMillis(Document.DATA, "t")),
        Column("t.timezone", ColumnType.STRING, 5, TimestampZone(Document.DATA, "t")),
    ]


def test_multi_choice_field_gives_one_boolean_per_answer_and_other() -> None:
    columns = columns_for_field(
        field("d", "MULTI_CHOICE", multiChoiceAnswerList=["Yes", "No"], allowOtherChoices=True)
    )
    assert columns == [
        Column("d.Yes", ColumnType.BOOLEAN, None, ChoiceSelected(Document.DATA, "d", "Yes")),
        Column("d.No", ColumnType.BOOLEAN, None, ChoiceSelected(Document.DATA, "d", "No")),
        Column("d.other", ColumnType.STRING, None, OtherChoices(Document.DATA, "d", ("Yes", "No"))),
    ]
    assert columns[2].synapse_type == "LARGETEXT"


def test_metadata_prefix_names_the_column_but_not_the_source_key() -> None:
    (column,) = columns_for_field(field("foo", "INT"), "metadata.", Document.USER_METADATA)
    assert column.name == "metadata.foo"
    assert column.source == FieldValue(Document.USER_METADATA, "foo", Conversion.INTEGER)


def test_every_field_type_has_columns() -> None:
    for type_name in UploadFieldType:
        extra = {"multiChoiceAnswerList": ["a"]} if type_name == "MULTI_CHOICE" else {}
        assert columns_for_field(field("f", type_name, **extra))


# --- Field cells: vector 5 -------------------------------------------------------------------


def test_field_cells_follow_the_value_rules() -> None:
    def cell(type_name: str, value: Any, **extra: Any) -> Any:
        (column,) = columns_for_field(field("f", type_name, **extra))
        assert isinstance(column.source, FieldValue)
        return field_cell(column.source, {"f": value})

    assert cell("BOOLEAN", True) is True
    assert cell("BOOLEAN", "true") is None
    assert cell("FLOAT", 3.14) == 3.14
    assert cell("INT", -13.9) == -13
    assert cell("STRING", '<a href="sagebase.org">link</a>') == "link"
    assert cell("STRING", "asdf\njkl;\tlorem ipsum dolor", maxLength=10) == "asdf jkl; "
    assert cell("STRING", "x" * 2000, maxLength=1500) == "x" * 1500
    assert cell("STRING", "x" * 2000, unboundedText=True) == "x" * 2000
    assert cell("ATTACHMENT_V2", 1234567890) is None
    assert cell("ATTACHMENT_V2", "att-1") == "att-1"


def test_large_text_attachment_cell_is_the_sanitised_file_text() -> None:
    (column,) = columns_for_field(field("notes", "LARGE_TEXT_ATTACHMENT"))
    assert isinstance(column.source, FieldValue)
    files = {"att-1": "This is my <b>large text</b> attachment"}
    assert field_cell(column.source, {"notes": "att-1"}, files.get) == (
        "This is my large text attachment"
    )
    assert field_cell(column.source, {"notes": 42}, files.get) is None
    with pytest.raises(ValueError, match="pass read_text"):
        field_cell(column.source, {"notes": "att-1"})


def test_field_cells_of_a_document_that_is_not_an_object_are_empty() -> None:
    source = FieldValue(Document.DATA, "f", Conversion.STRING, 10)
    assert field_cell(source, ["f"]) is None
    assert field_cell(source, None) is None
    assert field_cell(source, {}) is None


# --- Common columns and the other tables -----------------------------------------------------


def test_common_columns_in_bridge_order_then_record_uploaded_on() -> None:
    assert [c.name for c in COMMON_COLUMNS] == COMMON_NAMES
    assert all(c.source == CommonValue(c.name) for c in COMMON_COLUMNS)


def test_common_column_types() -> None:
    shapes = {c.name: (c.type, c.max_length) for c in COMMON_COLUMNS}
    assert shapes == {
        "recordId": (ColumnType.STRING, 36),
        "appVersion": (ColumnType.STRING, 48),
        "phoneInfo": (ColumnType.STRING, 48),
        "uploadDate": (ColumnType.STRING, 10),
        "healthCode": (ColumnType.STRING, 36),
        "externalId": (ColumnType.STRING, 128),
        "dataGroups": (ColumnType.STRING, 250),
        "createdOn": (ColumnType.TIMESTAMP, None),
        "createdOnTimeZone": (ColumnType.STRING, 5),
        "userSharingScope": (ColumnType.STRING, 48),
        "validationErrors": (ColumnType.STRING, None),
        "substudyMemberships": (ColumnType.STRING, 250),
        "dayInStudy": (ColumnType.INTEGER, None),
        "recordUploadedOn": (ColumnType.TIMESTAMP, None),
    }


def test_default_table_has_metadata_then_raw_columns() -> None:
    columns = default_table_columns([field("foo", "INT"), field("when", "TIMESTAMP")])
    assert names(columns) == [
        *COMMON_NAMES,
        "metadata.foo",
        "metadata.when",
        "metadata.when.timezone",
        "rawData",
        "rawMetadata",
    ]
    assert columns[-2].source == RawData()
    assert columns[-1].source == RawMetadata()
    assert columns[-1].type is ColumnType.ATTACHMENT


def test_app_version_table_adds_original_table() -> None:
    columns = app_version_table_columns()
    assert names(columns) == [*COMMON_NAMES, "originalTable"]
    assert columns[-1] == Column("originalTable", ColumnType.STRING, 128, OriginalTable())


def test_status_table_has_only_upload_date() -> None:
    assert status_table_columns() == [
        Column("uploadDate", ColumnType.STRING, 10, CommonValue("uploadDate"))
    ]


# --- Vector 8: the schema table header -------------------------------------------------------

VECTOR_8_SCHEMA: list[dict[str, Any]] = [
    {"name": "foo", "type": "STRING", "maxLength": 20},
    {"name": "foooo", "type": "STRING", "maxLength": 9999},
    {"name": "unbounded-foo", "type": "STRING", "unboundedText": True},
    {"name": "bar", "type": "INT"},
    {"name": "submitTime", "type": "TIMESTAMP"},
    {
        "name": "sports",
        "type": "MULTI_CHOICE",
        "multiChoiceAnswerList": ["fencing", "football", "running", "swimming"],
    },
    {
        "name": "delicious",
        "type": "MULTI_CHOICE",
        "multiChoiceAnswerList": ["Yes", "No"],
        "allowOtherChoices": True,
    },
    {"name": "my-large-text-attachment", "type": "LARGE_TEXT_ATTACHMENT"},
]


def test_schema_table_header_matches_vector_8_exactly() -> None:
    columns = schema_table_columns([], parse_field_defs(VECTOR_8_SCHEMA))
    assert names(columns) == [
        *COMMON_NAMES,
        "foo",
        "foooo",
        "unbounded-foo",
        "bar",
        "submitTime",
        "submitTime.timezone",
        "sports.fencing",
        "sports.football",
        "sports.running",
        "sports.swimming",
        "delicious.Yes",
        "delicious.No",
        "delicious.other",
        "my-large-text-attachment",
        "rawData",
        "rawMetadata",
    ]
    labels = {c.name: c.type_label for c in columns}
    assert [labels[n] for n in ("foo", "foooo", "unbounded-foo", "bar", "submitTime")] == [
        "STRING(20)",
        "LARGETEXT",
        "LARGETEXT",
        "INTEGER",
        "DATE",
    ]


def test_schema_table_multi_choice_cells_of_vector_8() -> None:
    columns = schema_table_columns([], parse_field_defs(VECTOR_8_SCHEMA))
    data = {"sports": ["fencing", "running"], "delicious": ["Yes", "No", "Maybe"]}
    wanted = [c for c in columns if c.name.startswith(("sports.", "delicious."))]
    cells = [field_cell(c.source, data) for c in wanted]  # type: ignore[arg-type]
    assert cells == [True, False, True, False, True, True, "Maybe"]


# --- Vector 9: metadata merged with the schema -----------------------------------------------

VECTOR_9_STUDY_FIELDS: list[dict[str, Any]] = [
    {
        "name": "choose-one",
        "type": "MULTI_CHOICE",
        "multiChoiceAnswerList": ["A", "B", "C"],
        "allowOtherChoices": True,
    },
    {"name": "when", "type": "TIMESTAMP"},
    {"name": "foo", "type": "INT"},
    {"name": "bar", "type": "INT"},
]
VECTOR_9_SCHEMA: list[dict[str, Any]] = [
    {"name": "metadata.bar", "type": "STRING", "maxLength": 12},
    {"name": "record.foo", "type": "STRING"},
    {"name": "record.baz", "type": "STRING"},
]


def test_metadata_columns_of_vector_9_in_order_with_schema_taking_a_shared_name() -> None:
    columns = schema_table_columns(
        parse_field_defs(VECTOR_9_STUDY_FIELDS), parse_field_defs(VECTOR_9_SCHEMA)
    )
    assert names(columns) == [
        *COMMON_NAMES,
        "metadata.choose-one.A",
        "metadata.choose-one.B",
        "metadata.choose-one.C",
        "metadata.choose-one.other",
        "metadata.when",
        "metadata.when.timezone",
        "metadata.foo",
        "metadata.bar",
        "record.foo",
        "record.baz",
        "rawData",
        "rawMetadata",
    ]
    bar = next(c for c in columns if c.name == "metadata.bar")
    assert bar.type_label == "STRING(12)"
    assert bar.source == FieldValue(Document.DATA, "metadata.bar", Conversion.STRING, 12)


def test_metadata_row_of_vector_9_takes_the_schema_value_for_a_shared_name() -> None:
    columns = schema_table_columns(
        parse_field_defs(VECTOR_9_STUDY_FIELDS), parse_field_defs(VECTOR_9_SCHEMA)
    )
    documents = {
        Document.USER_METADATA: {
            "choose-one": ["C", "None of the above"],
            "when": "2017-09-20T16:57:24.130+0900",
            "foo": 37,
            "bar": 42,
        },
        Document.DATA: {"metadata.bar": "metadata-bar"},
    }
    wanted = [c for c in columns if c.name.startswith("metadata.")]
    cells = [
        field_cell(c.source, documents[c.source.document])  # type: ignore[union-attr, arg-type]
        for c in wanted
    ]
    assert cells == [
        False,
        False,
        True,
        "None of the above",
        1505894244130,
        "+0900",
        37,
        "metadata-bar",
    ]


def test_schema_table_rejects_duplicate_column_names() -> None:
    schema = [
        field("a", "MULTI_CHOICE", multiChoiceAnswerList=["b"]),
        field("a.b", "BOOLEAN"),
    ]
    with pytest.raises(ValueError, match=r"duplicate names: a\.b"):
        schema_table_columns([], schema)


# --- Table keys and names: vectors 12, 14 ----------------------------------------------------


def test_table_keys() -> None:
    assert schema_table_key("test-study", "test-schema", 5) == "test-study-test-schema-v5"
    assert default_table_key("test-study") == "test-study-default"
    assert app_version_table_key("my-study") == "my-study-appVersion"
    assert status_table_key("my-study") == "my-study-status"
    assert schema_table_name("my-schema", 1) == "my-schema-v1"


def test_original_table_is_the_schema_key() -> None:
    assert original_table("my-study", "my-schema", 1, False) == "my-study-my-schema-v1"


def test_original_table_without_study_when_study_id_excluded() -> None:
    assert original_table("my-study", "my-schema", 1, True) == "my-schema-v1"


def test_original_table_without_schema_is_the_default_table() -> None:
    assert original_table("my-study", None, None, False) == "Default Health Data Record Table"
    assert original_table("my-study", "my-schema", None, True) == "Default Health Data Record Table"


def test_safe_file_stem_keeps_letters_digits_underscore_and_dash() -> None:
    stem = safe_file_stem("CAPITAL_lowercase_remove+ .!@#$between_123_with-dash")
    assert stem == "CAPITAL_lowercase_removebetween_123_with-dash"


# --- Synapse types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("synapse_type", "size", "expected"),
    [
        ("FILEHANDLEID", None, (ColumnType.ATTACHMENT, None)),
        ("BOOLEAN", None, (ColumnType.BOOLEAN, None)),
        ("DOUBLE", None, (ColumnType.DOUBLE, None)),
        ("INTEGER", None, (ColumnType.INTEGER, None)),
        ("LARGETEXT", None, (ColumnType.STRING, None)),
        ("STRING", 20, (ColumnType.STRING, 20)),
        ("DATE", None, (ColumnType.TIMESTAMP, None)),
    ],
)
def test_synapse_types_map_to_our_kinds_and_back(
    synapse_type: str, size: int | None, expected: tuple[ColumnType, int | None]
) -> None:
    assert column_type_for_synapse(synapse_type, size) == expected
    assert Column("c", *expected).synapse_type == synapse_type


def test_unknown_synapse_type_and_sizeless_string_are_errors() -> None:
    with pytest.raises(ValueError, match="Unknown Synapse column type 'LINK'"):
        column_type_for_synapse("LINK", None)
    with pytest.raises(ValueError, match="maximum size"):
        column_type_for_synapse("STRING", None)


def test_max_length_only_on_a_string_column() -> None:
    with pytest.raises(ValueError, match="needs a STRING"):
        Column("c", ColumnType.INTEGER, 20)
    with pytest.raises(ValueError, match="needs a STRING"):
        Column("c", ColumnType.STRING, 0)


# --- Vector 20: compatible column changes ------------------------------------------------------


def col(type_label: str, name: str = "c") -> Column:
    if type_label.startswith("STRING("):
        return Column(name, ColumnType.STRING, int(type_label[7:-1]))
    synapse = type_label
    column_type, size = column_type_for_synapse(synapse, None)
    return Column(name, column_type, size)


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("INTEGER", "DOUBLE", True),
        ("DOUBLE", "INTEGER", False),
        ("STRING(10)", "STRING(20)", True),
        ("STRING(20)", "STRING(10)", False),
        ("STRING(15)", "STRING(15)", True),
        ("DOUBLE", "STRING(21)", False),
        ("DOUBLE", "STRING(22)", True),
        ("DOUBLE", "STRING(23)", True),
        ("INTEGER", "STRING(19)", False),
        ("INTEGER", "STRING(20)", True),
        ("INTEGER", "STRING(21)", True),
        ("INTEGER", "LARGETEXT", True),
        ("DOUBLE", "LARGETEXT", True),
        ("LARGETEXT", "LARGETEXT", True),
        ("STRING(10)", "LARGETEXT", True),
        ("LARGETEXT", "STRING(1000)", False),
        ("INTEGER", "DATE", True),
        ("DATE", "INTEGER", True),
        ("DATE", "DOUBLE", True),
        ("DATE", "STRING(30)", False),
        ("DOUBLE", "DATE", False),
        ("BOOLEAN", "INTEGER", False),
        ("BOOLEAN", "STRING(10)", False),
        ("FILEHANDLEID", "STRING(100)", False),
        ("STRING(10)", "FILEHANDLEID", False),
        ("BOOLEAN", "BOOLEAN", True),
    ],
)
def test_compatible_column_changes(old: str, new: str, allowed: bool) -> None:
    assert compatible_change(col(old), col(new)) is allowed


def test_renamed_column_is_incompatible() -> None:
    assert compatible_change(col("INTEGER", "a"), col("INTEGER", "b")) is False


# --- Migration plans -------------------------------------------------------------------------


def test_same_columns_in_another_order_is_a_noop() -> None:
    old = [col("INTEGER", "a"), col("STRING(10)", "b")]
    plan = plan_migration("s-t-v1", old, list(reversed(old)))
    assert plan.is_noop
    assert plan.error is None


def test_added_and_widened_columns_are_planned_in_desired_order() -> None:
    old = [col("INTEGER", "a"), col("STRING(10)", "b")]
    new = [col("DOUBLE", "a"), col("STRING(20)", "b"), col("BOOLEAN", "c")]
    plan = plan_migration("s-t-v1", old, new)
    assert plan.added == (new[2],)
    assert plan.changed == ((old[0], new[0]), (old[1], new[1]))
    assert plan.error is None
    assert not plan.is_noop
    assert plan.columns == tuple(new)


def test_deleted_columns_are_an_error_naming_them() -> None:
    old = [col("INTEGER", "a"), col("INTEGER", "b"), col("INTEGER", "c")]
    plan = plan_migration("study-schema-v3", old, [old[1]])
    assert plan.deleted == ("a", "c")
    assert plan.error == "Table study-schema-v3 has deleted columns: a, c"


def test_incompatible_columns_are_an_error_naming_them() -> None:
    old = [col("DOUBLE", "a"), col("STRING(20)", "b")]
    new = [col("INTEGER", "a"), col("STRING(10)", "b")]
    plan = plan_migration("study-schema-v3", old, new)
    assert plan.incompatible == ("a", "b")
    assert plan.error == "Table study-schema-v3 has incompatible modified columns: a, b"


def test_deleted_and_incompatible_columns_are_both_reported() -> None:
    old = [col("DOUBLE", "a"), col("INTEGER", "gone")]
    plan = plan_migration("k", old, [col("BOOLEAN", "a")])
    assert plan.errors == (
        "Table k has deleted columns: gone",
        "Table k has incompatible modified columns: a",
    )
    assert plan.error == (
        "Table k has deleted columns: gone; Table k has incompatible modified columns: a"
    )


def test_migration_ignores_sources() -> None:
    old = [Column("a", ColumnType.INTEGER)]
    new = [
        Column("a", ColumnType.INTEGER, None, FieldValue(Document.DATA, "a", Conversion.INTEGER))
    ]
    assert plan_migration("k", old, new).is_noop


def test_schema_revision_adding_a_field_plans_only_the_new_columns() -> None:
    before = schema_table_columns([], [field("foo", "STRING", maxLength=20)])
    after = schema_table_columns(
        [], [field("foo", "STRING", maxLength=40), field("when", "TIMESTAMP")]
    )
    plan = plan_migration("s-t-v1", before, after)
    assert [c.name for c in plan.added] == ["when", "when.timezone"]
    assert [new.name for _, new in plan.changed] == ["foo"]
    assert plan.error is None
