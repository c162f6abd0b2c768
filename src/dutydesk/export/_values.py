"""Reference semantics of exported values: the executable specification of each cell.

Pure functions over what `json.loads` gives (a missing key and JSON null are both `None`),
following `spec/bridge-exporter.md` §4, §6, §7 and §8 with the departures of DESIGN.md §6:
values are typed (bool, int, float, str, epoch ms) instead of Synapse string cells, and text is
shown as a browser would show it (entities decoded) instead of HTML-escaped. The vectorized
engine is checked against these functions, so each one is meant to be exact and small.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UTC_OFFSET_TEXT = "+0000"
# The instants a Parquet timestamp (microseconds in an int64) can hold, in epoch ms.
TIMESTAMP_MS_MAX = INT64_MAX // 1000
TIMESTAMP_MS_MIN = -TIMESTAMP_MS_MAX
APP_VERSION_MAX_LENGTH = 48
PHONE_INFO_MAX_LENGTH = 48
EXTERNAL_ID_MAX_LENGTH = 128

# --- Sanitising ------------------------------------------------------------------------------

# Markup a browser would not show, following the HTML tokenizer for the cases that occur in
# practice. One regex without back-references or look-arounds, so RE2 (DuckDB) can run it too.
# Script and style elements lose their content; any other tag only itself. A tag, comment or
# quoted attribute still open at the end of the text runs to the end, as in a browser. A `<`
# not followed by a letter, `/`, `!` or `?` is text (`a < b`, `1<2`).
_MARKUP = re.compile(
    r"<!---?>"
    r"|<!--.*?(?:-->|\Z)"
    r"|<script(?:[\t\n\f\r /][^>]*)?>.*?(?:</script(?:[\t\n\f\r /][^>]*)?>|\Z)"
    r"|<style(?:[\t\n\f\r /][^>]*)?>.*?(?:</style(?:[\t\n\f\r /][^>]*)?>|\Z)"
    r"""|</?[a-z](?:"[^"]*(?:"|\Z)|'[^']*(?:'|\Z)|[^"'>])*(?:>|\Z)"""
    r"|<[!?/][^>]*(?:>|\Z)",
    re.IGNORECASE | re.DOTALL | re.ASCII,
)
# HTML's whitespace plus NBSP: a decoded `&nbsp;` would otherwise leave an invisible
# non-space in research data, so it is collapsed like any other space.
_WHITESPACE_RUN = re.compile("[\t\n\f\r \u00a0]+")


def strip_markup(text: str) -> str:
    """Remove tags, comments and the content of script and style elements."""
    return _MARKUP.sub("", text)


def decode_entities(text: str) -> str:
    """Decode HTML character references (`&amp;`, `&#10;`, `&nbsp;`) by the HTML5 rules."""
    return html.unescape(text)


def collapse_whitespace(text: str) -> str:
    """Turn each run of whitespace (incl. NBSP) into one space and trim both ends."""
    return _WHITESPACE_RUN.sub(" ", text).strip(" ")


def truncate_utf16(text: str, max_length: int) -> str:
    """Keep at most `max_length` UTF-16 code units, never half of a surrogate pair.

    Java measured length in UTF-16 units, so the limits keep their Bridge meaning. Where Java
    would keep a lone high surrogate, we drop the whole character: a lone surrogate is not
    valid UTF-8 and could not be written to Parquet.
    """
    if max_length < 0:
        raise ValueError(f"max_length must not be negative, got {max_length}")
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > max_length:
            return text[:index]
    return text


def sanitize(text: str | None, max_length: int | None) -> str | None:
    """Text as a browser shows it: markup removed, entities decoded, whitespace collapsed, cut.

    Departure from Bridge: `&`, `<` and `>` are not HTML-escaped; entities in the input are
    decoded instead. Tags are removed without adding a space (`a<br>b` gives `ab`), as jsoup
    did. The cut comes last, so a trailing space may remain (`"asdf jkl; "`).
    """
    if text is None:
        return None
    cleaned = collapse_whitespace(decode_entities(strip_markup(text)))
    return cleaned if max_length is None else truncate_utf16(cleaned, max_length)


# --- JSON helpers ----------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> JsonValue:
    """Parse standard JSON; NaN and Infinity, which Python would accept, raise ValueError."""
    value: JsonValue = json.loads(text, parse_constant=_reject_constant)
    return value


