"""Signing in and out, CSRF, the failed-login limit, sessions and bearer tokens."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.people import service as people
from dutydesk.people.models import ApiToken, User, WebSession
from dutydesk.web.access import SESSION_COOKIE
from dutydesk.web.csrf import CSRF_COOKIE
from tests.conftest import TEST_PASSWORD, csrf_token, make_user, sign_in


def _login(client: TestClient, username: str, password: str, token: str | None) -> Response:
    form = {"username": username, "password": password}
    if token is not None:
        form["csrf_token"] = token
    return client.post("/login", data=form)


def test_login_with_the_forms_csrf_token_opens_a_session(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"username": "vera", "password": TEST_PASSWORD, "csrf_token": token, "next": "/audit"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/audit"
    cookie = response.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie
    assert client.get("/").status_code == 200


def test_login_without_csrf_token_is_refused_with_403(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    csrf_token(client)  # the cookie is there, the field is not
    response = client.post("/login", data={"username": "vera", "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_login_with_a_forged_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    csrf_token(client)
    response = client.post(
        "/login", data={"username": "vera", "password": TEST_PASSWORD, "csrf_token": "0" * 64}
    )
    assert response.status_code == 403


def test_csrf_token_from_another_browser_does_not_work(app: FastAPI, db: Session) -> None:
    make_user(db, "viewer", "vera")
    with TestClient(app, follow_redirects=False) as other:
        stolen = csrf_token(other)
    with TestClient(app, follow_redirects=False) as victim:
        csrf_token(victim)
        response = victim.post(
            "/login", data={"username": "vera", "password": TEST_PASSWORD, "csrf_token": stolen}
        )
    assert response.status_code == 403


def test_session_cookie_is_secure_when_served_over_https(app: FastAPI, db: Session) -> None:
    make_user(db, "viewer", "vera")
    with TestClient(app, base_url="https://desk.example", follow_redirects=False) as client:
        token = csrf_token(client)
        response = client.post(
            "/login", data={"username": "vera", "password": TEST_PASSWORD, "csrf_token": token}
        )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_answers_401_and_opens_no_session(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    response = _login(client, "vera", "wrong password", csrf_token(client))
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert db.scalar(select(WebSession)) is None


def test_eleventh_failed_login_in_a_minute_gets_429(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    token = csrf_token(client)
    statuses = [_login(client, "vera", f"guess {n}", token).status_code for n in range(10)]
    assert statuses == [401] * 10
    blocked = _login(client, "vera", TEST_PASSWORD, token)
    assert blocked.status_code == 429
    assert SESSION_COOKIE not in blocked.headers.get("set-cookie", "")


def test_failed_logins_are_counted_per_client_address(app: FastAPI, db: Session) -> None:
    make_user(db, "viewer", "vera")
    with TestClient(app, follow_redirects=False, client=("10.0.0.1", 5000)) as attacker:
        token = csrf_token(attacker)
        for n in range(10):
            _login(attacker, "vera", f"guess {n}", token)
        assert _login(attacker, "vera", "guess", token).status_code == 429
    with TestClient(app, follow_redirects=False, client=("10.0.0.2", 5000)) as colleague:
        token = csrf_token(colleague)
        assert _login(colleague, "vera", TEST_PASSWORD, token).status_code == 303


def test_logout_ends_the_session(client: TestClient, db: Session) -> None:
    user = make_user(db, "viewer", "vera")
    token = sign_in(client, db, user)
    secret = client.cookies.get(SESSION_COOKIE)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert people.user_for_session(db, secret or "") is None
    client.cookies.set(SESSION_COOKIE, secret or "")
    assert client.get("/").status_code == 303


def test_logout_without_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    user = make_user(db, "viewer", "vera")
    sign_in(client, db, user)
    assert client.post("/logout").status_code == 403
    assert client.get("/").status_code == 200


def test_login_page_sets_an_httponly_csrf_cookie(client: TestClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "HttpOnly" in cookie
    assert re.search(r'name="csrf_token" value="[0-9a-f]{64}"', response.text)


def test_next_parameter_cannot_send_people_to_another_site(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={
            "username": "vera",
            "password": TEST_PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert response.headers["location"] == "/"


def test_anonymous_page_request_redirects_to_login_with_next(client: TestClient) -> None:
    response = client.get("/audit?action=create")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/audit%3Faction%3Dcreate"


def test_disabled_user_cannot_sign_in_and_loses_sessions(client: TestClient, db: Session) -> None:
    make_user(db, "admin", "root")
    user = make_user(db, "viewer", "vera")
    sign_in(client, db, user)
    people.update_user(db, user, role="viewer", active=False)
    db.commit()
    assert client.get("/").status_code == 303
    assert _login(client, "vera", TEST_PASSWORD, csrf_token(client)).status_code == 401


def test_passwords_are_stored_as_argon2id_hashes(db: Session) -> None:
    make_user(db, "viewer", "vera")
    stored = db.scalar(select(User.password_hash).where(User.username == "vera"))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert TEST_PASSWORD not in stored


def test_bearer_token_reads_the_api_and_is_stored_hashed(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "dashboards", ["read"])
    db.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {made.secret}"})
    assert response.status_code == 200
    assert response.json()["token"] == "dashboards"
    stored = db.scalar(select(ApiToken).where(ApiToken.id == made.token.id))
    assert stored is not None
    assert made.secret not in (stored.token_hash, stored.prefix)
    assert stored.token_hash == people.sha256(made.secret)


def test_revoked_token_no_longer_authenticates(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "old", ["read"])
    people.revoke_token(db, made.token.id)
    db.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {made.secret}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_bearer_token_gets_401_even_with_a_session(client: TestClient, db: Session) -> None:
    user = make_user(db, "admin", "root")
    sign_in(client, db, user)
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer ddt_nonsense"})
    assert response.status_code == 401


def test_token_needs_no_csrf_token_for_writes(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "automation", ["write"])
    db.commit()
    response = client.post(
        "/api/v1/jobs",
        json={"kind": "people.prune"},
        headers={"Authorization": f"Bearer {made.secret}"},
    )
    assert response.status_code == 202


def test_session_api_write_needs_the_csrf_header(client: TestClient, db: Session) -> None:
    user = make_user(db, "operator", "olga")
    token = sign_in(client, db, user)
    assert client.post("/api/v1/jobs", json={"kind": "people.prune"}).status_code == 403
    response = client.post(
        "/api/v1/jobs", json={"kind": "people.prune"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 202


def test_token_of_a_user_is_narrowed_to_the_users_role(client: TestClient, db: Session) -> None:
    make_user(db, "viewer", "vera")
    made = people.create_token(db, "too-wide", ["admin"], username="vera")
    db.commit()
    headers = {"Authorization": f"Bearer {made.secret}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/api/v1/users", headers=headers).status_code == 403
