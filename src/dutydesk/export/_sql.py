"""Each exported column as one DuckDB expression over a record row: the vectorized engine.

The expressions follow `_values` exactly (tests compare them cell by cell). Common values take
a fast path in SQL; the rare hard cases (markup or entities to clean, a text cut that would
split a surrogate pair, a timestamp outside the strict ISO form, JSON re-printed as text) go to
Python functions registered as vectorized UDFs, called only for the rows that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from dutydesk.export import _values
from dutydesk.export._columns import (
    ChoiceSelected,
    Column,
    ColumnType,
    CommonValue,
    Conversion,
    Document,
    FieldSource,
    FieldValue,
    OriginalTable,
    OtherChoices,
    RawData,
    RawMetadata,
    TimestampMillis,
    TimestampZone,
)

# HTML's whitespace plus NBSP, as `_values.collapse_whitespace`.
_SPACE_RUN = "[\t\n\f\r \u00a0]+"
# ISO timestamps the SQL cast reads exactly as `_values.parse_timestamp` does (anything else
# goes to the Python parser): the local stamp, then its zone, `Z` or `+hh:mm` or `+hhmm`, which
# ends the text. Year 0000, which the cast would read as 1 BC, is left to the Python parser,
# which rejects it. A day past its month's end (2016-02-30) matches, and the cast rejects it.
# No capture groups: a match alone runs on RE2's DFA, and the zone is the text's last 1, 5 or
# 6 characters.
_STRICT_TIMESTAMP = (
    r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,3})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$"
)
# What `_values.parse_timestamp` reads at all: a text outside it is no timestamp, and the ones
# inside it but outside `_STRICT_TIMESTAMP` go to the Python parser.
_ISO_TIMESTAMP = _values.ISO_TIMESTAMP_PATTERN
# `_values.JAVA_WHITESPACE` as an RE2 class body: a rawData id of only these is blank.
_JAVA_WHITESPACE = "".join(f"\\x{{{ord(char):x}}}" for char in _values.JAVA_WHITESPACE)
DOCUMENT_COLUMNS = {Document.DATA: "data", Document.USER_METADATA: "user_metadata"}
PARQUET_TYPES = {
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.INTEGER: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.STRING: "VARCHAR",
    ColumnType.TIMESTAMP: "TIMESTAMP",
    ColumnType.ATTACHMENT: "VARCHAR",
}


def store_type(connection: duckdb.DuckDBPyConnection) -> str:
    """The kind of the record store attached as `rs`: `sqlite` or `postgres`."""
    row = connection.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = 'rs'"
    ).fetchone()
    return str(row[0]) if row else ""


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_name(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def json_path(field: str) -> str:
    """The JSON path of a top-level key, whatever characters it holds."""
    return "$." + '"' + field.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _per_distinct(texts: pa.Array, convert: Callable[[str], Any], kind: pa.DataType) -> pa.Array:
    """`convert` of each text, called once per distinct text: the values that reach these
    fallbacks repeat (templated answers, device lists, a phone's clock format)."""
    distinct = pc.unique(texts)
    converted = pa.array(
        [None if text is None else convert(text) for text in distinct.to_pylist()], kind
    )
    return pc.take(converted, pc.index_in(texts, distinct))


def _sanitize_arrow(texts: pa.Array, limits: pa.Array) -> pa.Array:
    distinct_limits = pc.unique(limits).to_pylist()
    if len(distinct_limits) == 1:  # a column's limit is one constant
        [limit] = distinct_limits
        return _per_distinct(texts, lambda text: _values.sanitize(text, limit), pa.string())
    return pa.array(
        [
            None if text is None else _values.sanitize(text, limit)
            for text, limit in zip(texts.to_pylist(), limits.to_pylist(), strict=True)
        ],
        pa.string(),
    )


def _timestamp_arrow(texts: pa.Array) -> pa.Array:
    def millis(text: str) -> int | None:
        parsed = _values.parse_timestamp(text)
        return None if parsed is None else parsed[0]

    return _per_distinct(texts, millis, pa.int64())


def _timezone_arrow(texts: pa.Array) -> pa.Array:
    def zone(text: str) -> str | None:
        parsed = _values.parse_timestamp(text)
        return None if parsed is None else parsed[1]

    return _per_distinct(texts, zone, pa.string())


def _json_text_arrow(texts: pa.Array) -> pa.Array:
    return _per_distinct(
        texts, lambda text: _values.compact_json(_values.parse_json(text)), pa.string()
    )


def _read_text_arrow(paths: pa.Array) -> pa.Array:
    texts = []
    for path in paths.to_pylist():
        try:
            texts.append(None if path is None else Path(path).read_text(errors="replace"))
        except OSError:
            texts.append(None)  # a missing file reads as no text, as a missing S3 object did
    return pa.array(texts, pa.string())


def install(connection: duckdb.DuckDBPyConnection) -> None:
    """Register the Python fallbacks and the SQL macros the column expressions use.

    A macro's argument is pasted wherever the body names it, so an argument that is itself an
    expression would be computed once per mention. `dd_let(value, x -> body)` computes `value`
    once and binds it to `x` (a one-element `list_transform`): `dd_clean` uses it, while
    `dd_clean_column` and the macros over a field's parts take columns, which cost nothing to
    mention again.
    """
    udfs: list[tuple[str, Callable[..., pa.Array], list[str], str]] = [
        ("dd_sanitize_py", _sanitize_arrow, ["VARCHAR", "BIGINT"], "VARCHAR"),
        ("dd_timestamp_py", _timestamp_arrow, ["VARCHAR"], "BIGINT"),
        ("dd_timezone_py", _timezone_arrow, ["VARCHAR"], "VARCHAR"),
        ("dd_json_text_py", _json_text_arrow, ["VARCHAR"], "VARCHAR"),
        ("dd_read_text_py", _read_text_arrow, ["VARCHAR"], "VARCHAR"),
    ]
    for name, function, parameters, returns in udfs:
        connection.create_function(  # type: ignore[call-overload]
            name,
            function,
            parameters,
            returns,
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    connection.execute(
        f"""
        CREATE OR REPLACE MACRO dd_let(value, body) AS list_transform([value], body)[1];
        CREATE OR REPLACE MACRO dd_cut(s, n) AS CASE
            WHEN s IS NULL OR n IS NULL OR strlen(s) <= n THEN s
            WHEN NOT regexp_matches(s, '[\\x{{10000}}-\\x{{10FFFF}}]') THEN left(s, n)
            WHEN 2 * length(s) <= n THEN s
            ELSE dd_sanitize_py(s, n) END;
        CREATE OR REPLACE MACRO dd_clean_column(x, n) AS CASE
            WHEN x IS NULL THEN NULL
            WHEN NOT regexp_matches(x, '[<&\\t\\n\\f\\r\\x{{a0}}]|  |^ | $') THEN dd_cut(x, n)
            WHEN NOT regexp_matches(x, '[<&\\t\\n\\f\\r\\x{{a0}}]|  ')
                THEN dd_let(trim(x, ' '), c -> dd_cut(c, n))
            WHEN contains(x, '<') OR contains(x, '&') THEN dd_sanitize_py(x, n)
            ELSE dd_let(trim(regexp_replace(x, '{_SPACE_RUN}', ' ', 'g'), ' '), c -> dd_cut(c, n))
            END;
        CREATE OR REPLACE MACRO dd_clean(s, n) AS dd_let(s, x -> dd_clean_column(x, n));
        CREATE OR REPLACE MACRO dd_raw_data(a) AS CASE
            WHEN regexp_matches(a, '[^{_JAVA_WHITESPACE}]') THEN a END;
        CREATE OR REPLACE MACRO dd_attachment_file(a, field, prefix, suffix) AS CASE
            WHEN a IS NULL THEN NULL WHEN ends_with(a, field) THEN a
            ELSE prefix || a || suffix END;
        CREATE OR REPLACE MACRO dd_text(t, s) AS CASE
            WHEN t IS NULL OR t = 'NULL' THEN NULL
            WHEN t IN ('VARCHAR', 'BOOLEAN', 'BIGINT', 'UBIGINT') THEN s
            ELSE dd_json_text_py(s) END;
        CREATE OR REPLACE MACRO dd_choices(v) AS
            list_transform(CAST(v AS JSON[]), e -> CASE json_type(e)
                WHEN 'VARCHAR' THEN e ->> '$'
                WHEN 'BOOLEAN' THEN e::VARCHAR
                WHEN 'BIGINT' THEN e::VARCHAR
                WHEN 'UBIGINT' THEN e::VARCHAR
                WHEN 'NULL' THEN 'null'
                ELSE dd_json_text_py(e::VARCHAR) END);
        CREATE OR REPLACE MACRO dd_choice_list(t, s) AS CASE WHEN t = 'ARRAY' THEN CASE
            WHEN list_bool_and(list_transform(json_type(s, '$[*]'), e -> e = 'VARCHAR'))
            THEN s ->> '$[*]'
            ELSE dd_choices(s) END END;
        CREATE OR REPLACE MACRO dd_ms_in_range(ms) AS CASE
            WHEN ms BETWEEN {_values.TIMESTAMP_MS_MIN} AND {_values.TIMESTAMP_MS_MAX} THEN ms END;
        CREATE OR REPLACE MACRO dd_stamp(t, s) AS CASE WHEN t = 'VARCHAR' THEN CASE
            WHEN regexp_full_match(s, '{_STRICT_TIMESTAMP}')
                THEN struct_pack(strict := true, ms := epoch_ms(TRY_CAST(s AS TIMESTAMPTZ)))
            ELSE struct_pack(strict := false, ms := NULL::BIGINT) END END;
        CREATE OR REPLACE MACRO dd_ts_ms(t, s, m) AS CASE
            WHEN t = 'VARCHAR' THEN CASE
                WHEN m.strict THEN m.ms
                WHEN regexp_full_match(s, '{_ISO_TIMESTAMP}') THEN dd_timestamp_py(s) END
            WHEN t IN ('BIGINT', 'UBIGINT') THEN dd_ms_in_range(TRY_CAST(s AS BIGINT))
            WHEN t = 'DOUBLE'
                THEN dd_ms_in_range(TRY_CAST(trunc(TRY_CAST(s AS DOUBLE)) AS BIGINT)) END;
        CREATE OR REPLACE MACRO dd_ts_tz(t, s, m) AS CASE
            WHEN t = 'VARCHAR' THEN CASE
                WHEN NOT m.strict THEN CASE
                    WHEN regexp_full_match(s, '{_ISO_TIMESTAMP}') THEN dd_timezone_py(s) END
                WHEN m.ms IS NULL THEN NULL
                WHEN ends_with(s, 'Z') THEN '+0000'
                WHEN substr(s, -3, 1) = ':' THEN replace(right(s, 6), ':', '')
                ELSE right(s, 5) END
            WHEN t IN ('BIGINT', 'UBIGINT', 'DOUBLE')
                AND dd_ts_ms(t, s, m) IS NOT NULL THEN '+0000' END;
        """
    )


def install_attachment_text(connection: duckdb.DuckDBPyConnection) -> None:
    """The macro reading an attachment's text out of the connection's `attachment_store` view
    (a macro of the connection: each connection's view holds its own made attachments)."""
    connection.execute(
        """
        CREATE OR REPLACE TEMP MACRO dd_attachment_text(a) AS (
            SELECT CASE WHEN content IS NOT NULL THEN decode(content)
                        ELSE dd_read_text_py(path) END
            FROM attachment_store WHERE id = a);
        """
    )


AttachmentName = Callable[[Column], tuple[str, str]]


def field_paths(columns: Iterable[Column]) -> dict[tuple[Document, str], int]:
    """Each (document, field) the columns read, numbered for one parse per document."""
    numbered: dict[tuple[Document, str], int] = {}
    for column in columns:
        source = column.source
        if isinstance(source, FieldSource):
            key = (source.document, source.field)
            numbered.setdefault(key, len([k for k in numbered if k[0] is source.document]) + 1)
    return numbered


def _field(source: FieldSource, paths: dict[tuple[Document, str], int], part: str) -> str:
    """The column holding `part` of a field's value: its JSON `type`, its `text` (a string's
    value, any other value's JSON), its `choices`, its `stamp` or its `string`."""
    index = paths[(source.document, source.field)]
    return quote_name(f"{DOCUMENT_COLUMNS[source.document]}.{index}.{part}")


def _document_lists(paths: dict[tuple[Document, str], int]) -> list[str]:
    """Select items parsing each document twice in all, whatever the number of its fields:
    once for the JSON types of the fields, once for their texts."""
    items = []
    for document, column in DOCUMENT_COLUMNS.items():
        fields = sorted((index, field) for (doc, field), index in paths.items() if doc is document)
        if fields:
            listed = ", ".join(quote_literal(json_path(field)) for _, field in fields)
            kind = f"{column}_type"  # worked out once per record in `scored`
            for function, part in (("json_type", "types"), ("json_extract_string", "texts")):
                items.append(
                    f"CASE WHEN {kind} = 'OBJECT' THEN {function}({column}, [{listed}]) END "
                    f"AS {quote_name(f'{column}.{part}')}"
                )
    return items


def _field_columns(paths: dict[tuple[Document, str], int]) -> list[str]:
    """Each field's type and text as columns of their own, out of the documents' lists."""
    items = []
    for (document, _field_name), index in sorted(paths.items(), key=lambda item: item[1]):
        column = DOCUMENT_COLUMNS[document]
        for part, listed in (("type", "types"), ("text", "texts")):
            items.append(
                f"{quote_name(f'{column}.{listed}')}[{index}] "
                f"AS {quote_name(f'{column}.{index}.{part}')}"
            )
    return items


def _field_parts(columns: Iterable[Column], paths: dict[tuple[Document, str], int]) -> list[str]:
    """What several columns of one field share, worked out once: the selected choices of a
    multi-choice field, the matched parts of a timestamp, a string's text."""
    parts: dict[str, str] = {}
    for column in columns:
        source = column.source
        if not isinstance(source, FieldSource):
            continue
        kind, text = _field(source, paths, "type"), _field(source, paths, "text")
        if isinstance(source, ChoiceSelected | OtherChoices):
            parts[_field(source, paths, "choices")] = f"dd_choice_list({kind}, {text})"
        elif isinstance(source, TimestampMillis | TimestampZone):
            parts[_field(source, paths, "stamp")] = f"dd_stamp({kind}, {text})"
        elif source.conversion is Conversion.STRING:
            parts[_field(source, paths, "string")] = f"dd_text({kind}, {text})"
    return [f"{expression} AS {name}" for name, expression in parts.items()]


def _field_expression(
    source: FieldValue, paths: dict[tuple[Document, str], int], column: Column
) -> str:
    kind, text = _field(source, paths, "type"), _field(source, paths, "text")
    match source.conversion:
        case Conversion.BOOLEAN:
            return f"CASE WHEN {kind} = 'BOOLEAN' THEN {text} = 'true' END"
        case Conversion.DOUBLE:
            number = f"TRY_CAST({text} AS DOUBLE)"
            return (
                f"CASE WHEN {kind} IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') "
                f"AND isfinite({number}) THEN {number} END"
            )
        case Conversion.INTEGER:
            return (
                f"CASE WHEN {kind} IN ('BIGINT', 'UBIGINT', 'HUGEINT') "
                f"THEN TRY_CAST({text} AS BIGINT) "
                f"WHEN {kind} = 'DOUBLE' "
                f"THEN TRY_CAST(trunc(TRY_CAST({text} AS DOUBLE)) AS BIGINT) END"
            )
        case Conversion.STRING:
            limit = "NULL" if source.max_length is None else str(source.max_length)
            return f"dd_clean_column({_field(source, paths, 'string')}, {limit})"
        case Conversion.ATTACHMENT | Conversion.LARGE_TEXT:
            attachment = f"CASE WHEN {kind} = 'VARCHAR' THEN {text} END"
            if source.conversion is Conversion.LARGE_TEXT:
                return f"dd_clean(dd_attachment_text({attachment}), NULL)"
            return attachment
    raise ValueError(f"column {column.name!r}: unknown conversion {source.conversion}")


# Common values that cost something to compute, worked out once per accepted record when the
# records are scored (those that depend on one column with few distinct values once per
# value) and kept in `scored`; the column expressions read them as columns.
PRECOMPUTED_COMMON: dict[str, str] = {
    "appVersion": "CASE WHEN json_type(metadata, '$.appVersion') = 'VARCHAR' "
    "THEN dd_clean(metadata ->> '$.appVersion', 48) END",
    "phoneInfo": "CASE WHEN json_type(metadata, '$.phoneInfo') = 'VARCHAR' "
    "THEN dd_clean(metadata ->> '$.phoneInfo', 48) END",
    "externalId": "dd_clean_column(user_external_id, 128)",
    "validationErrors": "dd_clean_column(validation_errors, NULL)",
    # No groups is None; a group named "" is joined like any other (`_values.data_groups`).
    "dataGroups": "CASE WHEN json_type(user_data_groups) = 'ARRAY' "
    "AND json_array_length(user_data_groups) > 0 THEN array_to_string("
    "list_sort(list_distinct(CAST(user_data_groups AS VARCHAR[]))), ',') END",
    "substudyMemberships": "CASE WHEN json_type(user_substudy_memberships) = 'OBJECT' "
    "AND len(json_keys(user_substudy_memberships)) > 0 THEN '|' || array_to_string(list_sort("
    "list_transform(map_entries(TRY_CAST(user_substudy_memberships AS MAP(VARCHAR, VARCHAR))), "
    "e -> e.key || '=' || CASE WHEN e.value = '<none>' THEN '' ELSE coalesce(e.value, '') END)"
    "), '|') || '|' END",
}


# The record columns read by nothing but a common value worked out per record: `scored` keeps
# the value, not the column.
COMMON_READ_ONCE = ("user_external_id", "validation_errors")


# The common values that depend on one column only, with the column: they are worked out once
# per distinct value of it (app versions, phones and data groups repeat across a study).
COMMON_BY_DISTINCT: dict[str, str] = {
    "appVersion": "metadata",
    "phoneInfo": "metadata",
    "dataGroups": "user_data_groups",
    "substudyMemberships": "user_substudy_memberships",
}


def precomputed_column(name: str) -> str:
    """The column of `scored` (and of a table's rows) holding common value `name`."""
    return quote_name(f"common.{name}")


def common_lookups() -> dict[str, list[str]]:
    """The common values worked out per distinct value, by the column they depend on."""
    lookups: dict[str, list[str]] = {}
    for name, column in COMMON_BY_DISTINCT.items():
        lookups.setdefault(column, []).append(name)
    return lookups


COMMON_EXPRESSIONS: dict[str, str] = {
    "recordId": "id",
    "uploadDate": "$export_date",
    "healthCode": "health_code",
    "createdOn": "TRY_CAST(epoch_ms(dd_ms_in_range(created_on)) AS TIMESTAMP)",
    "createdOnTimeZone": "created_on_time_zone",
    "userSharingScope": "user_sharing_scope",
    **{name: precomputed_column(name) for name in PRECOMPUTED_COMMON},
    "dayInStudy": "day_in_study",
    "recordUploadedOn": "TRY_CAST(epoch_ms(dd_ms_in_range(uploaded_on)) AS TIMESTAMP)",
}
# The record columns each kind of column reads, carried from `scored` into a table's rows.
_SCORED_COLUMNS: dict[str, tuple[str, ...]] = {
    "recordId": ("id",),
    "healthCode": ("health_code",),
    "createdOn": ("created_on",),
    "createdOnTimeZone": ("created_on_time_zone",),
    "userSharingScope": ("user_sharing_scope",),
    "dayInStudy": ("day_in_study",),
    "recordUploadedOn": ("uploaded_on",),
    RawData.kind: ("raw_data_attachment_id",),
    RawMetadata.kind: ("user_metadata", "user_metadata_type"),
    OriginalTable.kind: ("schema_id", "schema_revision"),
}


def _carried(columns: Iterable[Column]) -> list[str]:
    """The `scored` columns the columns read: record columns and common values."""
    carried: dict[str, None] = {}
    for column in columns:
        source = column.source
        if isinstance(source, CommonValue):
            if source.name in PRECOMPUTED_COMMON:
                carried[precomputed_column(source.name)] = None
            names = _SCORED_COLUMNS.get(source.name, ())
        else:
            names = _SCORED_COLUMNS.get(source.kind, ()) if source is not None else ()
        carried.update(dict.fromkeys(names))
    return [f"scored.{name}" for name in carried]


def table_rows(
    columns: list[Column],
    where: str,
    *,
    attachment_name: AttachmentName | None = None,
    select: Callable[[list[Column], dict[tuple[Document, str], int]], str] | None = None,
) -> str:
    """The SELECT of a table's rows out of `scored`: its columns, named and typed.

    The scored rows `where` holds are read once into `rows_of` (materialized when it parses
    a document) with only what the columns need: record columns, common values, and each
    document parsed twice for all its fields' types and texts. Each field's shared parts are
    then worked out once, and each column is a cheap expression over them. `select` makes
    another SELECT over the same parts.
    """
    paths = field_paths(columns)
    items = _carried(columns) + _document_lists(paths) or ["scored.id"]
    # Materialized so that the documents are parsed once, whatever reads them; a table that
    # reads no document (the summary table) streams straight from `scored`.
    materialized = "MATERIALIZED" if paths else "NOT MATERIALIZED"
    stages = [f"rows_of AS {materialized} (SELECT {', '.join(items)} FROM scored WHERE {where})"]
    last = "rows_of"
    for name, stage_items in (
        ("fields_of", _field_columns(paths)),
        ("parts_of", _field_parts(columns, paths)),
    ):
        if stage_items:
            stages.append(f"{name} AS (SELECT *, {', '.join(stage_items)} FROM {last})")
            last = name
    if select is None:
        body = ",\n".join(
            column_expression(column, paths, attachment_name=attachment_name) for column in columns
        )
        select_sql = f"SELECT {body} FROM {last}"
    else:
        select_sql = select(columns, paths).replace("$rows", last)
    return f"WITH {', '.join(stages)} {select_sql}"


def attachment_columns(columns: Iterable[Column]) -> list[Column]:
    """The columns naming a stored attachment: attachment fields and `rawData`."""
    return [
        column
        for column in columns
        if (
            isinstance(column.source, FieldValue)
            and column.source.conversion is Conversion.ATTACHMENT
        )
        or isinstance(column.source, RawData)
    ]


def attachment_pairs(
    columns: list[Column], where: str, attachment_name: AttachmentName
) -> str | None:
    """A SELECT of the distinct (column name, attachment id, exported file name) triples a
    table's rows refer to, ordered by name; None when the table has no attachment column."""
    wanted = attachment_columns(columns)
    if not wanted:
        return None

    def pairs(chosen: list[Column], paths: dict[tuple[Document, str], int]) -> str:
        selects = []
        for column in chosen:
            source = column.source
            if isinstance(source, FieldValue):
                attachment = _field_expression(source, paths, column)
                named = column_value(column, paths, attachment_name=attachment_name)
            else:
                attachment = named = "dd_raw_data(raw_data_attachment_id)"
            selects.append(
                f"SELECT {quote_literal(column.name)} AS col, {attachment} AS id, "
                f"{named} AS name FROM $rows"
            )
        return (
            f"SELECT DISTINCT col, id, name FROM ({' UNION ALL '.join(selects)}) "
            "WHERE id IS NOT NULL ORDER BY name, col"
        )

    return table_rows(wanted, where, select=pairs)


def column_expression(
    column: Column,
    paths: dict[tuple[Document, str], int],
    *,
    attachment_name: AttachmentName | None = None,
) -> str:
    """The SQL expression of one exported column, cast to its Parquet type, named as it."""
    value = column_value(column, paths, attachment_name=attachment_name)
    return f"{value} AS {quote_name(column.name)}"


def column_value(
    column: Column,
    paths: dict[tuple[Document, str], int],
    *,
    attachment_name: AttachmentName | None = None,
) -> str:
    """The SQL expression of one exported column's value, cast to its Parquet type."""
    source = column.source
    if isinstance(source, CommonValue):
        expression = COMMON_EXPRESSIONS[source.name]
    elif isinstance(source, FieldValue):
        expression = _field_expression(source, paths, column)
        if source.conversion is Conversion.ATTACHMENT and attachment_name is not None:
            prefix, suffix = attachment_name(column)
            expression = _named_attachment(expression, source.field, prefix, suffix)
    elif isinstance(source, ChoiceSelected):
        choices = _field(source, paths, "choices")
        expression = f"list_contains({choices}, {quote_literal(source.answer)})"
    elif isinstance(source, OtherChoices):
        answers = ", ".join(quote_literal(answer) for answer in source.answers) or "NULL"
        leftovers = (
            f"list_sort(list_distinct(list_filter("
            f"{_field(source, paths, 'choices')}, e -> NOT list_contains([{answers}], e))))"
        )
        # No leftover choice is no cell; a leftover choice "" is an empty one (spec §6).
        expression = (
            f"dd_let({leftovers}, o -> CASE WHEN len(o) > 0 THEN array_to_string(o, ', ') END)"
        )
    elif isinstance(source, TimestampMillis | TimestampZone):
        parts = ", ".join(_field(source, paths, part) for part in ("type", "text", "stamp"))
        if isinstance(source, TimestampMillis):
            expression = f"TRY_CAST(epoch_ms(dd_ts_ms({parts})) AS TIMESTAMP)"
        else:
            expression = f"dd_ts_tz({parts})"
    elif isinstance(source, RawData):
        expression = "dd_raw_data(raw_data_attachment_id)"
    elif isinstance(source, RawMetadata):
        expression = "CASE WHEN user_metadata_type NOT IN ('NULL') THEN user_metadata::VARCHAR END"
    elif isinstance(source, OriginalTable):
        expression = "dd_original_table(schema_id, schema_revision)"
    else:
        raise ValueError(f"column {column.name!r} has no source to export")
    return f"CAST({expression} AS {PARQUET_TYPES[column.type]})"


def _named_attachment(attachment: str, field: str, prefix: str, suffix: str) -> str:
    """The exported file name of an attachment (spec §7), built from its constant parts."""
    return (
        f"dd_attachment_file({attachment}, {quote_literal(field)}, "
        f"{quote_literal(prefix)}, {quote_literal(suffix)})"
    )
