"""Heartbeat pings (Healthchecks-compatible) and CI pipeline events."""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.intake.models import Ping
from dutydesk.tickets.models import Ticket
from tests.intake.conftest import make_integration


def only_alarm(db: Session) -> Alarm:
    db.expire_all()
    (alarm,) = db.scalars(select(Alarm))
    return alarm


def test_pings_are_stored_with_their_output_and_a_fail_fires_until_a_success(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "heartbeat", "nightly-backup", close_on_resolve=True)
    assert made.path == f"/ping/{made.token}"
    assert client.get(f"{made.path}/start").text == "OK"
    assert client.head(made.path or "").status_code == 200
    failed = client.post(f"{made.path}/3", content=b"pg_dump: connection refused")
    assert failed.status_code == 200
    alarm = only_alarm(db)
    assert (alarm.state, alarm.title) == ("firing", "Heartbeat failed: nightly-backup")
    assert "exit status 3" in alarm.description and "connection refused" in alarm.description
    client.post(f"{made.path}/log", content=b"retrying")
    assert only_alarm(db).state == "firing"
    client.post(made.path or "", content=b"backup done in 41 s")
    alarm = only_alarm(db)
    assert alarm.state == "resolved"
    ticket = db.get(Ticket, alarm.ticket_id)
    assert ticket is not None and ticket.status == "closed"
    kinds = [(p.kind, p.exit_status, p.body) for p in db.scalars(select(Ping).order_by(Ping.id))]
    assert kinds == [
        ("start", None, ""),
        ("success", None, ""),
        ("exit", 3, "pg_dump: connection refused"),
        ("log", None, "retrying"),
        ("success", None, "backup done in 41 s"),
    ]
    check = made.integration.check
    assert check is not None
    db.refresh(check)
    assert check.last_success_at is not None and check.last_ping_kind == "success"


def test_success_pings_without_a_failure_touch_no_ticket(client: TestClient, db: Session) -> None:
    made = make_integration(db, "heartbeat")
    for _ in range(3):
        assert client.get(made.path or "").status_code == 200
    assert db.scalar(select(Ticket)) is None


def test_an_unknown_ping_action_is_400_and_an_unknown_uuid_401(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "heartbeat")
    assert client.get(f"{made.path}/sideways").status_code == 400
    assert client.get(f"{made.path}/256").status_code == 400
    assert client.get("/ping/0b0e8f5e-0000-4000-8000-000000000000").status_code == 401


def workflow_run(conclusion: str) -> dict[str, object]:
    return {
        "action": "completed",
        "workflow_run": {
            "id": 1,
            "name": "tests",
            "head_branch": "main",
            "status": "completed",
            "conclusion": conclusion,
            "html_url": "https://github.com/acme/exporter/actions/runs/1",
        },
        "repository": {"full_name": "acme/exporter"},
    }


def signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": "workflow_run",
        "Content-Type": "application/json",
    }


def test_github_failure_fires_the_pipeline_alarm_and_next_success_resolves(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "github", signing_secret="s3cret-signing")
    failure = json.dumps(workflow_run("failure")).encode()
    answer = client.post(
        made.path or "", content=failure, headers=signed("s3cret-signing", failure)
    )
    assert answer.status_code == 200, answer.text
    alarm = only_alarm(db)
    assert alarm.state == "firing"
    assert alarm.title == "CI failed: acme/exporter tests on main"
    success = json.dumps(workflow_run("success")).encode()
    client.post(made.path or "", content=success, headers=signed("s3cret-signing", success))
    assert only_alarm(db).state == "resolved"


def test_github_event_with_a_bad_signature_is_401_and_kept(client: TestClient, db: Session) -> None:
    made = make_integration(db, "github", signing_secret="s3cret-signing")
    body = json.dumps(workflow_run("failure")).encode()
    answer = client.post(made.path or "", content=body, headers=signed("wrong", body))
    assert answer.status_code == 401
    assert "X-Hub-Signature-256" in answer.json()["detail"]
    assert db.scalar(select(Alarm)) is None


def test_gitlab_pipeline_hook_needs_its_token_and_failed_fires(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "gitlab", signing_secret="gl-secret")
    hook = {
        "object_kind": "pipeline",
        "object_attributes": {"id": 7, "ref": "main", "status": "failed", "url": "https://gl/p/7"},
        "project": {"path_with_namespace": "acme/exporter"},
    }
    headers = {"X-Gitlab-Event": "Pipeline Hook"}
    assert client.post(made.path or "", json=hook, headers=headers).status_code == 401
    headers["X-Gitlab-Token"] = "gl-secret"
    assert client.post(made.path or "", json=hook, headers=headers).status_code == 200
    assert only_alarm(db).state == "firing"
    hook["object_attributes"] = {**hook["object_attributes"], "status": "success"}  # type: ignore[dict-item]
    client.post(made.path or "", json=hook, headers=headers)
    assert only_alarm(db).state == "resolved"


def test_plain_ci_event_fires_on_failure_and_ignores_running(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "ci")
    event = {
        "pipeline": "nightly-export",
        "stage": "deploy",
        "branch": "main",
        "url": "https://j/1",
    }
    assert client.post(made.path or "", json={**event, "status": "running"}).json()["accepted"] == 0
    client.post(made.path or "", json={**event, "status": "FAILURE"})
    alarm = only_alarm(db)
    assert alarm.title == "CI failed: nightly-export on main at deploy"
    client.post(made.path or "", json={**event, "status": "success"})
    assert only_alarm(db).state == "resolved"
    assert client.post(made.path or "", json={"status": "failed"}).status_code == 422