def compact_json(value: JsonValue) -> str:
    """JSON text without spaces, non-ASCII kept, as Jackson's `JsonNode.toString()` wrote it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _number(value: JsonValue) -> int | float | None:
    # bool is an int subclass in Python, but a JSON boolean is not a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


# --- Field values (§6) -----------------------------------------------------------------------


def to_boolean(value: JsonValue) -> bool | None:
    """A JSON boolean as itself; anything else (the string "true" too) gives None."""
    return value if isinstance(value, bool) else None


def to_double(value: JsonValue) -> float | None:
    """Any JSON number as a float; a number beyond a finite double, or a non-number, is None."""
    number = _number(value)
    if number is None:
        return None
    try:
        result = float(number)
    except OverflowError:  # an int past 1.8e308 has no double
        return None
    return result if math.isfinite(result) else None


def to_integer(value: JsonValue) -> int | None:
    """Any JSON number truncated toward zero (-13.9 gives -13); None outside int64."""
    number = _number(value)
    if isinstance(number, float):
        if not math.isfinite(number):
            return None
        number = math.trunc(number)
    if number is None or not INT64_MIN <= number <= INT64_MAX:
        return None
    return number


def to_string_like(value: JsonValue, max_length: int | None, unbounded: bool) -> str | None:
    """A string field: a JSON string as is, any other value as compact JSON, then sanitised."""
    if value is None:
        return None
    text = value if isinstance(value, str) else compact_json(value)
    return sanitize(text, None if unbounded else max_length)


def attachment_id(value: JsonValue) -> str | None:
    """The attachment id (storage key) of an attachment field: a JSON string, else None."""
    return value if isinstance(value, str) else None


def attachment_handle(attachment: str | None, content: bytes | None) -> str | None:
    """The attachment exported for an id with the stored `content` (None: not found or not
    readable): the id, except that a 0-byte object gives None, no handle and no file."""
    return None if attachment is None or content == b"" else attachment


def choice_text(value: JsonValue) -> str:
    """One selected choice as text: a string as is, anything else as compact JSON."""
    return value if isinstance(value, str) else compact_json(value)


def to_multi_choice(
    value: JsonValue, answers: Iterable[str], allow_other: bool
) -> dict[str, bool | str | None]:
    """Cells of a multi-choice field by column suffix: one bool per answer, plus "other".

    A value that is not an array gives no cells ({}). Leftover selections, sorted (by code
    point) and joined with ", ", go to "other" when other choices are allowed (None when there
    are none) and are dropped otherwise. The "other" text is not sanitised, as in Bridge.
    """
    if not isinstance(value, list):
        return {}
    selected = {choice_text(element) for element in value}
    cells: dict[str, bool | str | None] = {}
    for answer in answers:
        cells[answer] = answer in selected
        selected.discard(answer)
    if allow_other:
        cells["other"] = ", ".join(sorted(selected)) if selected else None
    return cells


# Lenient ISO 8601, as Joda's dateTimeParser: a date with optional month and day, an optional
# time with optional minutes, seconds and fraction (comma or dot, up to 9 digits, cut to ms),
# and an offset (Z, +HH, +HHMM or +HH:MM) only after a time. Week and ordinal dates and
# fractional hours, which Joda also read, are not accepted.
# The texts `parse_timestamp` reads (the export's SQL sends only these to it).
ISO_TIMESTAMP_PATTERN = (
    r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_ISO_TIMESTAMP = re.compile(ISO_TIMESTAMP_PATTERN, re.ASCII)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _offset_minutes(text: str | None) -> int | None:
    if text is None or text == "Z":
        return 0
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if hours > 23 or minutes > 59:
        return None
    return (hours * 60 + minutes) * (-1 if text[0] == "-" else 1)


def offset_text(minutes: int) -> str:
    """A UTC offset in minutes as Bridge wrote it: `±HHMM`, zero as `+0000`."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def parse_timestamp(text: str) -> tuple[int, str] | None:
    """Epoch ms and `±HHMM` offset of an ISO 8601 text, or None when it is not one.

    Departure: a text without an offset is read as UTC ("+0000"); Bridge used the JVM's zone.
    """
    match = _ISO_TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    offset_minutes = _offset_minutes(offset)
    hour_n, minute_n, second_n = int(hour or 0), int(minute or 0), int(second or 0)
    if offset_minutes is None or hour_n > 23 or minute_n > 59 or second_n > 59:
        return None
    try:
        date = dt.date(int(year), int(month or 1), int(day or 1))
    except ValueError:  # 2016-02-30 and the like
        return None
    seconds = (((date.toordinal() - _EPOCH_ORDINAL) * 24 + hour_n) * 60 + minute_n) * 60
    seconds += second_n - offset_minutes * 60
    millis = int((fraction or "").ljust(3, "0")[:3])
    return seconds * 1000 + millis, offset_text(offset_minutes)


def timestamp_millis(millis: int | None) -> int | None:
    """Epoch ms a timestamp column can hold (about ±292,000 years), else None."""
    if millis is None or not TIMESTAMP_MS_MIN <= millis <= TIMESTAMP_MS_MAX:
        return None
    return millis


def to_timestamp(value: JsonValue) -> tuple[int, str] | None:
    """A TIMESTAMP field as (epoch ms, `±HHMM`): ISO text, or a number of ms in UTC.

    Departure: a number of ms beyond what a timestamp column holds (about ±292,000 years)
    gives no cells, as an unreadable text does; Synapse kept any long.
    """
    if isinstance(value, str):
        return parse_timestamp(value)
    if _number(value) is None:
        return None
    millis = timestamp_millis(to_integer(value))
    return None if millis is None else (millis, UTC_OFFSET_TEXT)


