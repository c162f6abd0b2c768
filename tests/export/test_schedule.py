"""Scheduling: the scheduler's request, the studies chosen and each study's start (spec §2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dutydesk.export.request import (
    InvalidRequest,
    format_datetime,
    parse_datetime,
    parse_request,
)
from dutydesk.export.schedule import (
    ScheduleType,
    StudyInfo,
    parse_schedule_type,
    scheduled_request,
    select_studies,
    study_start,
    uploaded_on_range,
    validate_override,
)

# Spec §13 vector 16 (BridgeExporterSchedulerTest) ------------------------------------------------

NOW = parse_datetime("2016-02-01T16:47:55.273+0900")
TOKYO = "Asia/Tokyo"


@pytest.mark.parametrize("configured", [None, "", "DAILY", "INVALID_TYPE"])
def test_daily_request_ends_at_midnight_and_tags_yesterday(configured: str | None) -> None:
    schedule_type, _ = parse_schedule_type(configured)
    request = scheduled_request("test-scheduler", TOKYO, schedule_type, None, NOW)
    assert request == {
        "endDateTime": "2016-02-01T00:00:00.000+09:00",
        "useLastExportTime": True,
        "tag": "[scheduler=test-scheduler;date=2016-01-31]",
    }


def test_hourly_request_ends_at_the_hour_and_keeps_the_override() -> None:
    override = {"studyWhitelist": ["hourly-study"]}
    request = scheduled_request("test-scheduler", TOKYO, ScheduleType.HOURLY, override, NOW)
    assert request == {
        "studyWhitelist": ["hourly-study"],
        "endDateTime": "2016-02-01T16:00:00.000+09:00",
        "useLastExportTime": True,
        "tag": "[scheduler=test-scheduler;endDateTime=2016-02-01T16:00:00.000+09:00]",
    }


def test_unknown_override_keys_pass_through_the_scheduler() -> None:
    request = scheduled_request("test-scheduler", TOKYO, ScheduleType.DAILY, {"foo": "bar"}, NOW)
    assert len(request) == 4
    assert request["foo"] == "bar"
    assert request["endDateTime"] == "2016-02-01T00:00:00.000+09:00"


def test_parse_request_refuses_what_an_unknown_override_key_produces() -> None:
    request = scheduled_request("test-scheduler", TOKYO, ScheduleType.DAILY, {"foo": "bar"}, NOW)
    with pytest.raises(InvalidRequest, match="Unknown field in export request: foo"):
        parse_request(request)


@pytest.mark.parametrize("schedule_type", list(ScheduleType))
def test_scheduled_requests_are_valid_shape_a_requests(schedule_type: ScheduleType) -> None:
    override = {"studyWhitelist": ["hourly-study"], "sharingMode": "ALL"}
    request = parse_request(scheduled_request("s", TOKYO, schedule_type, override, NOW))
    assert request.shape == "A"
    assert request.study_whitelist == frozenset({"hourly-study"})


def test_scheduler_fields_overwrite_the_override_and_leave_it_unchanged() -> None:
    override = {
        "useLastExportTime": False,
        "endDateTime": "x",
        "tag": "mine",
        "studyWhitelist": ["a"],
    }
    request = scheduled_request("s", TOKYO, ScheduleType.DAILY, override, NOW)
    assert request["useLastExportTime"] is True
    assert request["tag"] == "[scheduler=s;date=2016-01-31]"
    request["studyWhitelist"].append("b")
    assert override == {
        "useLastExportTime": False,
        "endDateTime": "x",
        "tag": "mine",
        "studyWhitelist": ["a"],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (ScheduleType.DAILY, None)),
        ("", (ScheduleType.DAILY, None)),
        ("DAILY", (ScheduleType.DAILY, None)),
        ("HOURLY", (ScheduleType.HOURLY, None)),
        ("INVALID_TYPE", (ScheduleType.DAILY, "Invalid schedule type: INVALID_TYPE")),
        ("hourly", (ScheduleType.DAILY, "Invalid schedule type: hourly")),
    ],
)
def test_schedule_type_falls_back_to_daily_with_a_warning(
    value: str | None, expected: tuple[ScheduleType, str | None]
) -> None:
    assert parse_schedule_type(value) == expected


def test_daily_end_uses_the_offset_in_force_at_midnight() -> None:
    # Los Angeles moved to daylight time at 02:00 on 2016-03-13; midnight was still PST.
    now = parse_datetime("2016-03-13T12:00:00.000-07:00")
    request = scheduled_request("s", "America/Los_Angeles", ScheduleType.DAILY, None, now)
    assert request["endDateTime"] == "2016-03-13T00:00:00.000-08:00"
    assert request["tag"] == "[scheduler=s;date=2016-03-12]"


def test_daily_end_skips_a_midnight_that_did_not_happen() -> None:
    # São Paulo's clocks went from 00:00 to 01:00 on 2018-11-04; Joda's start of day is 01:00.
    now = parse_datetime("2018-11-04T12:00:00.000-02:00")
    request = scheduled_request("s", "America/Sao_Paulo", ScheduleType.DAILY, None, now)
    assert request["endDateTime"] == "2018-11-04T01:00:00.000-02:00"


def test_hourly_end_in_the_repeated_hour_keeps_its_offset() -> None:
    # 01:30 PST on 2016-11-06 is the second 01:30 of the night in Los Angeles.
    now = parse_datetime("2016-11-06T01:30:00.000-08:00")
    request = scheduled_request("s", "America/Los_Angeles", ScheduleType.HOURLY, None, now)
    assert request["endDateTime"] == "2016-11-06T01:00:00.000-08:00"


def test_utc_scheduler_writes_z() -> None:
    request = scheduled_request("s", "UTC", ScheduleType.DAILY, None, NOW)
    assert request["endDateTime"] == "2016-02-01T00:00:00.000Z"
    assert request["tag"] == "[scheduler=s;date=2016-01-31]"


def test_unknown_time_zone_and_naive_clock_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus'"):
        scheduled_request("s", "Mars/Olympus", ScheduleType.DAILY, None, NOW)
    with pytest.raises(ValueError, match="Unknown time zone ''"):
        scheduled_request("s", "", ScheduleType.DAILY, None, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        scheduled_request("s", TOKYO, ScheduleType.DAILY, None, datetime(2016, 2, 1))


def test_override_check_accepts_a_study_whitelist() -> None:
    validate_override({"studyWhitelist": ["hourly-study"], "sharingMode": "PUBLIC_ONLY"})
    validate_override({})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"foo": "bar"}, "Invalid request override: Unknown field in export request: foo."),
        ({"startDateTime": "2016-01-01T00:00Z"}, "Invalid request override: Exactly one of"),
        ({"recordIdOverride": "ids"}, "Invalid request override: Exactly one of"),
        ({"studyWhitelist": []}, "Invalid request override: If studyWhitelist is specified"),
        ({"sharingMode": "EVERYTHING"}, "Invalid request override: sharingMode must be one of"),
    ],
)
def test_override_check_refuses_what_would_fail_at_every_run(
    override: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_override(override)
    assert str(caught.value).startswith(message)


def test_override_check_refuses_a_non_object() -> None:
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        validate_override(["studyWhitelist"])  # type: ignore[arg-type]


# Spec §13 vector 17 (DynamoHelperTest, RecordIdSourceFactoryTest) --------------------------------

END = "2016-05-09T23:37:44.326-0700"
LAST_EXPORT_REQUEST = parse_request({"useLastExportTime": True, "endDateTime": END})
SCAN = [
    StudyInfo("foo"),
    StudyInfo("bar"),
    StudyInfo("unconfigured", configured=False),
    StudyInfo("disabled", disable_export=True),
    StudyInfo("custom-schedule", uses_custom_export_schedule=True),
]


def test_scan_drops_unconfigured_disabled_and_custom_schedule_studies() -> None:
    assert select_studies(LAST_EXPORT_REQUEST, SCAN) == ["bar", "foo"]


def test_whitelist_keeps_custom_schedule_studies_and_ignores_the_rest_of_the_table() -> None:
    request = parse_request(
        {
            "useLastExportTime": True,
            "endDateTime": END,
            "studyWhitelist": ["normal", "custom-schedule"],
        }
    )
    candidates = [*SCAN, StudyInfo("normal")]
    assert select_studies(request, candidates) == ["custom-schedule", "normal"]


def test_whitelisted_study_without_info_or_disabled_is_dropped() -> None:
    request = parse_request(
        {"useLastExportTime": True, "endDateTime": END, "studyWhitelist": ["missing", "disabled"]}
    )
    assert select_studies(request, SCAN) == []


def test_study_id_excluded_in_export_does_not_affect_selection() -> None:
    assert select_studies(
        LAST_EXPORT_REQUEST, [StudyInfo("x", study_id_excluded_in_export=True)]
    ) == ["x"]


def test_record_list_request_exports_no_study() -> None:
    request = parse_request({"useLastExportTime": False, "recordIdOverride": "test-override"})
    assert select_studies(request, SCAN) == []
    assert study_start(request, None) is None


def test_study_without_an_export_time_starts_at_the_day_before_in_the_ends_offset() -> None:
    start = study_start(LAST_EXPORT_REQUEST, None)
    assert start is not None
    assert format_datetime(start) == "2016-05-08T00:00:00.000-07:00"


@pytest.mark.parametrize("after_end", [timedelta(0), timedelta(seconds=10)])
def test_study_exported_up_to_or_past_the_end_is_skipped(after_end: timedelta) -> None:
    end = LAST_EXPORT_REQUEST.end_date_time
    assert end is not None
    assert study_start(LAST_EXPORT_REQUEST, end + after_end) is None


def test_study_starts_at_its_last_export_shown_in_the_ends_offset() -> None:
    last_export = datetime(2016, 5, 9, 12, 0, tzinfo=UTC)
    start = study_start(LAST_EXPORT_REQUEST, last_export)
    assert start == last_export
    assert start is not None and format_datetime(start) == "2016-05-09T05:00:00.000-07:00"


def test_fixed_window_gives_every_study_the_request_start() -> None:
    request = parse_request(
        {"useLastExportTime": False, "startDateTime": "2016-05-09T00:00-0700", "endDateTime": END}
    )
    assert study_start(request, datetime(2016, 5, 9, 12, 0, tzinfo=UTC)) == request.start_date_time


def test_naive_last_export_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        study_start(LAST_EXPORT_REQUEST, datetime(2016, 5, 9))


def test_uploaded_on_range_is_inclusive_of_start_and_exclusive_of_end() -> None:
    start = parse_datetime("1970-01-01T00:00:01.000Z")
    end = parse_datetime("2016-05-09T23:37:44.326-0700")
    assert uploaded_on_range(start, end) == (1000, 1462862264325)
