"""`dutydesk integrations create | list | rotate`, the integrations API, and the inbox pages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.intake import service
from tests.conftest import make_user, sign_in
from tests.intake.conftest import make_integration


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_create_prints_the_url_once_and_rotate_replaces_the_token() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    made = dutydesk("integrations", "create", "--kind", "alertmanager", "--name", "prometheus")
    assert made.exit_code == 0, made.output
    url = re.search(r"url: http://127\.0\.0\.1:8000/hooks/alertmanager/(\S+)", made.stdout)
    assert url is not None
    token = url.group(1)
    listed = dutydesk("integrations", "list").stdout
    assert "prometheus" in listed and token not in listed and token[:6] in listed
    rotated = dutydesk("integrations", "rotate", "prometheus")
    assert rotated.exit_code == 0
    with transaction() as session:
        assert service.find_by_token(session, token) is None
        new = re.search(r"/hooks/alertmanager/(\S+)", rotated.stdout)
        assert new is not None and service.find_by_token(session, new.group(1)) is not None
    again = dutydesk("integrations", "create", "--kind", "generic", "--name", "prometheus")
    assert again.exit_code == 2 and "exists already" in again.stderr
    wrong = dutydesk("integrations", "create", "--kind", "pager", "--name", "x")
    assert wrong.exit_code == 2 and "unknown kind" in wrong.stderr


def test_heartbeat_create_prints_a_ping_url_with_a_uuid() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    made = dutydesk("integrations", "create", "--kind", "heartbeat", "--name", "nightly-backup")
    assert re.search(r"url: \S+/ping/[0-9a-f]{8}-[0-9a-f]{4}-", made.stdout), made.stdout


def test_api_creates_shows_the_token_once_and_audits(client: TestClient, db: Session) -> None:
    from dutydesk.people import service as people

    admin = people.create_token(db, "admin", ["admin"]).secret
    reader = people.create_token(db, "reader", ["read"]).secret
    db.commit()
    headers = {"Authorization": f"Bearer {admin}"}
    made = client.post(
        "/api/v1/integrations",
        json={"name": "apps", "kind": "generic", "group_by": ["labels.service"]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["path"] == f"/hooks/generic/{body['token']}"
    shown = client.get("/api/v1/integrations/apps", headers={"Authorization": f"Bearer {reader}"})
    assert shown.status_code == 200 and "token" not in shown.json()
    patched = client.patch(
        "/api/v1/integrations/apps", json={"rate_limit": 50, "enabled": False}, headers=headers
    )
    assert patched.json()["rate_limit"] == 50 and patched.json()["enabled"] is False
    audit = client.get("/api/v1/audit", headers=headers).json()
    assert any("integrations" in str(entry) for entry in audit)
    assert "token_hash" not in str(audit) or "[redacted]" in str(audit)
    bad = client.post(
        "/api/v1/integrations", json={"name": "Bad Name", "kind": "generic"}, headers=headers
    )
    assert bad.status_code == 422


def test_inbox_page_lists_and_searches_and_shows_one_item(client: TestClient, db: Session) -> None:
    made = make_integration(db, "generic")
    client.post(made.path or "", json={"title": "quokka backlog"})
    client.post(made.path or "", json={"title": "marmot outage"})
    client.post(made.path or "", content=b"{broken", headers={"content-type": "application/json"})
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/inbox", params={"q": "quokka"})
    assert page.status_code == 200
    assert "quokka" in page.text and "marmot" not in page.text
    rejected = client.get("/inbox", params={"outcome": "rejected"}).text
    assert "malformed JSON" in rejected
    item_id = re.search(r'href="/inbox/(\d+)"', rejected)
    assert item_id is not None
    detail = client.get(f"/inbox/{item_id.group(1)}")
    assert "{broken" in detail.text and "rejected (400)" in detail.text
    api = client.get("/api/v1/inbox", params={"since": "2000-01-01", "q": "marmot"})
    assert api.status_code == 200 and len(api.json()) == 1


def test_integrations_page_makes_one_and_shows_its_url_once(
    client: TestClient, db: Session
) -> None:
    csrf = sign_in(client, db, make_user(db, "admin"))
    made = client.post("/integrations", data={"csrf_token": csrf, "name": "mail", "kind": "email"})
    assert made.status_code == 200 and "send mail to mail@" in made.text
    made = client.post(
        "/integrations", data={"csrf_token": csrf, "name": "am", "kind": "alertmanager"}
    )
    url = re.search(r'id="new-url">(\S+)<', made.text)
    assert url is not None and "/hooks/alertmanager/" in url.group(1)
    listing = client.get("/integrations").text
    assert "am" in listing and url.group(1).rsplit("/", 1)[1] not in listing