# --- Common columns (§4, §8) -----------------------------------------------------------------


def data_groups(groups: Iterable[str] | None) -> str | None:
    """The record's data groups sorted and joined with "," (no space); none gives None."""
    names = sorted(set(groups or ()))
    return ",".join(names) if names else None


def substudy_memberships(memberships: Mapping[str, str] | None) -> str | None:
    """`|k1=v1|k2=v2|` with the pairs sorted as strings and `<none>` as empty; none gives None."""
    if not memberships:
        return None
    pairs = sorted(
        f"{study}={'' if external_id == '<none>' else external_id}"
        for study, external_id in memberships.items()
    )
    return "|" + "|".join(pairs) + "|"


def _metadata_text(metadata: Mapping[str, JsonValue], key: str, max_length: int) -> str | None:
    value = metadata.get(key)
    return sanitize(value, max_length) if isinstance(value, str) else None


def app_version_and_phone_info(metadata: JsonValue) -> tuple[str | None, str | None]:
    """appVersion and phoneInfo of a parsed `metadata` document: strings only, sanitised to 48."""
    if not isinstance(metadata, dict):
        return None, None
    return (
        _metadata_text(metadata, "appVersion", APP_VERSION_MAX_LENGTH),
        _metadata_text(metadata, "phoneInfo", PHONE_INFO_MAX_LENGTH),
    )


def app_version_and_phone_info_from_text(text: str | None) -> tuple[str | None, str | None]:
    """appVersion and phoneInfo of `metadata` JSON text; blank or malformed text gives Nones."""
    if text is None or not text.strip():
        return None, None
    try:
        metadata = parse_json(text)
    except ValueError:  # malformed metadata: Bridge logged it and left both cells empty
        return None, None
    return app_version_and_phone_info(metadata)


def external_id(value: str | None) -> str | None:
    """The participant's external id, sanitised to 128."""
    return sanitize(value, EXTERNAL_ID_MAX_LENGTH)


def validation_errors(value: str | None) -> str | None:
    """The record's validation errors, sanitised without a length limit."""
    return sanitize(value, None)


# Java's whitespace (`Character.isWhitespace`, which `StringUtils.isBlank` uses): ASCII
# controls \t-\r and \x1c-\x1f, and the Unicode space separators except the no-break ones.
JAVA_WHITESPACE = (
    " \t\n\x0b\f\r\x1c\x1d\x1e\x1f\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
)


def is_blank(value: str | None) -> bool:
    """Whether `value` is None or only whitespace, as Java's `StringUtils.isBlank` said."""
    return value is None or all(char in JAVA_WHITESPACE for char in value)


def raw_data_attachment_id(value: str | None) -> str | None:
    """The rawData attachment id, as it is, when it is not blank (Java's blank), else None."""
    return None if is_blank(value) else value


def upload_date_text(run_date: dt.date) -> str:
    """The uploadDate cell: the day the export ran (Bridge's meaning), as yyyy-MM-dd."""
    return run_date.isoformat()


# --- Legacy attachment file names and MIME types (§7) -----------------------------------------

_TYPE_EXTENSIONS = {
    "ATTACHMENT_CSV": ".csv",
    "ATTACHMENT_JSON_BLOB": ".json",
    "ATTACHMENT_JSON_TABLE": ".json",
}
_TYPE_MIME_TYPES = {
    "ATTACHMENT_CSV": "text/csv",
    "ATTACHMENT_JSON_BLOB": "text/json",
    "ATTACHMENT_JSON_TABLE": "text/json",
}
DEFAULT_MIME_TYPE = "application/octet-stream"


def _name_extension(field_name: str) -> str | None:
    dot = field_name.rfind(".")
    return field_name[dot:] if 0 < dot < len(field_name) - 1 else None


def attachment_file_name(
    field_name: str, field_type: str, file_extension: str | None, attachment_id: str
) -> str:
    """The file name Bridge gave an attachment: `<field minus ext>-<attachment id><ext>`.

    The extension is the field's own, else the type's (.csv, .json), else the field name's last
    `.suffix` when that dot is neither first nor last. Since 2018-10 an attachment id that
    already ends with the field name is the file name as is.
    """
    if attachment_id.endswith(field_name):
        return attachment_id
    extension = file_extension or _TYPE_EXTENSIONS.get(field_type) or _name_extension(field_name)
    if not extension:
        return f"{field_name}-{attachment_id}"
    base = field_name[: -len(extension)] if field_name.endswith(extension) else field_name
    return f"{base}-{attachment_id}{extension}"


def attachment_mime_type(field_type: str, mime_type: str | None) -> str:
    """The field's MIME type, else text/csv or text/json by type, else application/octet-stream."""
    return mime_type or _TYPE_MIME_TYPES.get(field_type, DEFAULT_MIME_TYPE)
