"""The reference cell of a field column: what the engine must produce for one record."""

from __future__ import annotations

from collections.abc import Callable

from dutydesk.export._columns import (
    ChoiceSelected,
    Conversion,
    FieldSource,
    FieldValue,
    OtherChoices,
    TimestampMillis,
    TimestampZone,
)
from dutydesk.export._values import (
    JsonValue,
    attachment_handle,
    attachment_id,
    sanitize,
    to_boolean,
    to_double,
    to_integer,
    to_multi_choice,
    to_string_like,
    to_timestamp,
)

Cell = bool | int | float | str | None


def field_cell(
    source: FieldSource,
    document: JsonValue,
    read_text: Callable[[str], str | None] | None = None,
    read_content: Callable[[str], bytes | None] | None = None,
) -> Cell:
    """The cell of a field column given the parsed record document it reads (data/userMetadata).

    A document that is not a JSON object has no fields, so every cell is None. TIMESTAMP
    cells are epoch ms. `read_text(attachment_id)` gives a LARGE_TEXT_ATTACHMENT's text;
    `read_content(attachment_id)` an attachment's bytes (a 0-byte one exports as None).
    """
    value = document.get(source.field) if isinstance(document, dict) else None
    if isinstance(source, ChoiceSelected):
        return to_multi_choice(value, (source.answer,), allow_other=False).get(source.answer)
    if isinstance(source, OtherChoices):
        return to_multi_choice(value, source.answers, allow_other=True).get("other")
    if isinstance(source, TimestampMillis | TimestampZone):
        parsed = to_timestamp(value)
        if parsed is None:
            return None
        return parsed[0] if isinstance(source, TimestampMillis) else parsed[1]
    return _converted(source, value, read_text, read_content)


def _converted(
    source: FieldValue,
    value: JsonValue,
    read_text: Callable[[str], str | None] | None,
    read_content: Callable[[str], bytes | None] | None,
) -> Cell:
    match source.conversion:
        case Conversion.BOOLEAN:
            return to_boolean(value)
        case Conversion.DOUBLE:
            return to_double(value)
        case Conversion.INTEGER:
            return to_integer(value)
        case Conversion.STRING:
            return to_string_like(value, source.max_length, unbounded=False)
        case Conversion.ATTACHMENT:
            attachment = attachment_id(value)
            if attachment is None or read_content is None:
                return attachment
            return attachment_handle(attachment, read_content(attachment))
        case Conversion.LARGE_TEXT:
            attachment = attachment_id(value)
            if attachment is None:
                return None
            if read_text is None:
                raise ValueError(f"Field {source.field!r} is a text attachment: pass read_text")
            return sanitize(read_text(attachment), None)
