"""Health, metrics, the overview, error pages and the API description."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.jobs import service as jobs
from dutydesk.people import service as people
from dutydesk.settings import get_settings
from dutydesk.web.app import create_app
from tests.conftest import clear_caches, make_user, sign_in


def test_health_answers_200_when_database_and_broker_work(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_health_answers_503_naming_an_unreachable_broker(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_BROKER_URL", "redis://127.0.0.1:9/0")
    clear_caches()
    with TestClient(create_app(get_settings(), factory)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["database"] == "ok"
    assert body["broker"].startswith("failing")


def test_health_answers_503_naming_an_unreachable_database() -> None:
    from sqlalchemy.orm import sessionmaker as make_factory

    from dutydesk.db import build_engine

    engine = build_engine("postgresql://nobody@127.0.0.1:9/none")
    with TestClient(create_app(get_settings(), make_factory(bind=engine))) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"].startswith("failing")


def test_metrics_show_requests_by_route_and_jobs_by_state(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "prometheus", ["read"])
    jobs.enqueue(db, "people.prune")
    db.commit()
    client.get("/health")
    client.get("/no/such/page")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {made.secret}"})
    assert response.status_code == 200
    text = response.text
    assert 'dutydesk_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'dutydesk_jobs{kind="people.prune",state="queued"} 1.0' in text
    assert 'dutydesk_jobs{kind="people.prune",state="failed"} 0.0' in text


def test_metrics_need_a_token_or_session(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


def test_overview_shows_desk_health_jobs_and_recent_changes(
    client: TestClient, db: Session
) -> None:
    viewer = make_user(db, "viewer", "vera")
    jobs.enqueue(db, "people.prune")
    db.commit()
    sign_in(client, db, viewer)
    page = client.get("/")
    assert page.status_code == 200
    assert "1 queued" in page.text
    assert "create users" in page.text
    assert 'class="ok">ok<' in page.text


def test_navigation_shows_only_what_the_role_may_open(client: TestClient, db: Session) -> None:
    viewer = make_user(db, "viewer", "vera")
    sign_in(client, db, viewer)
    page = client.get("/").text
    assert 'href="/audit"' in page
    assert 'href="/jobs"' in page
    assert 'href="/users"' not in page
    assert 'href="/tokens"' not in page


def test_forbidden_page_is_an_html_403_and_api_is_json(client: TestClient, db: Session) -> None:
    viewer = make_user(db, "viewer", "vera")
    sign_in(client, db, viewer)
    page = client.get("/tokens")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "admin" in page.text
    api = client.get("/api/v1/users")
    assert api.status_code == 403
    assert api.json() == {"detail": "this needs the 'admin' permission"}


def test_pages_carry_protective_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_openapi_description_lists_the_api(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "docs", ["read"])
    db.commit()
    response = client.get(
        "/api/v1/openapi.json", headers={"Authorization": f"Bearer {made.secret}"}
    )
    assert response.status_code == 200
    assert "/api/v1/audit" in response.json()["paths"]


def test_admin_makes_and_revokes_a_token_in_the_console(client: TestClient, db: Session) -> None:
    admin = make_user(db, "admin", "root")
    token = sign_in(client, db, admin)
    made = client.post("/tokens", data={"name": "grafana", "scopes": ["read"], "csrf_token": token})
    assert made.status_code == 200
    assert 'id="new-token">ddt_' in made.text
    [row] = people.list_tokens(db)
    revoked = client.post(f"/tokens/{row.id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    db.refresh(row)
    assert row.revoked_at is not None
    missing_scope = client.post("/tokens", data={"name": "x", "csrf_token": token})
    assert missing_scope.status_code == 400
    assert "give at least one scope" in missing_scope.text


def test_admin_changes_a_role_but_not_the_last_admin(client: TestClient, db: Session) -> None:
    admin = make_user(db, "admin", "root")
    viewer = make_user(db, "viewer", "vera")
    token = sign_in(client, db, admin)
    ok = client.post(
        f"/users/{viewer.id}", data={"role": "operator", "active": "true", "csrf_token": token}
    )
    assert ok.status_code == 303
    db.refresh(viewer)
    assert viewer.role == "operator"
    refused = client.post(
        f"/users/{admin.id}", data={"role": "viewer", "active": "true", "csrf_token": token}
    )
    assert refused.status_code == 400
    assert "at least one active admin" in refused.text


def test_adding_a_user_with_a_bad_name_says_why(client: TestClient, db: Session) -> None:
    admin = make_user(db, "admin", "root")
    token = sign_in(client, db, admin)
    response = client.post(
        "/users", data={"username": "Bad Name!", "role": "viewer", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "username must be" in response.text


def test_unknown_page_keeps_the_menu_for_a_signed_in_user(client: TestClient, db: Session) -> None:
    viewer = make_user(db, "viewer", "vera")
    sign_in(client, db, viewer)
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert 'id="logout"' in page.text
    assert 'href="/audit"' in page.text
