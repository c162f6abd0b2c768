"""The export request: spec §1 rules and messages, the JSON form, toString and redrive copies."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from dutydesk.export.request import (
    ExportRequest,
    InvalidRequest,
    SchemaKey,
    SharingMode,
    format_datetime,
    parse_datetime,
    parse_request,
    redrive_record_ids_name,
)

END = "2016-05-09T13:53:13.801-07:00"
START = "2016-05-09T13:51:57.682-07:00"
PDT = timezone(timedelta(hours=-7))


def rejected(body: Any) -> str:
    """The message parse_request gives for a body it refuses."""
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body)
    return str(caught.value)


# Spec §13 vector 15 (BridgeExporterRequestTest) --------------------------------------------------


def test_shape_a_request_takes_defaults_and_prints_like_bridge() -> None:
    request = parse_request({"endDateTime": END, "useLastExportTime": True})
    assert request.shape == "A"
    assert request.sharing_mode is SharingMode.SHARED
    assert request.tag == "(no tag)"
    assert request.redrive_count == 0
    assert str(request) == (
        "endDateTime=2016-05-09T13:53:13.801-07:00, redriveCount=0, tag=(no tag), "
        "useLastExportTime=true"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"startDateTime": START, "endDateTime": START, "useLastExportTime": False},
            "startDateTime must be before endDateTime.",
        ),
        (
            {"recordIdS3Override": "   ", "useLastExportTime": False},
            "Exactly one of useLastExportTime=true, startDateTime and recordIdOverride must be "
            "specified.",
        ),
        (
            {"recordIdS3Override": "ids", "endDateTime": END, "useLastExportTime": True},
            "Exactly one of useLastExportTime=true, startDateTime and recordIdOverride must be "
            "specified.",
        ),
        (
            {"recordIdS3Override": "ids", "endDateTime": END, "useLastExportTime": False},
            "endDateTime can't be specified with recordIdOverride.",
        ),
        (
            {"endDateTime": END, "useLastExportTime": True, "exporterDdbPrefixOverride": "p-"},
            "exporterDdbPrefixOverride and synapseProjectOverrideMap must both be specified or "
            "both be absent.",
        ),
        (
            {"endDateTime": END, "useLastExportTime": True, "studyWhitelist": []},
            "If studyWhitelist is specified, it can't be empty.",
        ),
    ],
    ids=[
        "start-equals-end",
        "blank-override",
        "override-with-last-export-time",
        "override-with-end",
        "prefix-without-project-map",
        "empty-study-whitelist",
    ],
)
def test_bridge_request_test_rejections(body: dict[str, Any], message: str) -> None:
    assert rejected(body) == message


def test_table_whitelist_study_id_is_read_and_written_back_as_app_id() -> None:
    request = parse_request(
        {
            "endDateTime": END,
            "useLastExportTime": True,
            "tableWhitelist": [
                {"studyId": "test-study", "schemaId": "test-schema", "revision": 13}
            ],
        }
    )
    assert request.table_whitelist == frozenset({SchemaKey("test-study", "test-schema", 13)})
    assert request.to_json()["tableWhitelist"] == [
        {"appId": "test-study", "schemaId": "test-schema", "revision": 13}
    ]


# The validation rules of §1, in order ------------------------------------------------------------

EXACTLY_ONE = (
    "Exactly one of useLastExportTime=true, startDateTime and recordIdOverride must be specified."
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "useLastExportTime must be specified."),
        ({"endDateTime": END, "useLastExportTime": None}, "useLastExportTime must be specified."),
        ({"useLastExportTime": False}, EXACTLY_ONE),
        ({"useLastExportTime": True, "startDateTime": START, "endDateTime": END}, EXACTLY_ONE),
        ({"useLastExportTime": True, "recordIdOverride": "ids"}, EXACTLY_ONE),
        (
            {"useLastExportTime": False, "startDateTime": START, "recordIdOverride": "x"},
            EXACTLY_ONE,
        ),
        ({"useLastExportTime": False, "recordIdOverride": ""}, EXACTLY_ONE),
        (
            {"useLastExportTime": True},
            "If useLastExportTime is true, endDateTime must be specified.",
        ),
        (
            {"useLastExportTime": False, "startDateTime": START},
            "If startDateTime is specified, endDateTime must be specified.",
        ),
        (
            {"useLastExportTime": False, "startDateTime": END, "endDateTime": START},
            "startDateTime must be before endDateTime.",
        ),
        (
            {"useLastExportTime": False, "recordIdOverride": "ids", "endDateTime": END},
            "endDateTime can't be specified with recordIdOverride.",
        ),
        (
            {
                "useLastExportTime": True,
                "endDateTime": END,
                "synapseProjectOverrideMap": {"s": "p"},
            },
            "exporterDdbPrefixOverride and synapseProjectOverrideMap must both be specified or "
            "both be absent.",
        ),
        (
            {
                "useLastExportTime": True,
                "endDateTime": END,
                "exporterDdbPrefixOverride": "   ",
                "synapseProjectOverrideMap": {"s": "p"},
            },
            "exporterDdbPrefixOverride and synapseProjectOverrideMap must both be specified or "
            "both be absent.",
        ),
        (
            {
                "useLastExportTime": True,
                "endDateTime": END,
                "exporterDdbPrefixOverride": "p-",
                "synapseProjectOverrideMap": {},
            },
            "If synapseProjectOverrideMap is specified, it can't be empty.",
        ),
        (
            {"useLastExportTime": True, "endDateTime": END, "appWhitelist": []},
            "If studyWhitelist is specified, it can't be empty.",
        ),
        (
            {"useLastExportTime": True, "endDateTime": END, "tableWhitelist": []},
            "If tableWhitelist is specified, it can't be empty.",
        ),
    ],
)
def test_each_validation_rule_has_its_message(body: dict[str, Any], message: str) -> None:
    assert rejected(body) == message


def test_rules_are_checked_in_bridge_order() -> None:
    # Breaks rules 1, 2 and 7: the first one is reported.
    assert rejected({"studyWhitelist": []}) == "useLastExportTime must be specified."
    # Breaks rules 2 and 6.
    assert rejected({"useLastExportTime": False, "exporterDdbPrefixOverride": "p"}) == EXACTLY_ONE
    # Breaks rules 4 and 7.
    body = {"useLastExportTime": False, "startDateTime": END, "endDateTime": START}
    assert rejected({**body, "tableWhitelist": []}) == "startDateTime must be before endDateTime."


def test_malformed_fields_are_reported_before_the_rules() -> None:
    # As in Bridge-EX, where Jackson fails before the builder's rules run.
    body = {"tableWhitelist": [{"appId": "study"}], "endDateTime": END}
    assert rejected(body) == "tableWhitelist[0]: schemaId must be specified"
    assert rejected({"endDateTime": "2016-05-09"}).startswith("endDateTime is not a date-time")


def test_three_shapes_are_recognised() -> None:
    shape_b = parse_request(
        {"useLastExportTime": False, "startDateTime": START, "endDateTime": END}
    )
    shape_c = parse_request({"useLastExportTime": False, "recordIdOverride": "redrive-ids"})
    assert (shape_b.shape, shape_c.shape) == ("B", "C")
    assert str(shape_b) == (
        f"startDateTime={START}, endDateTime={END}, redriveCount=0, tag=(no tag), "
        "useLastExportTime=false"
    )
    assert str(shape_c) == (
        "recordIdS3Override=redrive-ids, redriveCount=0, tag=(no tag), useLastExportTime=false"
    )


def test_constructing_a_request_directly_runs_the_same_checks() -> None:
    with pytest.raises(InvalidRequest, match="endDateTime must be specified"):
        ExportRequest(use_last_export_time=True)
    with pytest.raises(InvalidRequest, match="need a UTC offset"):
        ExportRequest(use_last_export_time=True, end_date_time=datetime(2016, 5, 9))


def test_request_keeps_its_own_copy_of_the_project_map() -> None:
    project_map = {"study": "syn123"}
    request = ExportRequest(
        use_last_export_time=True,
        end_date_time=parse_datetime(END),
        exporter_ddb_prefix_override="p-",
        synapse_project_override_map=project_map,
    )
    project_map["other"] = "syn456"
    assert dict(request.synapse_project_override_map or {}) == {"study": "syn123"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.tag = "changed"  # type: ignore[misc]


# Unknown fields, aliases and JSON types (departures, DESIGN §6) ----------------------------------


def test_legacy_date_field_is_refused_by_name() -> None:
    message = rejected({"date": "2015-11-30", "useLastExportTime": True, "endDateTime": END})
    assert message.startswith("Unknown field in export request: date.")
    assert "Known fields:" in message


def test_every_unknown_field_is_named() -> None:
    message = rejected({"useLastExportTime": True, "endDateTime": END, "foo": 1, "bar": 2})
    assert message.startswith("Unknown fields in export request: bar, foo.")


def test_unknown_field_in_a_schema_key_is_refused() -> None:
    body = {
        "useLastExportTime": True,
        "endDateTime": END,
        "tableWhitelist": [{"appId": "s", "schemaId": "x", "revision": 1, "rev": 2}],
    }
    assert rejected(body).startswith("tableWhitelist[0]: Unknown field in a schema key: rev.")


@pytest.mark.parametrize(
    ("name", "alias", "value"),
    [
        ("studyWhitelist", "appWhitelist", ["study"]),
        ("recordIdOverride", "recordIdS3Override", "ids"),
    ],
)
def test_field_and_its_alias_together_are_refused(name: str, alias: str, value: Any) -> None:
    body = {"useLastExportTime": False, name: value, alias: value}
    assert rejected(body) == f"{name} and {alias} are the same field; give only one."


def test_aliases_are_read() -> None:
    request = parse_request(
        {"useLastExportTime": False, "recordIdS3Override": "s3-key", "appWhitelist": ["a", "b"]}
    )
    assert request.record_id_override == "s3-key"
    assert request.study_whitelist == frozenset({"a", "b"})
    new_name = parse_request({"useLastExportTime": False, "recordIdOverride": "/data/ids.txt"})
    assert new_name.record_id_override == "/data/ids.txt"


def test_schema_key_with_both_study_id_and_app_id_is_refused() -> None:
    key = {"appId": "a", "studyId": "a", "schemaId": "x", "revision": 1}
    body = {"useLastExportTime": True, "endDateTime": END, "tableWhitelist": [key]}
    assert (
        rejected(body) == "tableWhitelist[0]: appId and studyId are the same field; give only one."
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({"schemaId": "x", "revision": 1}, "tableWhitelist[0]: appId must be specified"),
        (
            {"appId": " ", "schemaId": "x", "revision": 1},
            "tableWhitelist[0]: appId must be specified",
        ),
        ({"appId": "a", "revision": 1}, "tableWhitelist[0]: schemaId must be specified"),
        (
            {"appId": "a", "schemaId": "x"},
            "tableWhitelist[0]: revision must be specified and positive",
        ),
        (
            {"appId": "a", "schemaId": "x", "revision": 0},
            "tableWhitelist[0]: revision must be specified and positive",
        ),
        (
            {"appId": "a", "schemaId": "x", "revision": "1"},
            "tableWhitelist[0]: revision must be an integer, not a string.",
        ),
        ("a-x-v1", "tableWhitelist[0]: must be an object with appId, schemaId and revision."),
    ],
)
def test_bad_schema_keys_are_refused(key: Any, message: str) -> None:
    body = {"useLastExportTime": True, "endDateTime": END, "tableWhitelist": [key]}
    assert rejected(body) == message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("useLastExportTime", "true", "useLastExportTime must be true or false, not a string."),
        ("redriveCount", "1", "redriveCount must be an integer, not a string."),
        ("redriveCount", 1.5, "redriveCount must be an integer, not a number."),
        ("redriveCount", True, "redriveCount must be an integer, not a boolean."),
        ("redriveCount", -1, "redriveCount can't be negative."),
        (
            "sharingMode",
            "shared",
            "sharingMode must be one of ALL, SHARED, PUBLIC_ONLY, not 'shared'.",
        ),
        ("studyWhitelist", "study", "studyWhitelist must be an array of study IDs, not a string."),
        ("studyWhitelist", ["a", 1], "studyWhitelist must be an array of strings."),
        ("tableWhitelist", {}, "tableWhitelist must be an array of schema keys, not an object."),
        (
            "synapseProjectOverrideMap",
            ["p"],
            "synapseProjectOverrideMap must be an object, not an array.",
        ),
        ("tag", 7, "tag must be a string, not a number."),
        (
            "endDateTime",
            1462827193801,
            f"endDateTime must be a date-time string such as {END}, not a number.",
        ),
    ],
)
def test_fields_of_the_wrong_json_type_are_refused(field: str, value: Any, message: str) -> None:
    body = {"useLastExportTime": True, "endDateTime": END, field: value}
    assert rejected(body) == message


def test_project_map_values_must_be_strings() -> None:
    body = {
        "useLastExportTime": True,
        "endDateTime": END,
        "exporterDdbPrefixOverride": "p-",
        "synapseProjectOverrideMap": {"study": 123},
    }
    assert rejected(body) == "synapseProjectOverrideMap must map study IDs to project ID strings."


def test_null_fields_take_their_defaults() -> None:
    request = parse_request(
        {
            "useLastExportTime": True,
            "endDateTime": END,
            "redriveCount": None,
            "sharingMode": None,
            "tag": None,
            "studyWhitelist": None,
            "startDateTime": None,
        }
    )
    assert (request.redrive_count, request.sharing_mode, request.tag) == (0, "SHARED", "(no tag)")
    assert request.study_whitelist is None


# Malformed bodies (BridgeExporterSqsCallbackTest) -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Export request is empty; expected a JSON object."),
        ("   ", "Export request is empty; expected a JSON object."),
        (b"", "Export request is empty; expected a JSON object."),
        (
            "This is not JSON",
            "Export request is not valid JSON: Expecting value at line 1 column 1.",
        ),
        ('{"useLastExportTime": true,}', "Export request is not valid JSON: "),
        ("[]", "Export request must be a JSON object, not an array."),
        ("null", "Export request must be a JSON object, not null."),
        ('"text"', "Export request must be a JSON object, not a string."),
        ("42", "Export request must be a JSON object, not a number."),
        (b"\xff\xfe{", "Export request is not UTF-8 text: "),
    ],
)
def test_malformed_bodies_are_refused_with_the_problem_named(body: Any, message: str) -> None:
    assert rejected(body).startswith(message)


def test_joda_lenient_end_is_read_and_the_request_fails_for_its_missing_flag() -> None:
    body = '{"endDateTime":"2016-08-13T0:00-0700","tag":"invalid request"}'
    assert rejected(body) == "useLastExportTime must be specified."


def test_json_text_and_bytes_are_read() -> None:
    text = json.dumps({"useLastExportTime": True, "endDateTime": END, "tag": "nightly"})
    assert parse_request(text) == parse_request(text.encode()) == parse_request(json.loads(text))


# Date-times --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("2016-05-09T13:53:13.801-07:00", "2016-05-09T13:53:13.801-07:00"),
        ("2016-05-09T13:53:13.801-0700", "2016-05-09T13:53:13.801-07:00"),
        ("2016-05-09T13:53:13.801-07", "2016-05-09T13:53:13.801-07:00"),
        ("2016-05-09T20:53:13.801Z", "2016-05-09T20:53:13.801Z"),
        ("2016-05-09T20:53:13.801+0000", "2016-05-09T20:53:13.801Z"),
        ("2016-06-09T10:09:08.765+05:30", "2016-06-09T10:09:08.765+05:30"),
        ("2016-08-13T0:00-0700", "2016-08-13T00:00:00.000-07:00"),
        ("2016-8-3T7-0700", "2016-08-03T07:00:00.000-07:00"),
        ("2016-05-09T13:53:13,5+09:00", "2016-05-09T13:53:13.500+09:00"),
        ("2016-05-09T13:53:13.801999-07:00", "2016-05-09T13:53:13.801-07:00"),
    ],
)
def test_accepted_date_times_keep_their_offset(text: str, written: str) -> None:
    assert format_datetime(parse_datetime(text)) == written


@pytest.mark.parametrize(
    "text",
    [
        "2016-05-09T13:53:13.801",  # no offset: Bridge-EX would guess the JVM's zone
        "2016-05-09",
        "2016-13-09T13:53Z",
        "2016-05-09T24:00Z",
        "2016-05-09T13:53+24:00",
        "2016-05-09T13:53+05:60",
        "2016-05-09 13:53Z",
        "Thursday June 9th 2016 @ 4:10pm",
    ],
)
def test_other_date_times_are_refused(text: str) -> None:
    body = {"useLastExportTime": True, "endDateTime": text}
    assert rejected(body).startswith("endDateTime is not a")


def test_start_before_end_compares_instants_across_offsets() -> None:
    request = parse_request(
        {
            "useLastExportTime": False,
            "startDateTime": "2016-05-09T20:00:00.000Z",
            "endDateTime": "2016-05-09T13:00:00.001-07:00",
        }
    )
    assert request.start_date_time is not None
    assert request.start_date_time.utcoffset() == timedelta(0)
    assert request.end_date_time == datetime(2016, 5, 9, 13, 0, 0, 1000, tzinfo=PDT)


# JSON output and round trip ----------------------------------------------------------------------


def test_json_output_leaves_out_absent_fields_and_always_writes_four() -> None:
    assert parse_request({"useLastExportTime": True, "endDateTime": END}).to_json() == {
        "endDateTime": END,
        "redriveCount": 0,
        "useLastExportTime": True,
        "sharingMode": "SHARED",
        "tag": "(no tag)",
    }


def test_override_is_written_under_its_new_name() -> None:
    request = parse_request({"useLastExportTime": False, "recordIdS3Override": "key"})
    assert request.to_json()["recordIdOverride"] == "key"
    assert "recordIdS3Override" not in request.to_json()


def test_every_field_round_trips_through_json_text() -> None:
    request = parse_request(
        {
            "startDateTime": "2016-05-09T13:51:57.682-0700",
            "endDateTime": "2016-05-10T00:00Z",
            "useLastExportTime": False,
            "redriveCount": 1,
            "sharingMode": "PUBLIC_ONLY",
            "appWhitelist": ["foo-study", "bar-study"],
            "tableWhitelist": [
                {"appId": "foo-study", "schemaId": "foo-schema", "revision": 3},
                {"studyId": "bar-study", "schemaId": "bar-schema", "revision": 7},
            ],
            "exporterDdbPrefixOverride": "test-ddb-prefix-",
            "synapseProjectOverrideMap": {"foo-study": "syn1", "bar-study": "syn2"},
            "tag": "test-tag",
        }
    )
    written = request.to_json()
    assert written["startDateTime"] == "2016-05-09T13:51:57.682-07:00"
    assert written["endDateTime"] == "2016-05-10T00:00:00.000Z"
    assert written["studyWhitelist"] == ["bar-study", "foo-study"]
    again = parse_request(json.dumps(written))
    assert again == request
    assert again.to_json() == written


def test_schema_key_string_form() -> None:
    assert str(SchemaKey("parkinson", "Voice Activity", 1)) == "parkinson-Voice Activity-v1"


# Redrives (§11, §13 vector 18) --------------------------------------------------------------------

ORIGINAL = parse_request(
    {
        "endDateTime": "2016-08-15T00:00:00.000-0700",
        "useLastExportTime": True,
        "sharingMode": "ALL",
        "tag": "test tag",
    }
)


def test_record_redrive_reads_the_id_list_with_no_dates() -> None:
    now = parse_datetime("2016-08-15T18:30:00.001-0700")
    name = redrive_record_ids_name(now)
    assert name == "redrive-record-ids.2016-08-16T01:30:00.001Z"
    redrive = ORIGINAL.redrive_copy(record_id_override=name)
    assert redrive.to_json() == {
        "recordIdOverride": "redrive-record-ids.2016-08-16T01:30:00.001Z",
        "redriveCount": 1,
        "useLastExportTime": False,
        "sharingMode": "ALL",
        "tag": "redrive export; original: test tag",
    }
    assert redrive.shape == "C"


def test_redrive_of_a_redrive_does_not_repeat_the_tag_prefix() -> None:
    first = ORIGINAL.redrive_copy(record_id_override="ids-1")
    second = first.redrive_copy(record_id_override="ids-2")
    assert second.tag == "redrive export; original: test tag"
    assert second.redrive_count == 2


@pytest.mark.parametrize("study", ["study-A", "study-C", "study-E"])
def test_table_redrive_of_a_last_export_request_starts_at_the_study_start(study: str) -> None:
    study_start = parse_datetime("2016-08-14T00:00:00.000-0700")
    tables = [SchemaKey(study, "schema", 1)]
    redrive = ORIGINAL.redrive_copy(study_id=study, tables=tables, study_start=study_start)
    assert redrive.to_json() == {
        "startDateTime": "2016-08-14T00:00:00.000-07:00",
        "endDateTime": "2016-08-15T00:00:00.000-07:00",
        "redriveCount": 1,
        "useLastExportTime": False,
        "sharingMode": "ALL",
        "studyWhitelist": [study],
        "tableWhitelist": [{"appId": study, "schemaId": "schema", "revision": 1}],
        "tag": "redrive export; original: test tag",
    }
    assert redrive.shape == "B"


def test_table_redrive_of_a_fixed_window_keeps_its_window() -> None:
    window = parse_request({"useLastExportTime": False, "startDateTime": START, "endDateTime": END})
    redrive = window.redrive_copy(study_id="s", tables=[SchemaKey("s", "x", 2)])
    assert (redrive.start_date_time, redrive.end_date_time) == (
        window.start_date_time,
        window.end_date_time,
    )
    assert redrive.study_whitelist == frozenset({"s"})
    assert redrive.table_whitelist == frozenset({SchemaKey("s", "x", 2)})


def test_table_redrive_of_a_last_export_request_needs_the_study_start() -> None:
    with pytest.raises(ValueError, match="study_start is required"):
        ORIGINAL.redrive_copy(study_id="study-A", tables=[SchemaKey("study-A", "schema", 1)])


def test_redrive_copy_needs_one_form() -> None:
    with pytest.raises(ValueError, match="give record_id_override, or study_id"):
        ORIGINAL.redrive_copy()
    with pytest.raises(ValueError, match="record_id_override alone"):
        ORIGINAL.redrive_copy(record_id_override="ids", study_id="s")
