"""Requests at the edges: numbers past the database's integers (64-bit in SQLite, 32-bit ids in
PostgreSQL), NaN in JSON, oversized headers.

Each gets a 4xx that names the problem, never a 500, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.duty.models import Rotation
from dutydesk.export.models import ExportSchedule
from dutydesk.people import service as people
from dutydesk.web.limits import MAX_HEADER_BYTES
from dutydesk.web.params import INT32_MAX, INT64_MAX
from tests.conftest import make_user, sign_in
from tests.test_processes import healthy
from tests.test_worker import Processes, desk_env, free_port, run_dutydesk, wait_until

TOO_LARGE = [2**63, 10**30, 99999999999999999999]


@pytest.fixture
def api(app: FastAPI, db: Session) -> Iterator[TestClient]:
    """A client with an admin's API token that reports a server error as a 500 answer."""
    make_user(db, "admin", "root")
    secret = people.create_token(db, "edges", ["admin"], username="root").secret
    db.commit()
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client


@pytest.fixture
def console(app: FastAPI, db: Session) -> Iterator[TestClient]:
    """A signed-in admin's browser: session cookie and CSRF token."""
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, "admin", "boss"))
        yield client


def fields_of(answer: dict[str, object]) -> list[str]:
    detail = answer["detail"]
    assert isinstance(detail, list), detail
    return [problem["field"] for problem in detail]


OFFSET_PAGES = ["/api/v1/inbox", "/api/v1/tickets", "/api/v1/audit"]
ROWS_BY_ID = [
    ("GET", "/api/v1/export-schedules/{}"),
    ("PUT", "/api/v1/export-schedules/{}"),
    ("DELETE", "/api/v1/export-schedules/{}"),
    ("GET", "/api/v1/jobs/{}"),
    ("GET", "/api/v1/exports/{}"),
    ("GET", "/api/v1/inbox/{}"),
    ("GET", "/api/v1/alarms/{}"),
    ("DELETE", "/api/v1/tokens/{}"),
]


def test_an_offset_outside_the_database_integers_is_refused(api: TestClient) -> None:
    for path in OFFSET_PAGES:
        for offset in [*TOO_LARGE, -1]:
            response = api.get(path, params={"offset": offset})
            assert response.status_code == 422, (path, offset, response.text)
            assert fields_of(response.json()) == ["query.offset"]


def test_the_largest_offset_is_an_empty_page(api: TestClient) -> None:
    for path in OFFSET_PAGES:
        response = api.get(path, params={"offset": INT64_MAX})
        assert response.status_code == 200, (path, response.text)
        assert response.json() == [], path


def test_an_id_past_the_database_integers_is_refused(api: TestClient) -> None:
    for method, path in ROWS_BY_ID:
        for number in [INT32_MAX + 1, *TOO_LARGE]:
            response = api.request(method, path.format(number), json={})
            assert response.status_code == 422, (method, path, number, response.text)
            [problem] = response.json()["detail"]
            assert problem["field"].startswith("path.")
            assert str(INT32_MAX) in problem["message"]


def test_the_largest_id_is_simply_not_found(api: TestClient) -> None:
    for method, path in ROWS_BY_ID:
        response = api.request(method, path.format(INT32_MAX), json={})
        assert response.status_code == 404, (method, path, response.text)


def test_export_runs_before_a_huge_id_are_refused(api: TestClient) -> None:
    for number in TOO_LARGE:
        response = api.get("/api/v1/exports", params={"before": number})
        assert response.status_code == 422
        assert fields_of(response.json()) == ["query.before"]


def test_the_schedule_form_refuses_a_huge_schedule_id(console: TestClient) -> None:
    form = {"time_zone": "UTC", "schedule_type": "DAILY", "request_override": ""}
    for number in TOO_LARGE:
        changed = console.post(f"/exports/schedules/{number}", data=form)
        assert changed.status_code == 422
        assert "schedule_id" in changed.text
        deleted = console.post(f"/exports/schedules/{number}/delete")
        assert deleted.status_code == 422
    missing = console.post(f"/exports/schedules/{INT32_MAX}", data=form)
    assert missing.status_code == 404


def test_a_ticket_list_page_number_past_the_last_possible_is_refused(
    console: TestClient,
) -> None:
    for page in ["/tickets", "/tickets/mine", "/tickets/all"]:
        response = console.get(page, params={"page": 10**30})
        assert response.status_code == 422, page
        assert "page" in response.text


def test_a_rotation_shift_longer_than_a_year_is_refused(console: TestClient, db: Session) -> None:
    make_user(db, "viewer", "ana")
    form = {"name": "db", "members": "ana", "time_zone": "UTC", "shift_hours": str(10**30)}
    response = console.post("/duty", data=form)
    assert response.status_code == 422
    assert "shift_hours must be between 1 and" in response.text
    assert db.scalar(select(func.count()).select_from(Rotation)) == 0


@pytest.mark.parametrize(("field", "value"), [("repeat", 10**30), ("position", 2**31)])
def test_an_escalation_policy_number_out_of_range_is_refused(
    console: TestClient, field: str, value: int
) -> None:
    form = {"name": "night", "steps": "user boss 5", field: str(value)}
    response = console.post("/notify/policies", data=form)
    assert response.status_code == 422
    assert f"{field} must be between" in response.text


