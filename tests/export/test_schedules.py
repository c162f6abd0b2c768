"""Export schedules: saved with their checks, fired once per period by the tick, pages and API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.audit.models import AuditEvent
from dutydesk.export import schedules
from dutydesk.export.models import ExportRun, ExportSchedule
from dutydesk.export.request import parse_datetime
from dutydesk.export.schedule import ScheduleType
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from dutydesk.people.models import Role
from tests.conftest import make_user, sign_in

# Spec §13 vector 16 (BridgeExporterSchedulerTest), fired end to end.
NOW = parse_datetime("2016-02-01T16:47:55.273+0900")
TOKYO = "Asia/Tokyo"
EARLIER_THAT_DAY = parse_datetime("2016-02-01T09:10:00.000+0900")
THE_DAY_BEFORE = parse_datetime("2016-01-31T12:00:00.000+0900")


@pytest.fixture(autouse=True)
def domains() -> None:
    """The job kinds a run needs ("export.run") are registered, as in the worker."""
    registry.load_domains()


def add(db: Session, name: str = "test-scheduler", **fields: object) -> ExportSchedule:
    """A committed schedule, created the day before NOW unless `now` is given."""
    values: dict[str, object] = {
        "time_zone": TOKYO,
        "schedule_type": "DAILY",
        "request_override": None,
        "now": THE_DAY_BEFORE,
        **fields,
    }
    schedule = schedules.create_schedule(db, name=name, **values)  # type: ignore[arg-type]
    db.commit()
    return schedule


def fire(db: Session, now: datetime) -> list[ExportRun]:
    """Run the due work at `now` and commit, as the tick does; the runs it started."""
    run_ids = schedules.fire_due_schedules(db, now)
    db.commit()
    return [run for run_id in run_ids if (run := db.get(ExportRun, run_id)) is not None]


def runs_by(db: Session, name: str) -> list[ExportRun]:
    return list(db.scalars(select(ExportRun).where(ExportRun.created_by == f"schedule:{name}")))


# Firing ------------------------------------------------------------------------------------------


def test_daily_schedule_fires_the_vector_16_request_as_a_queued_run(db: Session) -> None:
    add(db, "test-scheduler")
    [run] = fire(db, NOW)
    assert run.request["endDateTime"] == "2016-02-01T00:00:00.000+09:00"
    assert run.request["useLastExportTime"] is True
    assert run.request["tag"] == "[scheduler=test-scheduler;date=2016-01-31]"
    assert run.created_by == "schedule:test-scheduler"
    assert run.state == "queued"
    job = db.scalars(select(Job).where(Job.kind == "export.run")).one()
    assert job.args == {"run_id": run.id}


def test_hourly_schedule_fires_for_the_hour_with_its_study_whitelist(db: Session) -> None:
    add(
        db,
        "test-scheduler",
        schedule_type="HOURLY",
        request_override={"studyWhitelist": ["hourly-study"]},
        now=EARLIER_THAT_DAY,
    )
    [run] = fire(db, NOW)
    end = "2016-02-01T16:00:00.000+09:00"
    assert run.request["endDateTime"] == end
    assert run.request["studyWhitelist"] == ["hourly-study"]
    assert run.request["useLastExportTime"] is True
    assert run.request["tag"] == f"[scheduler=test-scheduler;endDateTime={end}]"
    schedule = db.scalars(select(ExportSchedule)).one()
    assert schedule.last_fired_for == end


def test_daily_schedule_fires_once_a_local_day(db: Session) -> None:
    schedule = add(db, "nightly")
    assert len(fire(db, NOW)) == 1
    assert schedule.last_fired_for == "2016-02-01"
    assert fire(db, NOW + timedelta(hours=5)) == []  # 21:47 in Tokyo, still the same day
    assert fire(db, parse_datetime("2016-02-01T23:59:59.999+0900")) == []
    [next_day] = fire(db, parse_datetime("2016-02-02T00:00:05.000+0900"))
    assert next_day.request["endDateTime"] == "2016-02-02T00:00:00.000+09:00"
    assert len(runs_by(db, "nightly")) == 2


def test_hourly_schedule_fires_once_an_hour(db: Session) -> None:
    add(db, "hourly", schedule_type="HOURLY", now=EARLIER_THAT_DAY)
    assert len(fire(db, NOW)) == 1
    assert fire(db, parse_datetime("2016-02-01T16:59:59.000+0900")) == []
    [later] = fire(db, parse_datetime("2016-02-01T17:00:10.000+0900"))
    assert later.request["endDateTime"] == "2016-02-01T17:00:00.000+09:00"


def test_the_day_follows_the_schedules_own_time_zone(db: Session) -> None:
    # 16:47 in Tokyo is 23:47 the day before in Los Angeles: LA's day has not turned yet.
    add(db, "la", time_zone="America/Los_Angeles", now=parse_datetime("2016-01-31T08:00-0800"))
    assert fire(db, NOW) == []
    [run] = fire(db, parse_datetime("2016-02-01T00:00:30.000-0800"))
    assert run.request["endDateTime"] == "2016-02-01T00:00:00.000-08:00"


def test_disabled_schedule_never_fires(db: Session) -> None:
    add(db, "off", enabled=False)
    add(db, "hourly-off", schedule_type="HOURLY", enabled=False)
    for days in range(3):
        assert fire(db, NOW + timedelta(days=days)) == []
    assert db.scalars(select(ExportRun)).all() == []


def test_new_schedule_waits_for_the_next_boundary(db: Session) -> None:
    schedule = add(db, "new", now=EARLIER_THAT_DAY)
    assert schedule.last_fired_for == "2016-02-01"
    assert fire(db, NOW) == []
    [run] = fire(db, parse_datetime("2016-02-02T00:01:00.000+0900"))
    assert run.request["tag"] == "[scheduler=new;date=2016-02-01]"


def test_new_hourly_schedule_waits_for_the_next_hour(db: Session) -> None:
    hourly = add(db, "new-hourly", schedule_type="HOURLY", now=NOW)
    assert hourly.last_fired_for == "2016-02-01T16:00:00.000+09:00"
    assert fire(db, NOW + timedelta(minutes=5)) == []
    [run] = fire(db, NOW + timedelta(minutes=13))
    assert run.request["endDateTime"] == "2016-02-01T17:00:00.000+09:00"


def test_switching_a_schedule_back_on_waits_for_the_next_boundary(db: Session) -> None:
    schedule = add(db, "paused", enabled=False)
    schedules.update_schedule(db, schedule, enabled=True, now=EARLIER_THAT_DAY)
    db.commit()
    assert fire(db, NOW) == []
    assert len(fire(db, NOW + timedelta(days=1))) == 1


def test_changing_the_type_starts_counting_periods_anew(db: Session) -> None:
    schedule = add(db, "switch")
    schedules.update_schedule(db, schedule, schedule_type="HOURLY", now=EARLIER_THAT_DAY)
    db.commit()
    assert schedule.last_fired_for == "2016-02-01T09:00:00.000+09:00"
    [run] = fire(db, NOW)
    assert run.request["endDateTime"] == "2016-02-01T16:00:00.000+09:00"


def test_a_schedule_whose_stored_override_fails_is_skipped_and_the_others_fire(
    db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    broken = add(db, "broken")
    add(db, "fine")
    broken.request_override = {"foo": "bar"}  # edited outside the desk, past the checks
    db.commit()
    runs = fire(db, NOW)
    assert [run.created_by for run in runs] == ["schedule:fine"]
    assert "export schedule broken did not fire for 2016-02-01" in caplog.text
    assert "Unknown field in export request: foo" in caplog.text
    assert broken.last_fired_for == "2016-02-01"  # logged once per period, not at every tick
    assert fire(db, NOW + timedelta(minutes=1)) == []


def test_an_unknown_stored_type_fires_as_daily_with_a_warning(
    db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = add(db, "legacy")
    schedule.schedule_type = "WEEKLY"  # a row written before the checks, as Bridge allowed
    db.commit()
    [run] = fire(db, NOW)
    assert run.request["endDateTime"] == "2016-02-01T00:00:00.000+09:00"
    assert "Invalid schedule type: WEEKLY" in caplog.text


def test_tick_runs_the_registered_due_work(db: Session, factory: sessionmaker[Session]) -> None:
    assert registry.due_work["export.schedules"] is schedules.fire_schedules
    schedules.create_schedule(
        db,
        name="today",
        time_zone="UTC",
        schedule_type="DAILY",
        now=parse_datetime("2000-01-01T00:00Z"),
    )
    db.commit()
    assert "export.schedules" in jobs.tick(factory)
    assert [run.request["tag"][:21] for run in runs_by(db, "today")] == ["[scheduler=today;date"]


# Checks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "has space"}, "Schedule name 'has space' is not allowed"),
        ({"name": ""}, "Schedule name '' is not allowed"),
        ({"name": "x" * 101}, "use 1 to 100 letters"),
        ({"time_zone": "Mars/Olympus"}, "Unknown time zone 'Mars/Olympus'; use an IANA ID"),
        ({"time_zone": "../etc/passwd"}, "Unknown time zone '../etc/passwd'"),
        ({"time_zone": "asia/tokyo"}, "Unknown time zone 'asia/tokyo'"),
        ({"schedule_type": "WEEKLY"}, "Invalid schedule type: 'WEEKLY'; use DAILY or HOURLY."),
        ({"schedule_type": "daily"}, "Invalid schedule type: 'daily'"),
        (
            {"request_override": {"foo": "bar"}},
            "Invalid request override: Unknown field in export request: foo.",
        ),
        ({"request_override": ["hourly-study"]}, "The request override must be a JSON object."),
        ({"request_override": {"studyWhitelist": []}}, "If studyWhitelist is specified"),
        (
            {"request_override": {"endDateTime": "2016-01-01T00:00Z"}},
            "The request override may not set endDateTime",
        ),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_problem(
    db: Session, fields: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "name": "s",
        "time_zone": TOKYO,
        "schedule_type": "DAILY",
        "request_override": None,
        **fields,
    }
    with pytest.raises(schedules.ScheduleError) as caught:
        schedules.create_schedule(db, **values)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert db.scalars(select(ExportSchedule)).all() == []


def test_a_name_is_used_once(db: Session) -> None:
    add(db, "nightly")
    with pytest.raises(schedules.ScheduleError, match="A schedule named 'nightly' already exists"):
        schedules.create_schedule(db, name="nightly", time_zone="UTC", schedule_type="HOURLY")


def test_a_refused_update_changes_nothing(db: Session) -> None:
    schedule = add(db, "keep", request_override={"studyWhitelist": ["a"]})
    with pytest.raises(schedules.ScheduleError, match="Unknown time zone"):
        schedules.update_schedule(
            db, schedule, time_zone="Nowhere", request_override={"studyWhitelist": ["b"]}
        )
    db.commit()
    db.refresh(schedule)
    assert (schedule.time_zone, schedule.request_override) == (TOKYO, {"studyWhitelist": ["a"]})


def test_override_text_from_a_form_is_parsed_and_checked() -> None:
    assert schedules.parse_override_text("  ") is None
    assert schedules.parse_override_text('{"studyWhitelist": ["s"]}') == {"studyWhitelist": ["s"]}
    with pytest.raises(schedules.ScheduleError, match="not valid JSON: Expecting value at line 1"):
        schedules.parse_override_text("nope")
    with pytest.raises(schedules.ScheduleError, match="Unknown field in export request: foo"):
        schedules.parse_override_text('{"foo": "bar"}')


def test_next_boundary_is_the_start_of_the_next_period() -> None:
    daily = schedules.next_boundary(TOKYO, ScheduleType.DAILY, NOW)
    hourly = schedules.next_boundary(TOKYO, ScheduleType.HOURLY, NOW)
    assert daily.isoformat() == "2016-02-02T00:00:00+09:00"
    assert hourly.isoformat() == "2016-02-01T17:00:00+09:00"
    # Los Angeles falls back at 02:00 PDT on 2016-11-06: 01:00 PST is an hour of its own.
    fall = parse_datetime("2016-11-06T01:30:00.000-0700")
    after = schedules.next_boundary("America/Los_Angeles", ScheduleType.HOURLY, fall)
    assert after.isoformat() == "2016-11-06T01:00:00-08:00"


# Audit -------------------------------------------------------------------------------------------


def test_create_update_and_delete_are_audited_with_the_actor(db: Session) -> None:
    db.info["actor"] = "alice"
    schedule = add(db, "audited")
    schedules.update_schedule(db, schedule, request_override={"studyWhitelist": ["s1"]})
    db.commit()
    schedule_id = str(schedule.id)
    schedules.delete_schedule(db, schedule)
    db.commit()
    events = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "export_schedules", AuditEvent.object_id == schedule_id)
        .order_by(AuditEvent.id)
    ).all()
    assert [(event.action, event.actor) for event in events] == [
        ("create", "alice"),
        ("update", "alice"),
        ("delete", "alice"),
    ]
    assert events[0].after is not None and events[0].after["name"] == "audited"
    assert events[1].diff["request_override"] == [None, {"studyWhitelist": ["s1"]}]


# Pages -------------------------------------------------------------------------------------------


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def operator(client: TestClient, db: Session) -> Iterator[str]:
    """The client signed in as an operator; yields the CSRF token for forms."""
    yield sign_in(client, db, make_user(db, Role.operator, "olga"))


def test_operator_adds_changes_and_deletes_a_schedule_in_the_console(
    client: TestClient, db: Session, operator: str
) -> None:
    created = client.post(
        "/exports/schedules",
        data={
            "csrf_token": operator,
            "name": "hourly-study",
            "time_zone": " Asia/Tokyo ",
            "schedule_type": "HOURLY",
            "request_override": '{"studyWhitelist": ["hourly-study"]}',
            "enabled": "true",
        },
    )
    assert created.status_code == 303
    page = client.get("/exports/schedules")
    assert page.status_code == 200
    assert "hourly-study" in page.text and "Asia/Tokyo" in page.text
    assert "{&#34;studyWhitelist&#34;: [&#34;hourly-study&#34;]}" in page.text
    schedule = db.scalars(select(ExportSchedule)).one()
    assert (schedule.time_zone, schedule.enabled) == (TOKYO, True)

    changed = client.post(
        f"/exports/schedules/{schedule.id}",
        data={"csrf_token": operator, "time_zone": "UTC", "schedule_type": "DAILY"},
    )
    assert changed.status_code == 303
    db.refresh(schedule)
    assert (schedule.time_zone, schedule.schedule_type) == ("UTC", "DAILY")
    assert (schedule.request_override, schedule.enabled) == (None, False)

    deleted = client.post(f"/exports/schedules/{schedule.id}/delete", data={"csrf_token": operator})
    assert deleted.status_code == 303
    assert db.scalars(select(ExportSchedule)).all() == []
    actors = {
        event.actor
        for event in db.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "export_schedules")
        )
    }
    assert actors == {"olga"}


def test_bad_form_input_comes_back_with_the_reason(
    client: TestClient, db: Session, operator: str
) -> None:
    answer = client.post(
        "/exports/schedules",
        data={
            "csrf_token": operator,
            "name": "nightly",
            "time_zone": "Mars/Olympus",
            "schedule_type": "DAILY",
            "request_override": '{"studyWhitelist": ["s1"]}',
        },
    )
    assert answer.status_code == 400
    assert "Unknown time zone &#39;Mars/Olympus&#39;" in answer.text
    assert 'value="nightly"' in answer.text  # what was typed is kept
    assert "{&#34;studyWhitelist&#34;: [&#34;s1&#34;]}</textarea>" in answer.text
    schedule = add(db, "nightly")
    answer = client.post(
        f"/exports/schedules/{schedule.id}",
        data={
            "csrf_token": operator,
            "time_zone": TOKYO,
            "schedule_type": "DAILY",
            "request_override": '{"foo": 1}',
            "enabled": "true",
        },
    )
    assert answer.status_code == 400
    assert "Unknown field in export request: foo" in answer.text
    assert "<details open>" in answer.text
    db.refresh(schedule)
    assert schedule.request_override is None


def test_unknown_schedule_is_404_in_the_console(client: TestClient, operator: str) -> None:
    answer = client.post(
        "/exports/schedules/999",
        data={"csrf_token": operator, "time_zone": "UTC", "schedule_type": "DAILY"},
    )
    assert answer.status_code == 404
    answer = client.post("/exports/schedules/999/delete", data={"csrf_token": operator})
    assert answer.status_code == 404


def test_viewer_sees_schedules_but_may_not_change_them(client: TestClient, db: Session) -> None:
    schedule = add(db, "nightly")
    token = sign_in(client, db, make_user(db, Role.viewer, "vera"))
    page = client.get("/exports/schedules")
    assert page.status_code == 200
    assert "nightly" in page.text
    assert "Add a schedule" not in page.text
    assert f'action="/exports/schedules/{schedule.id}/delete"' not in page.text
    form = {"csrf_token": token, "name": "x", "time_zone": "UTC", "schedule_type": "DAILY"}
    assert client.post("/exports/schedules", data=form).status_code == 403
    assert client.post(f"/exports/schedules/{schedule.id}", data=form).status_code == 403
    deleted = client.post(f"/exports/schedules/{schedule.id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 403
    assert db.scalars(select(ExportSchedule.name)).all() == ["nightly"]


def test_anonymous_visitor_is_sent_to_sign_in(client: TestClient) -> None:
    answer = client.get("/exports/schedules")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/exports/schedules"


def test_form_without_csrf_token_is_refused(client: TestClient, db: Session, operator: str) -> None:
    form = {"name": "x", "time_zone": "UTC", "schedule_type": "DAILY"}
    assert client.post("/exports/schedules", data=form).status_code == 403
    assert db.scalars(select(ExportSchedule)).all() == []


# API ---------------------------------------------------------------------------------------------


def bearer(db: Session, scope: str) -> dict[str, str]:
    made = people.create_token(db, f"{scope}-token", [scope])
    db.commit()
    return {"Authorization": f"Bearer {made.secret}"}


def test_api_creates_lists_changes_and_deletes_schedules(client: TestClient, db: Session) -> None:
    headers = bearer(db, "write")
    created = client.post(
        "/api/v1/export-schedules",
        json={
            "name": "hourly-study",
            "timeZone": TOKYO,
            "scheduleType": "HOURLY",
            "requestOverride": {"studyWhitelist": ["hourly-study"]},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert {key: body[key] for key in ("name", "timeZone", "scheduleType", "enabled")} == {
        "name": "hourly-study",
        "timeZone": TOKYO,
        "scheduleType": "HOURLY",
        "enabled": True,
    }
    assert body["requestOverride"] == {"studyWhitelist": ["hourly-study"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\.000\+09:00", body["lastFiredFor"])

    listed = client.get("/api/v1/export-schedules", headers=bearer(db, "read"))
    assert [item["name"] for item in listed.json()] == ["hourly-study"]

    schedule_id = body["id"]
    changed = client.put(
        f"/api/v1/export-schedules/{schedule_id}",
        json={"enabled": False, "requestOverride": None},
        headers=headers,
    )
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["requestOverride"]) == (False, None)
    assert changed.json()["scheduleType"] == "HOURLY"  # left out, so unchanged

    deleted = client.delete(f"/api/v1/export-schedules/{schedule_id}", headers=headers)
    assert deleted.status_code == 200
    assert deleted.json()["name"] == "hourly-study"
    assert client.get(f"/api/v1/export-schedules/{schedule_id}", headers=headers).status_code == 404
    actors = {
        event.actor
        for event in db.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "export_schedules")
        )
    }
    assert actors == {"(token write-token)"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"name": "s", "timeZone": TOKYO, "requestOverride": {"foo": "bar"}},
            "Invalid request override: Unknown field in export request: foo.",
        ),
        ({"name": "s", "timeZone": "Mars/Olympus"}, "Unknown time zone 'Mars/Olympus'"),
        ({"name": "s", "timeZone": TOKYO, "scheduleType": "WEEKLY"}, "Invalid schedule type"),
        ({"name": "s", "timeZone": TOKYO, "requestOverride": "x"}, "must be a JSON object"),
    ],
)
def test_api_refuses_a_bad_schedule_with_422_naming_the_problem(
    client: TestClient, db: Session, body: dict[str, object], message: str
) -> None:
    answer = client.post("/api/v1/export-schedules", json=body, headers=bearer(db, "write"))
    assert answer.status_code == 422
    assert message in answer.json()["detail"]


def test_api_refuses_renaming_and_bad_changes(client: TestClient, db: Session) -> None:
    schedule = add(db, "nightly")
    headers = bearer(db, "write")
    path = f"/api/v1/export-schedules/{schedule.id}"
    renamed = client.put(path, json={"name": "other"}, headers=headers)
    assert renamed.status_code == 422
    bad_type = client.put(path, json={"scheduleType": "MONTHLY"}, headers=headers)
    assert bad_type.status_code == 422
    assert "Invalid schedule type: 'MONTHLY'" in bad_type.json()["detail"]
    db.refresh(schedule)
    assert (schedule.name, schedule.schedule_type) == ("nightly", "DAILY")


def test_api_answers_404_for_an_unknown_schedule(client: TestClient, db: Session) -> None:
    headers = bearer(db, "write")
    assert client.put("/api/v1/export-schedules/999", json={}, headers=headers).status_code == 404
    assert client.delete("/api/v1/export-schedules/999", headers=headers).status_code == 404


def test_read_token_may_list_but_not_change_schedules(client: TestClient, db: Session) -> None:
    schedule = add(db, "nightly")
    headers = bearer(db, "read")
    assert client.get("/api/v1/export-schedules", headers=headers).status_code == 200
    body = {"name": "x", "timeZone": "UTC"}
    assert client.post("/api/v1/export-schedules", json=body, headers=headers).status_code == 403
    path = f"/api/v1/export-schedules/{schedule.id}"
    assert client.put(path, json={"enabled": False}, headers=headers).status_code == 403
    assert client.delete(path, headers=headers).status_code == 403
    assert client.get("/api/v1/export-schedules").status_code == 401


def test_viewer_session_may_not_change_schedules_through_the_api(
    client: TestClient, db: Session
) -> None:
    token = sign_in(client, db, make_user(db, Role.viewer, "vera"))
    answer = client.post(
        "/api/v1/export-schedules",
        json={"name": "x", "timeZone": "UTC"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 403
