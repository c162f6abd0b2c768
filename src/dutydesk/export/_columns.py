"""The table and column plan (spec §5, §8): which tables a study exports and their columns.

Each `Column` carries a typed kind for Parquet (DESIGN.md §6: typed columns instead of
Synapse string cells) and a `source` saying how its value is produced from a record, so an
engine can turn every column into one expression over the record row. `_values` holds the
reference semantics of each kind of source.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from dutydesk.export._fields import (
    ATTACHMENT_TYPES,
    LARGETEXT_THRESHOLD,
    STRING_LIKE_TYPES,
    FieldDef,
    UploadFieldType,
    max_length_for,
)

# --- Columns and where their values come from -------------------------------------------------


class ColumnType(enum.Enum):
    """The typed kind of an exported column and its Parquet type.

    BOOLEAN: bool. INTEGER: int64. DOUBLE: float64. STRING: UTF-8 text; its `max_length` is
    the Synapse STRING size, None for what Synapse called LARGETEXT. TIMESTAMP: timestamp in
    ms, UTC (Synapse DATE). ATTACHMENT: UTF-8 reference to an exported file (FILEHANDLEID).
    """

    BOOLEAN = "BOOLEAN"
    INTEGER = "INTEGER"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    TIMESTAMP = "TIMESTAMP"
    ATTACHMENT = "ATTACHMENT"


_FROM_SYNAPSE = {
    "FILEHANDLEID": ColumnType.ATTACHMENT,
    "BOOLEAN": ColumnType.BOOLEAN,
    "DOUBLE": ColumnType.DOUBLE,
    "INTEGER": ColumnType.INTEGER,
    "LARGETEXT": ColumnType.STRING,
    "STRING": ColumnType.STRING,
    "DATE": ColumnType.TIMESTAMP,
}
_TO_SYNAPSE = {t: name for name, t in _FROM_SYNAPSE.items() if name not in ("LARGETEXT", "STRING")}


def column_type_for_synapse(
    synapse_type: str, maximum_size: int | None
) -> tuple[ColumnType, int | None]:
    """Our (kind, max_length) for a Synapse column type and size; LARGETEXT is STRING(None)."""
    if synapse_type not in _FROM_SYNAPSE:
        raise ValueError(f"Unknown Synapse column type {synapse_type!r}")
    if synapse_type == "STRING":
        if maximum_size is None:
            raise ValueError("A Synapse STRING column needs a maximum size")
        return ColumnType.STRING, maximum_size
    return _FROM_SYNAPSE[synapse_type], None


class Document(enum.StrEnum):
    """The JSON document of a record a field's value is read from (record attribute names)."""

    DATA = "data"  # the record's data: schema fields
    USER_METADATA = "userMetadata"  # the study's upload-metadata fields


class Conversion(enum.StrEnum):
    """How one JSON value becomes one cell (functions of `_values`)."""

    BOOLEAN = "boolean"  # to_boolean
    DOUBLE = "double"  # to_double
    INTEGER = "integer"  # to_integer
    STRING = "string"  # to_string_like, cut to the source's max_length
    ATTACHMENT = "attachment"  # attachment_id
    LARGE_TEXT = "large_text_attachment"  # attachment_id, then its text sanitised, no limit


@dataclass(frozen=True)
class CommonValue:
    """A common column (§8), computed from record attributes; `name` is the column name."""

    kind: ClassVar[str] = "common"
    name: str


@dataclass(frozen=True)
class FieldValue:
    """`conversion` of `document[field]`; `max_length` only for STRING (None: no limit)."""

    kind: ClassVar[str] = "field"
    document: Document
    field: str
    conversion: Conversion
    max_length: int | None = None


@dataclass(frozen=True)
class ChoiceSelected:
    """Whether `answer` is among the selections of multi-choice `document[field]`."""

    kind: ClassVar[str] = "multi"
    document: Document
    field: str
    answer: str


@dataclass(frozen=True)
class OtherChoices:
    """The selections of multi-choice `document[field]` outside `answers`, joined."""

    kind: ClassVar[str] = "multi_other"
    document: Document
    field: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class TimestampMillis:
    """The instant of TIMESTAMP field `document[field]` (epoch ms of `to_timestamp`)."""

    kind: ClassVar[str] = "timestamp"
    document: Document
    field: str


@dataclass(frozen=True)
class TimestampZone:
    """The `±HHMM` offset of TIMESTAMP field `document[field]`."""

    kind: ClassVar[str] = "timestamp_tz"
    document: Document
    field: str


@dataclass(frozen=True)
class RawData:
    """The record's `rawDataAttachmentId` file, when not blank."""

    kind: ClassVar[str] = "raw_data"


@dataclass(frozen=True)
class RawMetadata:
    """The record's `userMetadata`, exported as the file `rawMetadata.json` when not blank."""

    kind: ClassVar[str] = "raw_metadata"


@dataclass(frozen=True)
class OriginalTable:
    """The table a record's data row went to (`original_table`), in the appVersion table."""

    kind: ClassVar[str] = "original_table"


