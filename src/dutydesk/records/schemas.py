"""API shapes of the record store."""

from __future__ import annotations

from pydantic import BaseModel


class RecordStoredOut(BaseModel):
    """A record just stored: its id and what the validator found wrong with its values."""

    id: str
    validation_errors: str | None


class AttachmentStoredOut(BaseModel):
    """An attachment just stored."""

    id: str
    size: int
    md5: str


class StudyOut(BaseModel):
    """A study, its export settings and how many records it holds."""

    id: str
    name: str
    project: str | None
    data_access_team: str | None
    configured: bool
    disable_export: bool
    uses_custom_export_schedule: bool
    study_id_excluded_in_export: bool
    records: int
