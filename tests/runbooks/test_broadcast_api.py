"""Broadcasts: the public endpoint (no login, ETag and 304, CORS for configured origins,
nothing once ended), the banner on every console page, the page and the API's roles."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.people import service as people
from dutydesk.people.models import Role
from dutydesk.runbooks.releases import broadcasts
from tests.conftest import clear_caches, make_user, sign_in

ACTIVE = "/api/v1/broadcasts/active"


def test_active_broadcasts_need_no_login_and_answer_304_to_a_matching_etag(
    client: TestClient, db: Session
) -> None:
    empty = client.get(ACTIVE)
    assert empty.status_code == 200 and empty.json() == {"broadcasts": []}

    made = broadcasts.create_broadcast(
        db, message="Acceptance test in progress, please wait", level="warning", actor="olga"
    )
    db.commit()
    shown = client.get(ACTIVE)
    assert shown.status_code == 200
    assert shown.json()["broadcasts"] == [
        {
            "id": made.id,
            "message": "Acceptance test in progress, please wait",
            "level": "warning",
            "starts_at": made.starts_at.isoformat(),
            "ends_at": None,
        }
    ]
    etag = shown.headers["etag"]
    assert etag != empty.headers["etag"]
    assert "no-cache" in shown.headers["cache-control"]

    again = client.get(ACTIVE, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(ACTIVE, headers={"If-None-Match": '"other"'}).status_code == 200

    broadcasts.end_broadcast(db, made, actor="olga")
    db.commit()
    ended = client.get(ACTIVE, headers={"If-None-Match": etag})
    assert ended.status_code == 200 and ended.json() == {"broadcasts": []}


def test_broadcast_with_an_end_time_disappears_by_itself(client: TestClient, db: Session) -> None:
    broadcasts.create_broadcast(
        db,
        message="gone",
        actor="olga",
        starts_at=utcnow() - dt.timedelta(hours=2),
        ends_at=utcnow() - dt.timedelta(hours=1),
    )
    broadcasts.create_broadcast(
        db, message="later", actor="olga", starts_at=utcnow() + dt.timedelta(hours=1)
    )
    db.commit()
    assert client.get(ACTIVE).json() == {"broadcasts": []}


def test_cors_is_allowed_only_for_configured_origins(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_BROADCAST_CORS_ORIGINS", "https://app.example.org")
    clear_caches()
    allowed = client.get(ACTIVE, headers={"Origin": "https://app.example.org"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "ETag" in allowed.headers["access-control-expose-headers"]
    other = client.get(ACTIVE, headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.options(
        ACTIVE,
        headers={
            "Origin": "https://app.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "If-None-Match" in preflight.headers["access-control-allow-headers"]


def test_banner_shows_an_active_broadcast_on_console_pages(client: TestClient, db: Session) -> None:
    viewer = make_user(db, Role.viewer, "vic")
    sign_in(client, db, viewer)
    assert "data-broadcast" not in client.get("/tickets").text
    made = broadcasts.create_broadcast(
        db, message="Release 2.1.0 in progress", level="warning", actor="olga"
    )
    db.commit()
    for path in ("/", "/tickets", "/alarms", "/releases", "/broadcasts"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert f'data-broadcast="{made.id}"' in page.text, path
        assert "Release 2.1.0 in progress" in page.text
    broadcasts.end_broadcast(db, made, actor="olga")
    db.commit()
    assert "data-broadcast" not in client.get("/tickets").text


def test_broadcast_api_roles_and_bad_input(client: TestClient, db: Session) -> None:
    make_user(db, Role.viewer, "vic")
    make_user(db, Role.operator, "olga")
    read = people.create_token(db, "read", ["read"], username="vic").secret
    write = people.create_token(db, "write", ["write"], username="olga").secret
    db.commit()
    body = {"message": "Maintenance at 18:00", "level": "info"}
    assert client.post("/api/v1/broadcasts", json=body).status_code == 401
    as_viewer = {"Authorization": f"Bearer {read}"}
    as_operator = {"Authorization": f"Bearer {write}"}
    assert client.post("/api/v1/broadcasts", json=body, headers=as_viewer).status_code == 403
    made = client.post("/api/v1/broadcasts", json=body, headers=as_operator)
    assert made.status_code == 201 and made.json()["created_by"] == "olga"
    bad = client.post(
        "/api/v1/broadcasts", json={"message": "x", "level": "loud"}, headers=as_operator
    )
    assert bad.status_code == 422 and "level 'loud' is not one of" in bad.json()["detail"]
    listed = client.get("/api/v1/broadcasts", headers=as_viewer).json()
    assert [item["message"] for item in listed] == ["Maintenance at 18:00"]
    ident = made.json()["id"]
    assert client.post(f"/api/v1/broadcasts/{ident}/end", headers=as_viewer).status_code == 403
    ended = client.post(f"/api/v1/broadcasts/{ident}/end", headers=as_operator)
    assert ended.status_code == 200 and ended.json()["ended_by"] == "olga"
    twice = client.post(f"/api/v1/broadcasts/{ident}/end", headers=as_operator)
    assert twice.status_code == 409
    assert client.post("/api/v1/broadcasts/999999/end", headers=as_operator).status_code == 404


def test_broadcast_page_starts_and_ends_one_with_csrf(client: TestClient, db: Session) -> None:
    operator = make_user(db, Role.operator, "olga")
    token = sign_in(client, db, operator)
    refused = client.post("/broadcasts", data={"message": "no token"})
    assert refused.status_code == 403
    made = client.post(
        "/broadcasts",
        data={"csrf_token": token, "message": "Release tonight", "level": "info", "hours": "2"},
    )
    assert made.status_code == 303
    page = client.get("/broadcasts").text
    assert "Release tonight" in page and "active" in page
    bad = client.post("/broadcasts", data={"csrf_token": token, "message": " ", "hours": ""})
    assert bad.status_code == 200 and "a broadcast needs a message" in bad.text
    (only,) = broadcasts.active_broadcasts(db)
    ended = client.post(f"/broadcasts/{only.id}/end", data={"csrf_token": token})
    assert ended.status_code == 303
    assert broadcasts.active_broadcasts(db) == []