Source = (
    CommonValue
    | FieldValue
    | ChoiceSelected
    | OtherChoices
    | TimestampMillis
    | TimestampZone
    | RawData
    | RawMetadata
    | OriginalTable
)
FieldSource = FieldValue | ChoiceSelected | OtherChoices | TimestampMillis | TimestampZone


@dataclass(frozen=True)
class Column:
    """One exported column; `source` is None only for a column read back from a stored table."""

    name: str
    type: ColumnType
    max_length: int | None = None
    source: Source | None = None

    def __post_init__(self) -> None:
        if self.max_length is not None and (
            self.type is not ColumnType.STRING or self.max_length < 1
        ):
            raise ValueError(f"Column {self.name!r}: max_length {self.max_length} needs a STRING")

    @property
    def synapse_type(self) -> str:
        """The Synapse column type this column stands for (STRING(None) is LARGETEXT)."""
        if self.type is ColumnType.STRING:
            return "LARGETEXT" if self.max_length is None else "STRING"
        return _TO_SYNAPSE[self.type]

    @property
    def type_label(self) -> str:
        """The Synapse type with its size, for messages: `STRING(20)`, `LARGETEXT`, `DATE`."""
        if self.synapse_type == "STRING":
            return f"STRING({self.max_length})"
        return self.synapse_type


TIMEZONE_SUFFIX = ".timezone"
TIMEZONE_LENGTH = 5
OTHER_SUFFIX = ".other"
METADATA_PREFIX = "metadata."


def columns_for_field(
    field: FieldDef, prefix: str = "", document: Document = Document.DATA
) -> list[Column]:
    """The columns of one field (§5), named `<prefix><field name>[.<answer>|.other|.timezone]`."""
    name = prefix + field.name
    t = field.type
    if t is UploadFieldType.MULTI_CHOICE:
        columns = [
            Column(
                f"{name}.{answer}",
                ColumnType.BOOLEAN,
                None,
                ChoiceSelected(document, field.name, answer),
            )
            for answer in field.multi_choice_answer_list
        ]
        if field.allow_other_choices:
            other = OtherChoices(document, field.name, field.multi_choice_answer_list)
            columns.append(Column(name + OTHER_SUFFIX, ColumnType.STRING, None, other))
        return columns
    if t is UploadFieldType.TIMESTAMP:
        return [
            Column(name, ColumnType.TIMESTAMP, None, TimestampMillis(document, field.name)),
            Column(
                name + TIMEZONE_SUFFIX,
                ColumnType.STRING,
                TIMEZONE_LENGTH,
                TimestampZone(document, field.name),
            ),
        ]
    if t in STRING_LIKE_TYPES:
        limit = None if field.unbounded_text else max_length_for(field)
        size = None if limit is None or limit > LARGETEXT_THRESHOLD else limit
        source = FieldValue(document, field.name, Conversion.STRING, limit)
        return [Column(name, ColumnType.STRING, size, source)]
    column_type, conversion = _SINGLE_COLUMN_TYPES[t]
    return [Column(name, column_type, None, FieldValue(document, field.name, conversion))]


_SINGLE_COLUMN_TYPES: dict[UploadFieldType, tuple[ColumnType, Conversion]] = {
    **{t: (ColumnType.ATTACHMENT, Conversion.ATTACHMENT) for t in ATTACHMENT_TYPES},
    UploadFieldType.BOOLEAN: (ColumnType.BOOLEAN, Conversion.BOOLEAN),
    UploadFieldType.FLOAT: (ColumnType.DOUBLE, Conversion.DOUBLE),
    UploadFieldType.INT: (ColumnType.INTEGER, Conversion.INTEGER),
    UploadFieldType.LARGE_TEXT_ATTACHMENT: (ColumnType.STRING, Conversion.LARGE_TEXT),
}


# --- Tables ----------------------------------------------------------------------------------


def _common(name: str, column_type: ColumnType, max_length: int | None = None) -> Column:
    return Column(name, column_type, max_length, CommonValue(name))


