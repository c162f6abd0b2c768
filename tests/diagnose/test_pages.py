"""The Exceptions console and API: who may see and make what, and stack traces shown escaped."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.diagnose.models import ExceptionGroup, ExceptionProject
from dutydesk.people.models import Role
from tests.conftest import make_user, sign_in
from tests.diagnose.conftest import auth, event, make_project


def test_group_page_shows_the_stack_trace_breadcrumbs_and_tags_escaped(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    hostile = event(
        "ValueError",
        "<script>alert(1)</script>",
        "render('<b>total</b>')",
        breadcrumbs={"values": [{"category": "http", "message": "<img src=x onerror=alert(2)>"}]},
        tags={"page": "<i>cart</i>"},
        release="shop@2.0",
    )
    assert (
        client.post(f"/api/{project.id}/store/", json=hostile, headers=auth(project)).status_code
        == 200
    )
    group_id = db.scalar(select(ExceptionGroup.id))
    assert client.get(f"/exceptions/{group_id}").status_code == 303  # to the login page
    sign_in(client, db, make_user(db, Role.viewer))
    page = client.get(f"/exceptions/{group_id}")
    assert page.status_code == 200
    html = page.text
    assert (
        "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    )
    assert 'File "shop/views.py", line 42, in checkout (app)' in html
    assert "render(&#39;&lt;b&gt;total&lt;/b&gt;&#39;)" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "<img src=x" not in html
    assert "&lt;i&gt;cart&lt;/i&gt;" in html
    assert "new in this release" in html
    listing = client.get("/exceptions")
    assert listing.status_code == 200
    assert f'href="/exceptions/{group_id}"' in listing.text
    assert '<td class="count">1</td>' in listing.text
    assert client.get("/exceptions/999999").status_code == 404


def test_only_admins_see_dsns_and_make_projects(client: TestClient, db: Session) -> None:
    make_project(db)
    csrf = sign_in(client, db, make_user(db, Role.operator))
    page = client.get("/exceptions/projects")
    assert page.status_code == 200 and "shop" in page.text and 'class="dsn"' not in page.text
    refused = client.post("/exceptions/projects", data={"name": "app", "csrf_token": csrf})
    assert refused.status_code == 403
    api = client.get("/api/v1/exception-projects")
    assert api.status_code == 200 and api.json()[0]["dsn"] is None
    refused_api = client.post(
        "/api/v1/exception-projects", json={"name": "app"}, headers={"X-CSRF-Token": csrf}
    )
    assert refused_api.status_code == 403 and "'admin' permission" in refused_api.text

    csrf = sign_in(client, db, make_user(db, Role.admin))
    no_csrf = client.post("/exceptions/projects", data={"name": "app"})
    assert no_csrf.status_code == 403
    made = client.post("/exceptions/projects", data={"name": "app", "csrf_token": csrf})
    assert made.status_code == 303
    bad = client.post("/exceptions/projects", data={"name": "App Name", "csrf_token": csrf})
    assert bad.status_code == 400 and "lowercase letters" in bad.text
    db.expire_all()
    app_project = db.scalar(select(ExceptionProject).where(ExceptionProject.name == "app"))
    assert app_project is not None
    page = client.get("/exceptions/projects")
    dsn = f"http://{app_project.public_key}@127.0.0.1:8000/{app_project.id}"
    assert dsn in page.text


def test_api_makes_a_project_with_its_dsn_and_lists_groups(client: TestClient, db: Session) -> None:
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.admin))
    made = client.post("/api/v1/exception-projects", json={"name": "api", "rate_limit": 50})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["dsn"].endswith(f"@127.0.0.1:8000/{body['id']}") and body["rate_limit"] == 50
    again = client.post("/api/v1/exception-projects", json={"name": "api"})
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    key = body["dsn"].split("//", 1)[1].split("@", 1)[0]
    sent = client.post(f"/api/{body['id']}/store/?sentry_key={key}", json=event())
    assert sent.status_code == 200
    groups = client.get("/api/v1/exception-groups", params={"project": body["id"]}).json()
    assert [(g["title"], g["count"], g["project"]) for g in groups] == [
        ("ValueError: bad input", 1, "api")
    ]
    detail = client.get(f"/api/v1/exception-groups/{groups[0]['id']}").json()
    frames = detail["events"][0]["data"]["exceptions"][0]["frames"]
    assert frames[-1]["function"] == "checkout" and frames[-1]["lineno"] == 42
    assert client.get("/api/v1/exception-groups/999999").status_code == 404
