"""Every route of the app, walked: anonymous callers, each role and each token scope.

The matrix is written out here independently of the code's grant tables, so a change to who
may do what has to change this file too.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.people import service as people
from dutydesk.people.models import Role, Scope
from dutydesk.web.access import SESSION_COOKIE, Need, allow
from dutydesk.web.app import (
    _check_every_route_declares_access,
    access_of,
    api_routes,
    is_api_path,
)
from tests.conftest import make_user

ROLE_MAY: dict[Role, set[Need]] = {
    Role.viewer: {Need.view},
    Role.operator: {Need.view, Need.operate, Need.intake, Need.upload},
    Role.approver: {Need.view, Need.operate, Need.intake, Need.upload, Need.approve},
    Role.admin: {Need.view, Need.operate, Need.intake, Need.upload, Need.approve, Need.admin},
}
# Tokens without a user (service tokens): a sign-off needs a person, so no scope approves.
SERVICE_TOKEN_MAY: dict[Scope, set[Need]] = {
    Scope.read: {Need.view},
    Scope.write: {Need.view, Need.operate},
    Scope.intake: {Need.intake},
    Scope.upload: {Need.upload},
    Scope.admin: {Need.view, Need.operate, Need.intake, Need.upload, Need.admin},
}
# Routes whose access is part of the product's promise, checked by name.
KNOWN: dict[tuple[str, str], Need] = {
    ("GET", "/login"): Need.public,
    ("POST", "/login"): Need.public,
    ("GET", "/health"): Need.public,
    ("GET", "/"): Need.view,
    ("GET", "/review"): Need.view,
    ("GET", "/review.md"): Need.view,
    ("POST", "/review/mark"): Need.operate,
    ("GET", "/audit"): Need.view,
    ("GET", "/api/v1/audit"): Need.view,
    ("GET", "/metrics"): Need.view,
    ("GET", "/jobs"): Need.view,
    ("POST", "/api/v1/jobs"): Need.operate,
    ("GET", "/users"): Need.admin,
    ("POST", "/users"): Need.admin,
    ("GET", "/tokens"): Need.admin,
    ("POST", "/tokens"): Need.admin,
    ("POST", "/api/v1/tokens"): Need.admin,
    ("DELETE", "/api/v1/tokens/{token_id}"): Need.admin,
    ("GET", "/api/v1/users"): Need.admin,
    ("GET", "/tickets"): Need.view,
    ("GET", "/tickets/{key}"): Need.view,
    ("POST", "/tickets/{key}/{action}"): Need.operate,
    ("POST", "/tickets/bulk"): Need.operate,
    ("GET", "/api/v1/tickets"): Need.view,
    ("GET", "/api/v1/tickets/{key}"): Need.view,
    ("GET", "/api/v1/tickets/stats"): Need.view,
    ("POST", "/api/v1/tickets"): Need.operate,
    ("POST", "/api/v1/tickets/{key}/notes"): Need.operate,
    ("POST", "/api/v1/tickets/{key}/assign"): Need.operate,
    ("POST", "/api/v1/tickets/{key}/close"): Need.operate,
    ("POST", "/api/v1/tickets/{key}/acknowledge"): Need.operate,
    ("POST", "/api/v1/tickets/{key}/reopen"): Need.operate,
    ("GET", "/inbox"): Need.view,
    ("GET", "/inbox/{item_id}"): Need.view,
    ("GET", "/integrations"): Need.view,
    ("POST", "/integrations"): Need.admin,
    ("POST", "/integrations/{ident}/{action}"): Need.admin,
    ("GET", "/log-sources"): Need.view,
    ("POST", "/log-sources"): Need.admin,
    ("POST", "/log-sources/scan"): Need.admin,
    ("POST", "/log-sources/{ident}/delete"): Need.admin,
    ("GET", "/api/v1/inbox"): Need.view,
    ("GET", "/api/v1/inbox/{item_id}"): Need.view,
    ("GET", "/api/v1/integrations"): Need.view,
    ("GET", "/api/v1/integrations/{ident}"): Need.view,
    ("POST", "/api/v1/integrations"): Need.admin,
    ("PATCH", "/api/v1/integrations/{ident}"): Need.admin,
    ("POST", "/api/v1/integrations/{ident}/rotate"): Need.admin,
    ("DELETE", "/api/v1/integrations/{ident}"): Need.admin,
    ("GET", "/duty"): Need.view,
    ("POST", "/duty"): Need.admin,
    ("POST", "/duty/{rotation_id}/overrides"): Need.operate,
    ("POST", "/duty/{rotation_id}/feed"): Need.admin,
    ("GET", "/notify"): Need.view,
    ("GET", "/notify/deliveries"): Need.view,
    ("POST", "/notify/channels"): Need.admin,
    ("POST", "/notify/channels/{channel_id}/test"): Need.operate,
    ("POST", "/notify/lists/{list_id}/send"): Need.operate,
    ("POST", "/notify/deliveries/{delivery_id}/retry"): Need.operate,
    ("POST", "/notify/policies"): Need.admin,
    ("POST", "/notify/lists"): Need.admin,
    ("POST", "/notify/contact-methods"): Need.operate,
    ("POST", "/notify/contact-methods/{method_id}/test"): Need.operate,
    ("POST", "/notify/quiet-hours"): Need.operate,
    ("POST", "/api/v1/logs"): Need.intake,
    ("GET", "/api/v1/log-groups"): Need.view,
    ("GET", "/api/v1/log-sources"): Need.view,
    ("POST", "/api/v1/log-sources"): Need.admin,
    ("DELETE", "/api/v1/log-sources/{ident}"): Need.admin,
    ("GET", "/api/v1/rules"): Need.view,
    ("POST", "/api/v1/rules"): Need.operate,
    ("GET", "/api/v1/rules/{ident}"): Need.view,
    ("PATCH", "/api/v1/rules/{ident}"): Need.operate,
    ("DELETE", "/api/v1/rules/{ident}"): Need.operate,
    ("GET", "/api/v1/rules/{ident}/test"): Need.view,
    ("GET", "/api/v1/rules/{ident}/evaluations"): Need.view,
    ("GET", "/api/v1/alarms"): Need.view,
    ("GET", "/api/v1/alarms/{alarm_id}"): Need.view,
    ("GET", "/api/v1/silences"): Need.view,
    ("POST", "/api/v1/silences"): Need.operate,
    ("POST", "/api/v1/silences/{silence_id}/end"): Need.operate,
    ("GET", "/alarms"): Need.view,
    ("GET", "/alarms/log-groups"): Need.view,
    ("GET", "/alarms/{alarm_id}"): Need.view,
    ("GET", "/alarms/rules/{ident}"): Need.view,
    ("POST", "/alarms/rules"): Need.operate,
    ("POST", "/alarms/rules/{ident}/{action}"): Need.operate,
    ("POST", "/alarms/silences"): Need.operate,
    ("POST", "/alarms/silences/{silence_id}/end"): Need.operate,
    # Change requests: anyone signed in reads them; operators act; a signoff is an operator
    # route because the request's own rules decide whose signoff counts; admins own the rules.
    ("GET", "/changes"): Need.view,
    ("GET", "/changes/{change_id}"): Need.view,
    ("POST", "/changes/{change_id}/{action}"): Need.operate,
    ("GET", "/changes/rules"): Need.admin,
    ("POST", "/changes/rules"): Need.admin,
    ("POST", "/changes/rules/remove"): Need.admin,
    ("GET", "/api/v1/changes"): Need.view,
    ("GET", "/api/v1/changes/{change_id}"): Need.view,
    ("POST", "/api/v1/changes/{change_id}/submit"): Need.operate,
    ("POST", "/api/v1/changes/{change_id}/signoffs"): Need.operate,
    ("POST", "/api/v1/changes/{change_id}/reject"): Need.operate,
    ("POST", "/api/v1/changes/{change_id}/run"): Need.operate,
    ("POST", "/api/v1/changes/{change_id}/comments"): Need.operate,
    ("POST", "/api/v1/changes/{change_id}/cancel"): Need.operate,
    ("GET", "/api/v1/change-rules"): Need.view,
    ("PUT", "/api/v1/change-rules"): Need.admin,
    ("DELETE", "/api/v1/change-rules/{kind}/{role}"): Need.admin,
    ("GET", "/change-notices"): Need.view,
    ("GET", "/api/v1/change-notices"): Need.view,
    # Re-drive batches.
    ("GET", "/redrives"): Need.view,
    ("GET", "/redrives/{batch_id:int}"): Need.view,
    ("POST", "/redrives/{batch_id:int}/add"): Need.operate,
    ("POST", "/redrives/{batch_id:int}/submit"): Need.operate,
    ("POST", "/redrives/{batch_id:int}/approve"): Need.approve,
    ("POST", "/redrives/{batch_id:int}/run"): Need.operate,
    ("GET", "/api/v1/redrives"): Need.view,
    ("POST", "/api/v1/redrives/items"): Need.operate,
    ("POST", "/api/v1/redrives/{batch_id:int}/submit"): Need.operate,
    # Database changes: targets (and their credentials) are the admins'.
    ("GET", "/dbchanges"): Need.view,
    ("POST", "/dbchanges"): Need.operate,
    ("POST", "/dbchanges/targets"): Need.admin,
    ("POST", "/dbchanges/targets/{name}/test"): Need.admin,
    ("GET", "/api/v1/dbchange/targets"): Need.view,
    ("POST", "/api/v1/dbchange/targets"): Need.admin,
    ("POST", "/api/v1/dbchange/targets/{name}/test"): Need.admin,
    ("POST", "/api/v1/dbchanges"): Need.operate,
    ("POST", "/api/v1/dbchanges/{change_id}/dry-run"): Need.operate,
    ("POST", "/api/v1/dbchanges/{change_id}/apply"): Need.operate,
    # Releases and broadcasts: the application reads the active broadcasts without a login.
    ("GET", "/api/v1/broadcasts/active"): Need.public,
    ("GET", "/api/v1/broadcasts"): Need.view,
    ("POST", "/api/v1/broadcasts"): Need.operate,
    ("POST", "/api/v1/broadcasts/{broadcast_id}/end"): Need.operate,
    ("GET", "/releases"): Need.view,
    ("GET", "/releases/{release_id}"): Need.view,
    ("POST", "/releases/{release_id}/{action}"): Need.operate,
    ("POST", "/releases/{release_id}/steps/{position}/{action}"): Need.operate,
    ("POST", "/api/v1/releases"): Need.operate,
    ("POST", "/api/v1/releases/{release_id}/{action}"): Need.operate,
    ("POST", "/api/v1/release-templates"): Need.operate,
    # Backups: built-in targets and new targets are the admins'; operators run and verify.
    ("GET", "/backups"): Need.view,
    ("POST", "/backups/builtin"): Need.admin,
    ("POST", "/backups/{name}/{action}"): Need.operate,
    ("GET", "/api/v1/backups"): Need.view,
    ("POST", "/api/v1/backups/targets"): Need.admin,
    ("POST", "/api/v1/backups/targets/{name}/run"): Need.operate,
    ("POST", "/api/v1/backups/targets/{name}/verify"): Need.operate,
    # Dashboards: anyone signed in reads them; operators save them.
    ("GET", "/dashboards"): Need.view,
    ("GET", "/dashboards/{ident}"): Need.view,
    ("POST", "/dashboards"): Need.operate,
    ("GET", "/api/v1/series"): Need.view,
    ("GET", "/api/v1/series/chart"): Need.view,
    ("POST", "/api/v1/dashboards"): Need.operate,
    # Diagnosis: exception projects (their DSNs), Supervisors and scrape targets are the
    # admins'; operators run diagnoses and start or stop processes.
    ("GET", "/exceptions"): Need.view,
    ("POST", "/exceptions/projects"): Need.admin,
    ("POST", "/api/v1/exception-projects"): Need.admin,
    ("POST", "/supervisors"): Need.admin,
    ("POST", "/api/v1/supervisors"): Need.admin,
    ("POST", "/api/v1/supervisors/{server_id}/processes/{process}/{action}"): Need.operate,
    ("POST", "/supervisors/{server_id}/processes/{process}/{action}"): Need.operate,
    ("POST", "/api/v1/scrape-targets"): Need.admin,
    ("POST", "/api/v1/scrape-targets/{target_id}/scrape"): Need.admin,
    ("POST", "/scrape-targets"): Need.admin,
    ("POST", "/diagnose"): Need.operate,
    ("POST", "/api/v1/diagnose/services/{service}/run"): Need.operate,
    # A service holds database logins the desk connects with: the admins'.
    ("GET", "/diagnose/services"): Need.view,
    ("GET", "/api/v1/diagnose/services/{service}"): Need.view,
    ("POST", "/api/v1/diagnose/services"): Need.admin,
    ("PUT", "/api/v1/diagnose/services/{service}"): Need.admin,
    ("DELETE", "/api/v1/diagnose/services/{service}"): Need.admin,
    ("GET", "/diagnose/services/new"): Need.admin,
    ("GET", "/diagnose/services/{service}/edit"): Need.admin,
    ("POST", "/diagnose/services"): Need.admin,
    ("POST", "/diagnose/services/{service}"): Need.admin,
    ("POST", "/diagnose/services/{service}/delete"): Need.admin,
    ("GET", "/api/v1/diagnoses/{diagnosis_id}"): Need.view,
}
# Intake endpoints: no sign-in and no CSRF token; the secret token in the URL is the
# credential (or, for Alertmanager, the same token as a bearer token), so a token that names no
# integration gets 401 whoever calls.
TOKEN_IN_URL = {
    ("POST", "/hooks/alertmanager/{token}"),
    ("POST", "/hooks/alertmanager"),
    ("POST", "/hooks/generic/{token}"),
    ("POST", "/hooks/oncall/{token}"),
    ("POST", "/hooks/github/{token}"),
    ("POST", "/hooks/gitlab/{token}"),
    ("POST", "/hooks/ci/{token}"),
    ("GET", "/ping/{token}"),
    ("POST", "/ping/{token}"),
    ("GET", "/ping/{token}/{action}"),
    ("POST", "/ping/{token}/{action}"),
    ("GET", "/duty/feed/{token}.ics"),
    ("POST", "/api/{project_id:int}/store/"),
    ("POST", "/api/{project_id:int}/envelope/"),
}


def endpoints(app: FastAPI) -> list[tuple[str, str, str, Need, bool]]:
    """(method, route path, concrete URL, need, is page) for every route of the app."""
    found = []
    for route in api_routes(app.routes):
        access = access_of(route)
        assert access is not None, f"{route.path} declares no access"
        url = re.sub(r"\{[^}]+\}", "987654", route.path)  # an id that names nothing
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            found.append((method, route.path, url, access.need, access.page))
    return found


def call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> int:
    """Send an empty request; return the status."""
    if method in {"POST", "PUT", "PATCH"}:
        return client.request(method, url, headers=headers, json={}).status_code
    return client.request(method, url, headers=headers).status_code


def test_known_routes_declare_the_promised_access(app: FastAPI) -> None:
    declared = {(method, path): need for method, path, _, need, _ in endpoints(app)}
    for key, need in KNOWN.items():
        assert declared.get(key) == need, f"{key} declares {declared.get(key)}, promised {need}"


def test_pages_are_pages_and_apis_answer_json(app: FastAPI) -> None:
    for method, path, _, need, page in endpoints(app):
        if need is Need.public:
            continue
        assert page != is_api_path(path), f"{method} {path}: page={page} disagrees with its path"


def test_app_refuses_to_start_with_a_route_without_access() -> None:
    bare = FastAPI()

    @bare.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="/forgotten"):
        _check_every_route_declares_access(bare)


def test_anonymous_callers_get_401_from_apis_and_login_redirects_from_pages(
    client: TestClient, app: FastAPI
) -> None:
    for method, path, url, need, page in endpoints(app):
        response = client.request(method, url)
        where = f"{method} {path}"
        if (method, path) in TOKEN_IN_URL:
            assert need is Need.public, where
            assert response.status_code == 401, where
            assert "www-authenticate" not in response.headers, where
        elif need is Need.public:
            assert response.status_code not in (401, 404), where
            assert not response.headers.get("location", "").startswith("/login?"), where
        elif page:
            assert response.status_code == 303, where
            assert response.headers["location"].startswith("/login?next="), where
        else:
            assert response.status_code == 401, where
            assert response.headers["www-authenticate"] == "Bearer", where


def test_every_token_in_url_route_is_listed(app: FastAPI) -> None:
    from dutydesk.web.access import TokenInUrl

    found = {
        (method, route.path)
        for route in api_routes(app.routes)
        if isinstance(access_of(route), TokenInUrl)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert found == TOKEN_IN_URL


def test_static_files_are_served_to_anyone(client: TestClient) -> None:
    assert client.get("/static/desk.css").status_code == 200
    assert client.get("/static/vendor/htmx-2.0.11.min.js").status_code == 200


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_what_the_matrix_allows(
    role: Role, client: TestClient, app: FastAPI, db: Session
) -> None:
    user = make_user(db, role)
    csrf = client.get("/login")  # a CSRF cookie, so writes fail only for lack of permission
    match = re.search(r'name="csrf_token" value="([^"]+)"', csrf.text)
    assert match
    headers = {"X-CSRF-Token": match.group(1)}
    for method, path, url, need, _page in endpoints(app):
        if need is Need.public:
            continue
        # A fresh session per call: one of the routes may be sign-out.
        secret = people.start_session(db, user, hours=1, client="matrix")
        db.commit()
        client.cookies.set(SESSION_COOKIE, secret)
        status = call(client, method, url, headers)
        where = f"{role.value} {method} {path} (needs {need.value}) -> {status}"
        if need in ROLE_MAY[role]:
            assert status not in (401, 403), where
        else:
            assert status == 403, where
    client.cookies.delete(SESSION_COOKIE)


@pytest.mark.parametrize("scope", list(Scope))
def test_each_token_scope_gets_exactly_what_the_matrix_allows(
    scope: Scope, client: TestClient, app: FastAPI, db: Session
) -> None:
    made = people.create_token(db, f"{scope.value} token", [scope.value])
    db.commit()
    headers = {"Authorization": f"Bearer {made.secret}"}
    for method, path, url, need, _page in endpoints(app):
        if need is Need.public:
            continue
        status = call(client, method, url, headers)
        where = f"{scope.value} {method} {path} (needs {need.value}) -> {status}"
        if need in SERVICE_TOKEN_MAY[scope]:
            assert status not in (401, 403), where
        else:
            assert status == 403, where


def test_user_token_with_write_scope_approves_only_for_an_approver(db: Session) -> None:
    from dutydesk.web.access import token_grants

    make_user(db, "operator", "olga")
    make_user(db, "approver", "ada")
    operator_token = people.create_token(db, "olga's", ["write"], username="olga").token
    approver_token = people.create_token(db, "ada's", ["write"], username="ada").token
    service_token = people.create_token(db, "robot", ["write"]).token
    assert Need.approve not in token_grants(operator_token)
    assert Need.approve in token_grants(approver_token)
    assert Need.approve not in token_grants(service_token)


def test_allow_declares_a_route_need() -> None:
    declared = allow(Need.operate, page=True)
    assert declared.need is Need.operate
    assert declared.page is True