def test_a_json_body_with_a_non_finite_number_is_refused_by_name(
    api: TestClient, db: Session
) -> None:
    for constant in ["NaN", "Infinity", "-Infinity"]:
        body = (
            '{"name": "nightly", "timeZone": "UTC", '
            f'"requestOverride": {{"redriveCount": {constant}}}}}'
        )
        response = api.post(
            "/api/v1/export-schedules", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        [problem] = response.json()["detail"]
        assert problem["field"] == "body"
        assert problem["message"].startswith(f"{constant} is not a JSON number")
    assert db.scalar(select(func.count()).select_from(ExportSchedule)) == 0


def test_nan_inside_a_json_string_is_just_text(api: TestClient) -> None:
    body = '{"name": "NaN_Infinity", "timeZone": "UTC"}'
    response = api.post(
        "/api/v1/export-schedules", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201
    assert response.json()["name"] == "NaN_Infinity"


def test_a_json_body_that_is_not_utf8_is_refused(api: TestClient) -> None:
    response = api.post(
        "/api/v1/export-schedules",
        content=b'{"name": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "not UTF-8" in response.json()["detail"][0]["message"]


# Where a route takes a date and time: (method, path, the request's other parts, the field).
MOMENTS = [
    ("GET", "/api/v1/audit", {}, "query.since"),
    ("GET", "/api/v1/audit", {}, "query.until"),
    ("GET", "/api/v1/change-notices", {}, "query.since"),
    ("GET", "/api/v1/change-notices", {}, "query.until"),
    ("GET", "/api/v1/rules/any/test", {}, "query.at"),
    ("POST", "/api/v1/broadcasts", {"message": "maintenance"}, "body.starts_at"),
    ("POST", "/api/v1/broadcasts", {"message": "maintenance"}, "body.ends_at"),
    ("POST", "/api/v1/silences", {"reason": "noisy"}, "body.ends_at"),
    (
        "POST",
        "/api/v1/silences",
        {"reason": "noisy", "ends_at": "2030-01-01T00:00Z"},
        "body.starts_at",
    ),
    ("POST", "/api/v1/releases", {"template": "web", "version": "1.0"}, "body.planned_start"),
    ("POST", "/api/v1/releases", {"template": "web", "version": "1.0"}, "body.planned_end"),
]


def test_a_number_for_a_date_and_time_is_refused_by_name(api: TestClient) -> None:
    """pydantic would read it as a Unix time; the description says an ISO 8601 string."""
    for method, path, others, field in MOMENTS:
        place, name = field.split(".")
        numbers: list[object] = ["0.5", "1700000000"] if place == "query" else [0, 0.5, "0.5"]
        for number in numbers:
            if place == "query":
                response = api.request(method, path, params={name: number})
            else:
                response = api.request(method, path, json={**others, name: number})
            assert response.status_code == 422, (method, path, field, number, response.text)
            [problem] = response.json()["detail"]
            assert problem["field"] == field, (method, path, number, problem)
            assert "date and time" in problem["message"]


def test_an_iso_date_and_time_is_still_taken(api: TestClient) -> None:
    for path in ["/api/v1/audit", "/api/v1/change-notices"]:
        response = api.get(path, params={"since": "2026-12-07T09:30:00Z", "until": "2026-12-08"})
        assert response.status_code == 200, (path, response.text)
    made = api.post(
        "/api/v1/broadcasts",
        json={"message": "maintenance", "starts_at": "2026-12-07T09:30:00+01:00"},
    )
    assert made.status_code == 201, made.text
    starts_at = dt.datetime.fromisoformat(made.json()["starts_at"])
    assert starts_at == dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.UTC)


def test_headers_over_the_limit_get_431(api: TestClient) -> None:
    response = api.get("/api/v1/me", headers={"x-padding": "a" * MAX_HEADER_BYTES})
    assert response.status_code == 431
    assert f"over the limit of {MAX_HEADER_BYTES}" in response.json()["detail"]


def test_headers_under_the_limit_pass(api: TestClient) -> None:
    response = api.get("/api/v1/me", headers={"x-padding": "a" * (MAX_HEADER_BYTES // 2)})
    assert response.status_code == 200


def test_a_method_a_path_does_not_take_lists_every_method_it_does(api: TestClient) -> None:
    response = api.request("PATCH", "/api/v1/export-schedules")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def raw_status(port: int, request: bytes) -> bytes:
    """The status line a server answers to `request`, sent as is."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.timeout(120)
def test_the_web_server_answers_huge_headers_with_431(processes: Processes, home: Path) -> None:
    env = desk_env(home, DUTYDESK_LOG_LEVEL="WARNING")
    upgraded = run_dutydesk(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    port = free_port()
    processes.start("web", ["web", "--port", str(port)], env)
    wait_until(lambda: healthy(f"http://127.0.0.1:{port}"), 60, "GET /health to answer 200")
    padding = b"a" * (2 * MAX_HEADER_BYTES)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + padding + b"\r\n\r\n"
    assert raw_status(port, request) == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert healthy(f"http://127.0.0.1:{port}") is not None
