"""GitHub deliveries as GitHub sends them (every failing conclusion, JSON or form-encoded,
signed over the raw body) and Grafana OnCall's formatted webhook (no `alert_uid`, no grouping;
`image_url` kept and shown)."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.people.models import Role
from dutydesk.tickets.models import Ticket
from tests.conftest import make_user, sign_in
from tests.intake.conftest import make_integration
from tests.intake.test_heartbeat_and_ci import only_alarm, workflow_run

SECRET = "s3cret-signing"


def delivery(body: bytes, content_type: str, signed_over: bytes | None = None) -> dict[str, str]:
    """GitHub's headers for a `workflow_run` delivery of `body` (signed over `signed_over`,
    the body itself unless given)."""
    mac = hmac.new(SECRET.encode(), signed_over or body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={mac}",
        "X-GitHub-Event": "workflow_run",
        "Content-Type": content_type,
    }


def form(event: dict[str, object]) -> bytes:
    """An event as GitHub's default content type sends it: `payload=<urlencoded JSON>`."""
    return urllib.parse.urlencode({"payload": json.dumps(event)}).encode()


@pytest.mark.parametrize(
    ("conclusion", "title"),
    [
        ("startup_failure", "CI could not start: acme/exporter tests on main"),
        ("action_required", "CI needs approval: acme/exporter tests on main"),
    ],
)
def test_github_startup_failure_and_action_required_fire_until_a_success(
    client: TestClient, db: Session, conclusion: str, title: str
) -> None:
    made = make_integration(db, "github", signing_secret=SECRET)
    body = json.dumps(workflow_run(conclusion)).encode()
    answer = client.post(made.path or "", content=body, headers=delivery(body, "application/json"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    alarm = only_alarm(db)
    assert (alarm.state, alarm.title) == ("firing", title)
    assert alarm.ticket_id is not None
    success = json.dumps(workflow_run("success")).encode()
    client.post(made.path or "", content=success, headers=delivery(success, "application/json"))
    assert only_alarm(db).state == "resolved"


def test_github_form_encoded_delivery_is_read(client: TestClient, db: Session) -> None:
    made = make_integration(db, "github", signing_secret=SECRET)
    body = form(workflow_run("failure"))
    headers = delivery(body, "application/x-www-form-urlencoded")
    answer = client.post(made.path or "", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert only_alarm(db).title == "CI failed: acme/exporter tests on main"
    success = form(workflow_run("success"))
    client.post(
        made.path or "",
        content=success,
        headers=delivery(success, "application/x-www-form-urlencoded"),
    )
    assert only_alarm(db).state == "resolved"


def test_github_form_delivery_signed_over_its_json_not_its_body_is_401(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "github", signing_secret=SECRET)
    event = workflow_run("failure")
    body = form(event)
    headers = delivery(
        body, "application/x-www-form-urlencoded", signed_over=json.dumps(event).encode()
    )
    assert client.post(made.path or "", content=body, headers=headers).status_code == 401
    assert db.scalar(select(Alarm)) is None


def test_github_form_delivery_without_a_payload_field_is_422(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "github", signing_secret=SECRET)
    body = b"data=%7B%7D"
    headers = delivery(body, "application/x-www-form-urlencoded")
    answer = client.post(made.path or "", content=body, headers=headers)
    assert answer.status_code == 422
    assert "`payload`" in answer.json()["detail"]


def test_github_delivery_of_another_content_type_is_415_naming_it_and_the_accepted_ones(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "github", signing_secret=SECRET)
    body = json.dumps(workflow_run("failure")).encode()
    answer = client.post(made.path or "", content=body, headers=delivery(body, "text/plain"))
    assert answer.status_code == 415
    detail = answer.json()["detail"]
    assert "text/plain" in detail
    assert "application/json" in detail and "application/x-www-form-urlencoded" in detail
    assert db.scalar(select(Alarm)) is None


@pytest.mark.parametrize("uid", [None, ""])
def test_oncall_alerts_without_alert_uid_are_each_their_own_ticket(
    client: TestClient, db: Session, uid: str | None
) -> None:
    made = make_integration(db, "oncall")
    alert = {"title": "API latency", "state": "alerting", "message": "p99 2 s"}
    if uid is not None:
        alert["alert_uid"] = uid
    first = client.post(made.path or "", json=alert).json()
    second = client.post(made.path or "", json=alert).json()
    assert first["is_new"] and second["is_new"]
    assert first["alert_id"] != second["alert_id"]
    assert first["ticket_id"] != second["ticket_id"]
    assert db.scalar(select(func.count()).select_from(Ticket)) == 2


def test_oncall_alerts_with_one_alert_uid_share_a_ticket(client: TestClient, db: Session) -> None:
    made = make_integration(db, "oncall")
    alert = {"alert_uid": "lat-api", "title": "API latency", "state": "alerting"}
    first = client.post(made.path or "", json=alert).json()
    second = client.post(made.path or "", json=alert).json()
    assert second["is_new"] is False
    assert first["ticket_id"] == second["ticket_id"]


def test_oncall_image_url_is_kept_and_shown_on_the_ticket_page(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "oncall")
    image = "https://grafana.example/render/d/abc.png?from=1&to=2"
    answer = client.post(
        made.path or "", json={"alert_uid": "lat", "title": "API latency", "image_url": image}
    )
    db.expire_all()
    alarm = db.get(Alarm, answer.json()["alert_id"])
    assert alarm is not None and alarm.annotations["image_url"] == image
    sign_in(client, db, make_user(db, Role.viewer))
    page = client.get(f"/tickets/DD-{answer.json()['ticket_id']}")
    assert page.status_code == 200
    shown = image.replace("&", "&amp;")
    assert f'<a href="{shown}"' in page.text
    assert f'<img src="{shown}"' in page.text


def test_an_image_url_that_is_not_http_is_shown_escaped_but_neither_linked_nor_loaded(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "oncall")
    image = 'javascript:alert("<x>")'
    answer = client.post(made.path or "", json={"alert_uid": "x", "title": "t", "image_url": image})
    sign_in(client, db, make_user(db, Role.viewer))
    page = client.get(f"/tickets/DD-{answer.json()['ticket_id']}").text
    assert "javascript:alert(&#34;&lt;x&gt;&#34;)" in page
    assert 'href="javascript' not in page and 'src="javascript' not in page
    assert '"<x>"' not in page


def test_an_oncall_ok_without_alert_uid_resolves_nothing_and_opens_no_ticket(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "oncall")
    fired = client.post(made.path or "", json={"title": "API latency", "state": "alerting"})
    ok = client.post(made.path or "", json={"title": "API latency", "state": "ok"})
    assert ok.status_code == 202, ok.text
    assert ok.json()["ticket_id"] is None
    db.expire_all()
    alarm = db.get(Alarm, fired.json()["alert_id"])
    assert alarm is not None and alarm.state == "firing"
    assert db.scalar(select(func.count()).select_from(Ticket)) == 1
