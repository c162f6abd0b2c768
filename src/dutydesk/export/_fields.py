"""Schema fields (spec §5): Bridge's field types, one field's definition, its max length."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dutydesk.records.models import UploadFieldType

# The record store declares the field types; the export reads them (one list for both).
__all__ = [
    "ATTACHMENT_TYPES",
    "DEFAULT_MAX_LENGTH",
    "LARGETEXT_THRESHOLD",
    "STRING_LIKE_TYPES",
    "FieldDef",
    "UploadFieldType",
    "max_length_for",
    "parse_field_defs",
]


ATTACHMENT_TYPES = frozenset(t for t in UploadFieldType if t.startswith("ATTACHMENT_"))
STRING_LIKE_TYPES = frozenset(
    {
        UploadFieldType.CALENDAR_DATE,
        UploadFieldType.DURATION_V2,
        UploadFieldType.INLINE_JSON_BLOB,
        UploadFieldType.SINGLE_CHOICE,
        UploadFieldType.STRING,
        UploadFieldType.TIME_V2,
    }
)
_TYPE_MAX_LENGTHS = {
    UploadFieldType.CALENDAR_DATE: 10,
    UploadFieldType.DURATION_V2: 24,
    UploadFieldType.TIME_V2: 12,
}
DEFAULT_MAX_LENGTH = 100
LARGETEXT_THRESHOLD = 1000  # a longer STRING column became LARGETEXT in Synapse


@dataclass(frozen=True)
class FieldDef:
    """One field of an upload schema or of a study's upload metadata."""

    name: str
    type: UploadFieldType
    max_length: int | None = None
    unbounded_text: bool = False
    multi_choice_answer_list: tuple[str, ...] = ()
    allow_other_choices: bool = False
    file_extension: str | None = None
    mime_type: str | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, object]) -> FieldDef:
        """Read a field from its Bridge JSON form; other keys (e.g. `required`) are ignored."""
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"Schema field has no name: {dict(item)!r}")
        type_name = item.get("type")
        if not isinstance(type_name, str) or type_name not in UploadFieldType.__members__:
            raise ValueError(f"Schema field {name!r} has unknown type {type_name!r}")
        max_length = item.get("maxLength")
        if max_length is not None and (
            not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
        ):
            raise ValueError(f"Schema field {name!r} has invalid maxLength {max_length!r}")
        answers = item.get("multiChoiceAnswerList") or []
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ValueError(f"Schema field {name!r} has invalid multiChoiceAnswerList")
        return cls(
            name=name,
            type=UploadFieldType[type_name],
            max_length=max_length,
            unbounded_text=_flag(item, "unboundedText", name),
            multi_choice_answer_list=tuple(answers),
            allow_other_choices=_flag(item, "allowOtherChoices", name),
            file_extension=_optional_text(item, "fileExtension", name),
            mime_type=_optional_text(item, "mimeType", name),
        )


def _flag(item: Mapping[str, object], key: str, name: str) -> bool:
    value = item.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"Schema field {name!r} has non-boolean {key} {value!r}")
    return value is True


def _optional_text(item: Mapping[str, object], key: str, name: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"Schema field {name!r} has non-string {key} {value!r}")
    return value or None


def parse_field_defs(items: Iterable[Mapping[str, object]]) -> list[FieldDef]:
    """Read a schema's (or a study's upload-metadata) `fields` list."""
    return [FieldDef.from_json(item) for item in items]


def max_length_for(field: FieldDef) -> int:
    """The field's maxLength, else 10/24/12 for CALENDAR_DATE/DURATION_V2/TIME_V2, else 100."""
    if field.max_length is not None:
        return field.max_length
    return _TYPE_MAX_LENGTHS.get(field.type, DEFAULT_MAX_LENGTH)
