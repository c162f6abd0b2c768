"""Reference semantics of exported values: spec §3, §4, §6, §7, §8 and vectors 1-7, 10, 13, 14."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from dutydesk.export._sharing import (
    SharingScope,
    effective_scope,
    minimum_scope,
    mode_accepts,
    parse_scope,
)
from dutydesk.export._values import (
    app_version_and_phone_info,
    app_version_and_phone_info_from_text,
    attachment_file_name,
    attachment_id,
    attachment_mime_type,
    collapse_whitespace,
    data_groups,
    decode_entities,
    external_id,
    parse_json,
    raw_data_attachment_id,
    sanitize,
    strip_markup,
    substudy_memberships,
    to_boolean,
    to_double,
    to_integer,
    to_multi_choice,
    to_string_like,
    to_timestamp,
    truncate_utf16,
    upload_date_text,
    validation_errors,
)
from dutydesk.export.request import SharingMode

NO = SharingScope.NO_SHARING
SP = SharingScope.SPONSORS_AND_PARTNERS
AQR = SharingScope.ALL_QUALIFIED_RESEARCHERS

# --- Sanitising: vectors 1, 2, 3, 4 and the departure ----------------------------------------


def test_sanitize_removes_tags_then_truncates_the_brief_example() -> None:
    assert sanitize("<b>hi</b>\tthere", 5) == "hi th"


@pytest.mark.parametrize(
    ("text", "max_length", "expected"),
    [
        ("newlines\n\n\nCRLF\r\ntabs\t\ttabs", 1000, "newlines CRLF tabs tabs"),
        ("imbalanced</i> <p>tags", 1000, "imbalanced tags"),
        ("1234567890", 4, "1234"),
        ("", 1000, ""),
    ],
)
def test_sanitize_string_data_provider_cases(text: str, max_length: int, expected: str) -> None:
    assert sanitize(text, max_length) == expected


def test_sanitize_none_is_none() -> None:
    assert sanitize(None, 10) is None
    assert sanitize(None, None) is None


def test_sanitize_leaves_quotes_and_backslashes() -> None:
    assert sanitize('quote"quote', None) == 'quote"quote'
    assert sanitize('[ "inline", "json", "blob" ]', None) == '[ "inline", "json", "blob" ]'
    assert sanitize("back\\slash", None) == "back\\slash"


def test_sanitize_ddb_value_removes_paragraph_and_truncates() -> None:
    assert sanitize("<p>123 456</p>", 5) == "123 4"


def test_sanitize_trims_surrounding_spaces() -> None:
    assert sanitize("  x  ", None) == "x"


def test_sanitize_keeps_ampersand_plain_instead_of_escaping_it() -> None:
    # Departure (DESIGN.md §6): Bridge's jsoup gave "a &amp; b".
    assert sanitize("a & b", None) == "a & b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a &amp; b", "a & b"),
        ("a &lt;b&gt; c", "a <b> c"),  # decoded after tags are gone: shown, not parsed
        ("caf&eacute; &#233; &#xE9;", "café é é"),
        ("AT&T", "AT&T"),
        ("line&#10;break", "line break"),
    ],
)
def test_sanitize_decodes_entities_as_a_browser_shows_them(text: str, expected: str) -> None:
    assert sanitize(text, None) == expected


def test_sanitize_treats_nbsp_as_collapsible_whitespace() -> None:
    assert sanitize("a&nbsp;&nbsp; b\u00a0", None) == "a b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a < b", "a < b"),
        ("1<2 and 3>2", "1<2 and 3>2"),
        ('<a title="x>y">link</a>', "link"),
        ("<a title='x>y'>link</a>", "link"),
        ("<script>alert('x')</script>ok", "ok"),
        ("<SCRIPT type='text/javascript'>1 < 2</SCRIPT >ok", "ok"),
        ("<style>p { color: red }</style>text", "text"),
        ("<scripts>kept</scripts>", "kept"),
        ("x<!-- note -->y", "xy"),
        ("x<!-->y", "xy"),
        ("<!DOCTYPE html>x<?xml version='1'?>y</>z", "xyz"),
        ("a<br/>b", "ab"),  # no space added for a tag, as jsoup did
        ("a <b", "a"),  # a tag still open at the end runs to the end
        ("a <!-- open", "a"),
        ("<script>never closed", ""),
    ],
)
def test_sanitize_removes_markup_like_a_browser(text: str, expected: str) -> None:
    assert sanitize(text, None) == expected


def test_sanitize_steps_compose() -> None:
    text = "<i>a</i>&amp;\t\tb "
    assert strip_markup(text) == "a&amp;\t\tb "
    assert decode_entities(strip_markup(text)) == "a&\t\tb "
    assert collapse_whitespace(decode_entities(strip_markup(text))) == "a& b"
    assert sanitize(text, None) == "a& b"


def test_collapse_whitespace_leaves_other_unicode_spaces() -> None:
    assert collapse_whitespace("a\u2003b\u3000c") == "a\u2003b\u3000c"


def test_truncation_counts_utf16_units_and_never_splits_a_pair() -> None:
    assert truncate_utf16("😀😀", 4) == "😀😀"
    assert truncate_utf16("😀😀", 3) == "😀"
    assert truncate_utf16("a😀", 2) == "a"
    assert truncate_utf16("héllo", 2) == "hé"
    assert truncate_utf16("abc", 0) == ""
    with pytest.raises(ValueError, match="negative"):
        truncate_utf16("abc", -1)


def test_truncation_leaves_a_trailing_space() -> None:
    assert sanitize("asdf\njkl;\tlorem ipsum dolor", 10) == "asdf jkl; "


# --- Typed values: vector 5 -----------------------------------------------------------------


def test_boolean_takes_only_a_json_boolean() -> None:
    assert to_boolean(True) is True
    assert to_boolean(False) is False
    assert to_boolean("true") is None
    assert to_boolean(1) is None
    assert to_boolean(None) is None


def test_double_takes_any_json_number() -> None:
    assert to_double(3.14) == 3.14
    assert to_double(42) == 42.0
    assert isinstance(to_double(42), float)
    assert to_double(1e20) == 1e20
    assert to_double("3.14") is None
    assert to_double(True) is None
    assert to_double(None) is None
    assert to_double([1]) is None


def test_double_is_none_past_a_finite_double() -> None:
    assert to_double(10**400) is None
    assert to_double(float("inf")) is None
    assert to_double(float("nan")) is None


def test_integer_truncates_toward_zero() -> None:
    assert to_integer(-13.9) == -13
    assert to_integer(13.9) == 13
    assert to_integer(42) == 42
    assert to_integer("-13") is None
    assert to_integer(False) is None
    assert to_integer(None) is None


def test_integer_is_none_outside_int64() -> None:
    assert to_integer(2**63 - 1) == 2**63 - 1
    assert to_integer(2**63) is None
    assert to_integer(-(2**63) - 1) is None
    assert to_integer(1e20) is None
    assert to_integer(float("nan")) is None


def test_string_field_removes_link_markup() -> None:
    assert to_string_like('<a href="sagebase.org">link</a>', 100, False) == "link"


def test_calendar_date_and_time_strings_are_unchanged() -> None:
    assert to_string_like("2015-12-01", 10, False) == "2015-12-01"
    assert to_string_like("13:07:56.123", 12, False) == "13:07:56.123"


def test_string_field_with_max_length_10_is_cut_after_whitespace_collapse() -> None:
    assert to_string_like("asdf\njkl;\tlorem ipsum dolor", 10, False) == "asdf jkl; "


def test_inline_json_blob_is_compact_json_text() -> None:
    assert to_string_like([1, 3, 5, 7, "this is a string"], 100, False) == (
        '[1,3,5,7,"this is a string"]'
    )
    assert to_string_like({"k": "é", "n": None}, 100, False) == '{"k":"é","n":null}'
    assert to_string_like(True, 100, False) == "true"
    assert to_string_like(42, 100, False) == "42"


def test_unbounded_string_is_not_cut() -> None:
    text = "x" * 5000
    assert to_string_like(text, 100, True) == text
    assert to_string_like(text, 100, False) == "x" * 100


def test_string_field_missing_is_none() -> None:
    assert to_string_like(None, 100, False) is None


def test_attachment_id_takes_only_a_string() -> None:
    assert attachment_id("att-1") == "att-1"
    assert attachment_id(1234567890) is None
    assert attachment_id(None) is None


# --- Multi-choice: vector 6 ------------------------------------------------------------------


def test_multi_choice_converts_non_string_selections_to_json_text() -> None:
    cells = to_multi_choice(["bar", True, 42], ["foo", "bar", "baz", "true", "42"], False)
    assert cells == {"foo": False, "bar": True, "baz": False, "true": True, "42": True}


def test_multi_choice_with_other_joins_leftovers_sorted() -> None:
    cells = to_multi_choice(["one", "foo", "bar", "baz"], ["one", "two"], True)
    assert cells == {"one": True, "two": False, "other": "bar, baz, foo"}


def test_multi_choice_not_an_array_gives_no_cells() -> None:
    assert to_multi_choice("baz", ["baz"], True) == {}
    assert to_multi_choice(None, ["baz"], True) == {}
    assert to_multi_choice({"baz": True}, ["baz"], True) == {}


def test_multi_choice_with_other_and_no_leftovers_leaves_other_empty() -> None:
    assert to_multi_choice(["one"], ["one", "two"], True) == {
        "one": True,
        "two": False,
        "other": None,
    }


def test_multi_choice_drops_leftovers_when_other_is_not_allowed() -> None:
    assert to_multi_choice(["one", "zzz"], ["one"], False) == {"one": True}


def test_multi_choice_other_is_neither_sanitised_nor_cut() -> None:
    cells = to_multi_choice(["<b>x</b>", "a\tb", None, 1.5], [], True)
    assert cells == {"other": "1.5, <b>x</b>, a\tb, null"}


def test_multi_choice_counts_a_repeated_selection_once() -> None:
    assert to_multi_choice(["x", "x"], [], True) == {"other": "x"}


# --- Timestamps: vector 7 --------------------------------------------------------------------


def test_timestamp_with_basic_offset_keeps_the_offset() -> None:
    assert to_timestamp("2016-06-09T10:09:08.765+0530") == (1465447148765, "+0530")


def test_timestamp_with_colon_offset_is_written_without_colon() -> None:
    assert to_timestamp("2016-06-09T10:09:08.765+05:30") == (1465447148765, "+0530")


def test_timestamp_in_zulu_is_utc() -> None:
    assert to_timestamp("2016-06-09T10:09:08.765Z") == (1465466948765, "+0000")


def test_timestamp_number_is_epoch_ms_in_utc() -> None:
    assert to_timestamp(12345) == (12345, "+0000")
    assert to_timestamp(12345.9) == (12345, "+0000")
    assert to_timestamp(-1.5) == (-1, "+0000")


@pytest.mark.parametrize(
    "value", ["Thursday June 9th 2016 @ 4:10pm", True, None, [1], {"t": 1}, 1e300]
)
def test_timestamp_that_cannot_be_read_gives_no_cells(value: object) -> None:
    assert to_timestamp(value) is None  # type: ignore[arg-type]


def test_timestamp_without_offset_is_read_as_utc() -> None:
    # Departure: Bridge used the JVM's default zone here.
    assert to_timestamp("2016-06-09T10:09:08") == (1465466948000, "+0000")
    assert to_timestamp("2016-06-09") == (1465430400000, "+0000")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016", (1451606400000, "+0000")),
        ("2016-06", (1464739200000, "+0000")),
        ("2016-06-09T10", (1465466400000, "+0000")),
        ("2016-06-09T10:09-07:00", (1465492140000, "-0700")),
        ("2016-06-09T10:09:08,5+05", (1465448948500, "+0500")),
        ("2016-06-09T10:09:08.123456789Z", (1465466948123, "+0000")),
        ("2016-06-09T00:00:00-00:00", (1465430400000, "+0000")),
        ("1969-12-31T23:59:59.999Z", (-1, "+0000")),
    ],
)
def test_timestamp_lenient_iso_forms(text: str, expected: tuple[int, str]) -> None:
    assert to_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2016-02-30T00:00Z",
        "2016-06-09T24:00Z",
        "2016-06-09T10:60Z",
        "2016-06-09T10:09:60Z",
        "2016-06-09T10:09+24:00",
        "2016-06-09Z",
        " 2016-06-09T10:09Z",
        "2016-06-09 10:09",
        "2016-06-09T10:09:08.1234567890Z",
        "16-06-09",
    ],
)
def test_timestamp_rejects_invalid_iso_texts(text: str) -> None:
    assert to_timestamp(text) is None


def test_timestamp_agrees_with_python_for_an_offset() -> None:
    text = "2017-09-20T16:57:24.130+09:00"
    expected = int(dt.datetime.fromisoformat(text).timestamp() * 1000)
    assert to_timestamp(text) == (expected, "+0900")


# --- Common columns: vectors 4, 10 -----------------------------------------------------------


def test_substudy_memberships_are_sorted_pairs_with_none_as_empty() -> None:
    memberships = {"subA": "<none>", "subB": "extB", "subC": "extC", "subD": ""}
    assert substudy_memberships(memberships) == "|subA=|subB=extB|subC=extC|subD=|"
    assert substudy_memberships({"subB": "extB"}) == "|subB=extB|"


def test_substudy_memberships_empty_or_missing_is_none() -> None:
    assert substudy_memberships({}) is None
    assert substudy_memberships(None) is None


def test_substudy_memberships_sort_the_pair_strings() -> None:
    # "-" sorts before "=", so the pair string order differs from the key order here.
    assert substudy_memberships({"sub": "x", "sub-b": "y"}) == "|sub-b=y|sub=x|"


def test_data_groups_sorted_and_joined_without_space() -> None:
    assert data_groups(["foo", "bar", "baz"]) == "bar,baz,foo"
    assert data_groups({"b", "a"}) == "a,b"
    assert data_groups([]) is None
    assert data_groups(None) is None


def test_external_id_is_sanitised_and_cut_to_128() -> None:
    assert external_id("<p>unsanitized external id</p>") == "unsanitized external id"
    assert external_id("x" * 200) == "x" * 128
    assert external_id(None) is None


def test_validation_errors_are_sanitised_without_limit() -> None:
    assert validation_errors("<b>bad</b>\nvalue " + "e" * 2000) == "bad value " + "e" * 2000
    assert validation_errors(None) is None


def test_app_version_and_phone_info_come_from_metadata_strings() -> None:
    metadata = '{"appVersion":"<b>Bridge-EX 2.0</b>","phoneInfo":"' + "p" * 60 + '"}'
    assert app_version_and_phone_info_from_text(metadata) == ("Bridge-EX 2.0", "p" * 48)


def test_app_version_and_phone_info_non_strings_are_none() -> None:
    assert app_version_and_phone_info({"appVersion": 2, "phoneInfo": None}) == (None, None)
    assert app_version_and_phone_info({"appVersion": "v1"}) == ("v1", None)
    assert app_version_and_phone_info(["appVersion"]) == (None, None)
    assert app_version_and_phone_info(None) == (None, None)


@pytest.mark.parametrize("text", ["{not json", "", "   ", None, '"appVersion"', "NaN", "[1]"])
def test_malformed_or_blank_metadata_gives_no_app_version_or_phone_info(text: str | None) -> None:
    assert app_version_and_phone_info_from_text(text) == (None, None)


def test_parse_json_rejects_nan_and_infinity() -> None:
    with pytest.raises(ValueError, match="NaN"):
        parse_json('{"x": NaN}')
    with pytest.raises(ValueError, match="Infinity"):
        parse_json("-Infinity")
    assert parse_json('{"x": 1}') == {"x": 1}


def test_raw_data_attachment_id_only_when_not_blank() -> None:
    assert raw_data_attachment_id("raw-1") == "raw-1"
    assert raw_data_attachment_id("  ") is None
    assert raw_data_attachment_id(None) is None


def test_upload_date_is_the_run_date_as_iso_text() -> None:
    assert upload_date_text(dt.date(2016, 5, 9)) == "2016-05-09"


# --- Legacy attachment file names and MIME types: vector 13 ----------------------------------


@pytest.mark.parametrize(
    ("field_name", "field_type", "extension", "expected"),
    [
        ("test.foo", "ATTACHMENT_V2", ".foo", "test-attId.foo"),
        ("test.bar", "ATTACHMENT_V2", ".foo", "test.bar-attId.foo"),
        ("test.json.blob", "ATTACHMENT_JSON_BLOB", None, "test.json.blob-attId.json"),
        ("test.json", "ATTACHMENT_JSON_BLOB", None, "test-attId.json"),
        ("test.json", "ATTACHMENT_JSON_TABLE", None, "test-attId.json"),
        ("data.csv", "ATTACHMENT_CSV", None, "data-attId.csv"),
        ("csv.data", "ATTACHMENT_CSV", None, "csv.data-attId.csv"),
        ("generic.blob.ext", "ATTACHMENT_BLOB", None, "generic.blob-attId.ext"),
        ("genericBlob", "ATTACHMENT_BLOB", None, "genericBlob-attId"),
        (".dot", "ATTACHMENT_BLOB", None, ".dot-attId"),
        (".dot.ext", "ATTACHMENT_BLOB", None, ".dot-attId.ext"),
        ("dot.dot.", "ATTACHMENT_BLOB", None, "dot.dot.-attId"),
        ("genericBlob", "ATTACHMENT_BLOB", "", "genericBlob-attId"),
    ],
)
def test_legacy_attachment_file_name(
    field_name: str, field_type: str, extension: str | None, expected: str
) -> None:
    assert attachment_file_name(field_name, field_type, extension, "attId") == expected


def test_attachment_id_ending_with_the_field_name_is_the_file_name() -> None:
    assert attachment_file_name("test.foo", "ATTACHMENT_V2", ".foo", "rec1-test.foo") == (
        "rec1-test.foo"
    )


@pytest.mark.parametrize(
    ("field_type", "mime_type", "expected"),
    [
        ("ATTACHMENT_BLOB", None, "application/octet-stream"),
        ("ATTACHMENT_V2", None, "application/octet-stream"),
        ("ATTACHMENT_CSV", None, "text/csv"),
        ("ATTACHMENT_JSON_BLOB", None, "text/json"),
        ("ATTACHMENT_JSON_TABLE", None, "text/json"),
        ("ATTACHMENT_V2", "text/plain", "text/plain"),
        ("ATTACHMENT_CSV", "text/plain", "text/plain"),
    ],
)
def test_legacy_attachment_mime_type(field_type: str, mime_type: str | None, expected: str) -> None:
    assert attachment_mime_type(field_type, mime_type) == expected


# --- Sharing: vector 14 ----------------------------------------------------------------------

# (record scope, user scope, mode, effective scope, accepted): every combination, by hand.
SHARING_TABLE = [
    (NO, NO, SharingMode.ALL, NO, True),
    (NO, NO, SharingMode.SHARED, NO, False),
    (NO, NO, SharingMode.PUBLIC_ONLY, NO, False),
    (NO, SP, SharingMode.ALL, NO, True),
    (NO, SP, SharingMode.SHARED, NO, False),
    (NO, SP, SharingMode.PUBLIC_ONLY, NO, False),
    (NO, AQR, SharingMode.ALL, NO, True),
    (NO, AQR, SharingMode.SHARED, NO, False),
    (NO, AQR, SharingMode.PUBLIC_ONLY, NO, False),
    (SP, NO, SharingMode.ALL, NO, True),
    (SP, NO, SharingMode.SHARED, NO, False),
    (SP, NO, SharingMode.PUBLIC_ONLY, NO, False),
    (SP, SP, SharingMode.ALL, SP, True),
    (SP, SP, SharingMode.SHARED, SP, True),
    (SP, SP, SharingMode.PUBLIC_ONLY, SP, False),
    (SP, AQR, SharingMode.ALL, SP, True),
    (SP, AQR, SharingMode.SHARED, SP, True),
    (SP, AQR, SharingMode.PUBLIC_ONLY, SP, False),
    (AQR, NO, SharingMode.ALL, NO, True),
    (AQR, NO, SharingMode.SHARED, NO, False),
    (AQR, NO, SharingMode.PUBLIC_ONLY, NO, False),
    (AQR, SP, SharingMode.ALL, SP, True),
    (AQR, SP, SharingMode.SHARED, SP, True),
    (AQR, SP, SharingMode.PUBLIC_ONLY, SP, False),
    (AQR, AQR, SharingMode.ALL, AQR, True),
    (AQR, AQR, SharingMode.SHARED, AQR, True),
    (AQR, AQR, SharingMode.PUBLIC_ONLY, AQR, True),
]


@pytest.mark.parametrize(("record", "user", "mode", "effective", "accepted"), SHARING_TABLE)
def test_sharing_all_27_combinations(
    record: SharingScope,
    user: SharingScope,
    mode: SharingMode,
    effective: SharingScope,
    accepted: bool,
) -> None:
    assert effective_scope(record, user) is effective
    assert mode_accepts(mode, effective_scope(record, user)) is accepted


def test_sharing_table_covers_every_combination_once() -> None:
    assert len({row[:3] for row in SHARING_TABLE}) == 27


def test_sponsors_record_with_public_user_is_excluded_in_public_only_mode() -> None:
    scope = effective_scope(parse_scope("SPONSORS_AND_PARTNERS"), AQR)
    assert scope.name == "SPONSORS_AND_PARTNERS"  # the metric is excluded[SPONSORS_AND_PARTNERS]
    assert not mode_accepts(SharingMode.PUBLIC_ONLY, scope)
    assert mode_accepts(SharingMode.SHARED, scope)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_blank_record_scope_is_no_sharing(text: str | None) -> None:
    assert parse_scope(text) is NO
    assert not mode_accepts(SharingMode.SHARED, effective_scope(parse_scope(text), AQR))


def test_unparsable_record_scope_is_no_sharing_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_scope("not a valid sharing scope") is NO
    assert "Could not parse sharing scope not a valid sharing scope" in caplog.text


def test_scope_names_parse_exactly() -> None:
    assert parse_scope("ALL_QUALIFIED_RESEARCHERS") is AQR
    assert parse_scope("all_qualified_researchers") is NO
    assert parse_scope(" SPONSORS_AND_PARTNERS") is NO


def test_missing_user_scope_is_no_sharing() -> None:
    assert effective_scope(AQR, None) is NO


def test_scopes_are_ordered_from_narrowest() -> None:
    assert NO < SP < AQR
    assert [minimum_scope(m) for m in SharingMode] == [NO, SP, AQR]
