"""Tables of the record store: the study data the nightly export reads.

The table and column names are an interface: users load their data straight into them, so
they keep Bridge's meaning (see `docs/records.md`). Times are epoch milliseconds (UTC) in
BIGINT columns, as Bridge keeps them, which DuckDB scans without conversion.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dutydesk.db import NAMING_CONVENTION


class RecordsBase(DeclarativeBase):
    """Declarative base of the record store (separate from the ops database's `Base`)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # None is stored as SQL NULL, not the JSON text `null`, so `IS NULL` finds absent values.
    type_annotation_map = {
        dict[str, Any]: JSON(none_as_null=True),
        list[Any]: JSON(none_as_null=True),
        str: String(),
    }


class SharingScope(enum.StrEnum):
    """How widely a participant lets their data be shared, from narrowest to widest.

    NO_SHARING: nobody outside the study. SPONSORS_AND_PARTNERS: the study's sponsors and
    partners. ALL_QUALIFIED_RESEARCHERS: any qualified researcher.
    """

    NO_SHARING = "NO_SHARING"
    SPONSORS_AND_PARTNERS = "SPONSORS_AND_PARTNERS"
    ALL_QUALIFIED_RESEARCHERS = "ALL_QUALIFIED_RESEARCHERS"


class UploadFieldType(enum.StrEnum):
    """The type of one schema field, with Bridge's names."""

    ATTACHMENT_BLOB = "ATTACHMENT_BLOB"
    ATTACHMENT_CSV = "ATTACHMENT_CSV"
    ATTACHMENT_JSON_BLOB = "ATTACHMENT_JSON_BLOB"
    ATTACHMENT_JSON_TABLE = "ATTACHMENT_JSON_TABLE"
    ATTACHMENT_V2 = "ATTACHMENT_V2"
    BOOLEAN = "BOOLEAN"
    FLOAT = "FLOAT"
    INT = "INT"
    LARGE_TEXT_ATTACHMENT = "LARGE_TEXT_ATTACHMENT"
    CALENDAR_DATE = "CALENDAR_DATE"
    DURATION_V2 = "DURATION_V2"
    TIME_V2 = "TIME_V2"
    INLINE_JSON_BLOB = "INLINE_JSON_BLOB"
    SINGLE_CHOICE = "SINGLE_CHOICE"
    STRING = "STRING"
    MULTI_CHOICE = "MULTI_CHOICE"
    TIMESTAMP = "TIMESTAMP"


class Study(RecordsBase):
    """A study (Bridge app); one without a `project` is unconfigured and not exported."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    disable_export: Mapped[bool] = mapped_column(default=False)
    uses_custom_export_schedule: Mapped[bool] = mapped_column(default=False)
    study_id_excluded_in_export: Mapped[bool] = mapped_column(default=False)
    upload_metadata_fields: Mapped[list[Any]] = mapped_column(default=list)
    data_access_team: Mapped[str | None]
    project: Mapped[str | None]


class Schema(RecordsBase):
    """One revision of an upload schema: the ordered field definitions of its records."""

    __tablename__ = "schemas"

    study_id: Mapped[str] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    schema_id: Mapped[str] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    fields: Mapped[list[Any]]


class Participant(RecordsBase):
    """A participant of a study and the sharing scope they hold now."""

    __tablename__ = "participants"

    study_id: Mapped[str] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    health_code: Mapped[str] = mapped_column(primary_key=True)
    sharing_scope: Mapped[str]


class Record(RecordsBase):
    """One health data record (Bridge's HealthDataRecord3), as uploaded."""

    __tablename__ = "records"
    # No foreign keys: the validator checks study and schema, and bulk loads stay fast.
    __table_args__ = (Index("ix_records_study_id_uploaded_on", "study_id", "uploaded_on"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    study_id: Mapped[str]
    health_code: Mapped[str]
    schema_id: Mapped[str | None]
    schema_revision: Mapped[int | None]
    uploaded_on: Mapped[int] = mapped_column(BigInteger)
    created_on: Mapped[int | None] = mapped_column(BigInteger)
    created_on_time_zone: Mapped[str | None]
    data: Mapped[dict[str, Any]]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON(none_as_null=True))
    user_metadata: Mapped[dict[str, Any] | None]
    user_sharing_scope: Mapped[str | None]
    user_external_id: Mapped[str | None]
    user_data_groups: Mapped[list[Any] | None]
    user_substudy_memberships: Mapped[dict[str, Any] | None]
    validation_errors: Mapped[str | None] = mapped_column(Text)
    day_in_study: Mapped[int | None]
    raw_data_attachment_id: Mapped[str | None]


class Attachment(RecordsBase):
    """A file a record refers to by id: its bytes inline in `content` or at `path`."""

    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(primary_key=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    path: Mapped[str | None]
    content_type: Mapped[str]
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str]