# Bridge's order (§8), then our recordUploadedOn: the record's own upload time, which
# uploadDate (the day the export ran, kept for its Bridge meaning) never was.
COMMON_COLUMNS: tuple[Column, ...] = (
    _common("recordId", ColumnType.STRING, 36),  # id
    _common("appVersion", ColumnType.STRING, 48),  # metadata.appVersion, sanitised
    _common("phoneInfo", ColumnType.STRING, 48),  # metadata.phoneInfo, sanitised
    _common("uploadDate", ColumnType.STRING, 10),  # the export's run date, yyyy-MM-dd
    _common("healthCode", ColumnType.STRING, 36),  # healthCode, raw
    _common("externalId", ColumnType.STRING, 128),  # userExternalId, sanitised
    _common("dataGroups", ColumnType.STRING, 250),  # userDataGroups, sorted, joined
    _common("createdOn", ColumnType.TIMESTAMP),  # createdOn (epoch ms)
    _common("createdOnTimeZone", ColumnType.STRING, 5),  # raw
    _common("userSharingScope", ColumnType.STRING, 48),  # raw: the record's, not effective
    _common("validationErrors", ColumnType.STRING),  # sanitised, no limit
    _common("substudyMemberships", ColumnType.STRING, 250),  # |k=v|...|
    _common("dayInStudy", ColumnType.INTEGER),  # dayInStudy
    _common("recordUploadedOn", ColumnType.TIMESTAMP),  # uploadedOn (epoch ms); ours
)
RAW_DATA_COLUMN = Column("rawData", ColumnType.ATTACHMENT, None, RawData())
RAW_METADATA_COLUMN = Column("rawMetadata", ColumnType.ATTACHMENT, None, RawMetadata())
ORIGINAL_TABLE_COLUMN = Column("originalTable", ColumnType.STRING, 128, OriginalTable())
UPLOAD_DATE_COLUMN = COMMON_COLUMNS[3]

DEFAULT_TABLE_NAME = "Default Health Data Record Table"
APP_VERSION_TABLE_NAME = "Health Data Summary Table"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _checked(columns: list[Column]) -> list[Column]:
    # Synapse refused such a table and a Parquet file cannot hold it either; Bridge's schema
    # validation kept them out, so meeting one means the schema or study config needs fixing.
    # Names that differ only in ASCII case are duplicates too: DuckDB (and Spark) read column
    # names without case, and would rename the second (`A` as `A_1`).
    seen: set[str] = set()
    duplicates: list[str] = []
    for column in columns:
        folded = column.name.translate(_ASCII_LOWER)
        if folded in seen:
            duplicates.append(column.name)
        seen.add(folded)
    if duplicates:
        raise ValueError(f"Columns would have duplicate names: {', '.join(duplicates)}")
    return columns


def metadata_columns(metadata_fields: Iterable[FieldDef], skip: Iterable[str] = ()) -> list[Column]:
    """Columns of the study's upload-metadata fields as `metadata.<name>`, except names in skip."""
    skipped = set(skip)
    return [
        column
        for field in metadata_fields
        if METADATA_PREFIX + field.name not in skipped
        for column in columns_for_field(field, METADATA_PREFIX, Document.USER_METADATA)
    ]


def schema_table_columns(
    study_upload_metadata_fields: Iterable[FieldDef], schema_fields: Iterable[FieldDef]
) -> list[Column]:
    """Common, metadata.* (unless the schema has that name), schema fields, rawData, rawMetadata."""
    schema = list(schema_fields)
    metadata = metadata_columns(study_upload_metadata_fields, skip=(f.name for f in schema))
    fields = [column for field in schema for column in columns_for_field(field)]
    return _checked([*COMMON_COLUMNS, *metadata, *fields, RAW_DATA_COLUMN, RAW_METADATA_COLUMN])


def default_table_columns(metadata_fields: Iterable[FieldDef]) -> list[Column]:
    """The table of records without a schema: common, metadata.*, rawData, rawMetadata."""
    metadata = metadata_columns(metadata_fields)
    return _checked([*COMMON_COLUMNS, *metadata, RAW_DATA_COLUMN, RAW_METADATA_COLUMN])


def app_version_table_columns() -> list[Column]:
    """The appVersion ("Health Data Summary") table: common columns and originalTable."""
    return [*COMMON_COLUMNS, ORIGINAL_TABLE_COLUMN]


def status_table_columns() -> list[Column]:
    """The status table: only uploadDate, one row per study and export run."""
    return [UPLOAD_DATE_COLUMN]


def schema_table_key(study: str, schema: str, revision: int) -> str:
    """`<study>-<schema>-v<rev>`: the key of a schema's table (and of the table whitelist)."""
    return f"{study}-{schema}-v{revision}"


def default_table_key(study: str) -> str:
    """`<study>-default`: the key of the table of records without a schema."""
    return f"{study}-default"


def app_version_table_key(study: str) -> str:
    """`<study>-appVersion`: the key of the appVersion table."""
    return f"{study}-appVersion"


def status_table_key(study: str) -> str:
    """`<study>-status`: the key (and Synapse name) of the status table."""
    return f"{study}-status"


def schema_table_name(schema: str, revision: int) -> str:
    """`<schema>-v<rev>`: the Synapse name of a schema's table."""
    return f"{schema}-v{revision}"


def original_table(
    study: str, schema_id: str | None, revision: int | None, study_id_excluded: bool
) -> str:
    """The originalTable cell: the default table's name, `<schema>-v<rev>`, or the full key."""
    if schema_id is None or revision is None:
        return DEFAULT_TABLE_NAME
    if study_id_excluded:
        return schema_table_name(schema_id, revision)
    return schema_table_key(study, schema_id, revision)


def safe_file_stem(table_key: str) -> str:
    """The table key without characters outside [A-Za-z0-9_-], as Bridge named its TSV files."""
    return re.sub(r"[^A-Za-z0-9_-]", "", table_key)
