"""Releases through the API and the console: who may do what, the clear refusal of a command
not listed in settings, signoffs by a second person, window overrides by an approver only,
and the release page that refreshes itself."""

from __future__ import annotations

import json
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import dutydesk.runbooks.releases.jobs  # noqa: F401 - registers the advance job
from dutydesk.db import utcnow
from dutydesk.people import service as people
from dutydesk.people.models import Role
from dutydesk.runbooks.releases import service
from tests.conftest import clear_caches, make_user, sign_in


@pytest.fixture
def tokens(db: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """Bearer headers of a viewer, the operator who releases, and an approver."""
    monkeypatch.setenv(
        "DUTYDESK_RELEASE_COMMANDS", json.dumps({"deploy": [sys.executable, "-c", "print(2)"]})
    )
    clear_caches()
    headers = {}
    for role, name in ((Role.viewer, "vic"), (Role.operator, "olga"), (Role.approver, "ann")):
        make_user(db, role, name)
        secret = people.create_token(db, name, ["write"], username=name).secret
        headers[name] = {"Authorization": f"Bearer {secret}"}
    db.commit()
    return headers


TEMPLATE = {
    "name": "deploy",
    "steps": [
        {"name": "Switch the image", "kind": "command", "params": {"command": "deploy"}},
        {"name": "Acceptance test", "kind": "signoff", "params": {"role": "approver"}},
    ],
}


def drive(db: Session, release_id: int) -> None:
    """Run what the worker's advance jobs would."""
    db.expire_all()
    release = service.get_release(db, release_id)
    while service.advance(db, release):
        pass
    db.commit()


def test_template_api_refuses_a_command_not_listed_in_settings(
    client: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    wiped = {
        "name": "deploy",
        "steps": [{"name": "Wipe", "kind": "command", "params": {"command": "rm -rf /"}}],
    }
    refused = client.post("/api/v1/release-templates", json=wiped, headers=tokens["olga"])
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "step 1 (Wipe): command 'rm -rf /' is not one of the commands an admin listed in "
        "DUTYDESK_RELEASE_COMMANDS (deploy)"
    )
    assert client.get("/api/v1/release-templates", headers=tokens["vic"]).json() == []
    viewer = client.post("/api/v1/release-templates", json=TEMPLATE, headers=tokens["vic"])
    assert viewer.status_code == 403
    assert client.post("/api/v1/release-templates", json=TEMPLATE).status_code == 401
    made = client.post("/api/v1/release-templates", json=TEMPLATE, headers=tokens["olga"])
    assert made.status_code == 201
    assert [step["kind"] for step in made.json()["steps"]] == ["command", "signoff"]
    assert client.get("/api/v1/release-templates/deploy", headers=tokens["vic"]).status_code == 200
    assert client.get("/api/v1/release-templates/nope", headers=tokens["vic"]).status_code == 404


def test_release_api_runs_a_command_and_a_second_person_signs_off(
    client: TestClient, db: Session, tokens: dict[str, dict[str, str]]
) -> None:
    client.post("/api/v1/release-templates", json=TEMPLATE, headers=tokens["olga"])
    planned = client.post(
        "/api/v1/releases", json={"template": "deploy", "version": "2.3.0"}, headers=tokens["olga"]
    )
    assert planned.status_code == 201, planned.text
    ident = planned.json()["id"]
    assert client.post(f"/api/v1/releases/{ident}/start", headers=tokens["vic"]).status_code == 403
    started = client.post(f"/api/v1/releases/{ident}/start", headers=tokens["olga"])
    assert started.json()["state"] == "running"
    again = client.post(f"/api/v1/releases/{ident}/start", headers=tokens["olga"])
    assert again.status_code == 409 and "not planned" in again.json()["detail"]
    drive(db, ident)

    shown = client.get(f"/api/v1/releases/{ident}", headers=tokens["vic"]).json()
    assert [step["state"] for step in shown["steps"]] == ["done", "waiting"]
    assert shown["steps"][0]["output"]["stdout"] == "2\n"
    own = client.post(
        f"/api/v1/releases/{ident}/steps/2/sign", json={"text": "ok"}, headers=tokens["olga"]
    )
    assert own.status_code == 403 and "needs the approver role" in own.json()["detail"]
    signed = client.post(
        f"/api/v1/releases/{ident}/steps/2/sign",
        json={"text": "acceptance test passed"},
        headers=tokens["ann"],
    )
    assert signed.status_code == 200
    drive(db, ident)
    done = client.get(f"/api/v1/releases/{ident}", headers=tokens["vic"]).json()
    assert done["state"] == "done"
    assert "step 2 (Acceptance test) signed: acceptance test passed" in [
        event["what"] for event in done["timeline"]
    ]
    bad = client.post(
        "/api/v1/releases", json={"template": "deploy", "version": "soon"}, headers=tokens["olga"]
    )
    assert bad.status_code == 422 and "not a semantic version" in bad.json()["detail"]
    nothing = client.post(f"/api/v1/releases/{ident}/steps/9/tick", headers=tokens["olga"])
    assert nothing.status_code == 404


def test_window_override_needs_an_approver_and_its_reason_is_on_the_timeline(
    client: TestClient, db: Session, tokens: dict[str, dict[str, str]]
) -> None:
    closed = (utcnow().weekday() + 2) % 7
    window = {"name": "later", "days": [str(closed)], "starts": "01:00", "ends": "02:00"}
    assert (
        client.post("/api/v1/release-windows", json=window, headers=tokens["olga"]).status_code
        == 201
    )
    client.post(
        "/api/v1/release-templates", json={**TEMPLATE, "window": "later"}, headers=tokens["olga"]
    )
    ident = client.post(
        "/api/v1/releases", json={"template": "deploy", "version": "1.0.0"}, headers=tokens["olga"]
    ).json()["id"]
    client.post(f"/api/v1/releases/{ident}/start", headers=tokens["olga"])
    drive(db, ident)
    blocked = client.get(f"/api/v1/releases/{ident}", headers=tokens["olga"]).json()
    assert blocked["state"] == "blocked" and blocked["steps"][0]["state"] == "blocked"

    body = {"text": "hotfix for a data leak"}
    url = f"/api/v1/releases/{ident}/steps/1/override"
    assert client.post(url, json=body, headers=tokens["olga"]).status_code == 403
    assert client.post(url, json={"text": ""}, headers=tokens["ann"]).status_code == 422
    assert client.post(url, json=body, headers=tokens["ann"]).status_code == 200
    drive(db, ident)
    after = client.get(f"/api/v1/releases/{ident}", headers=tokens["olga"]).json()
    assert after["steps"][0]["state"] == "done"
    assert after["steps"][0]["override_by"] == "ann"
    assert "window overridden for step 1 (Switch the image): hotfix for a data leak" in [
        event["what"] for event in after["timeline"]
    ]


def test_release_pages_refresh_themselves_and_take_forms_with_csrf(
    client: TestClient, db: Session, tokens: dict[str, dict[str, str]]
) -> None:
    operator = people.find_user(db, "olga")
    assert operator is not None
    csrf = sign_in(client, db, operator)
    yaml_text = (
        "name: deploy\nsteps:\n  - {name: Agree a time with core users, kind: manual}\n"
        "  - {name: Wipe, kind: command, command: wipe}\n"
    )
    refused = client.post("/releases/templates", data={"csrf_token": csrf, "yaml": yaml_text})
    assert refused.status_code == 200
    assert "command &#39;wipe&#39; is not one of the commands an admin listed" in refused.text
    saved = client.post(
        "/releases/templates",
        data={"csrf_token": csrf, "yaml": yaml_text.rsplit("  - {name: Wipe", 1)[0]},
    )
    assert saved.status_code == 303
    assert (
        client.post("/releases", data={"template": "deploy", "version": "1.0.0"}).status_code == 403
    )
    planned = client.post(
        "/releases", data={"csrf_token": csrf, "template": "deploy", "version": "1.0.0"}
    )
    assert planned.status_code == 303
    page_path = planned.headers["location"]
    started = client.post(f"{page_path}/start", data={"csrf_token": csrf})
    assert started.status_code == 303
    drive(db, int(page_path.rsplit("/", 1)[1]))
    page = client.get(page_path)
    assert 'hx-trigger="every 3s"' in page.text
    assert f'hx-get="{page_path}/live"' in page.text
    assert 'data-state="waiting"' in page.text
    ticked = client.post(
        f"{page_path}/steps/1/tick", data={"csrf_token": csrf, "text": "agreed for 18:00"}
    )
    assert ticked.status_code == 303
    live = client.get(f"{page_path}/live")
    assert "agreed for 18:00" in live.text and "<html" not in live.text
    twice = client.post(f"{page_path}/steps/1/tick", data={"csrf_token": csrf})
    assert twice.status_code == 409 and "not waiting" in twice.text
    assert client.get("/releases").status_code == 200
    assert client.get("/releases/templates/new").status_code == 200
    assert client.get("/releases/999999").status_code == 404


def test_release_page_shows_its_pipelines_events_and_attaches_a_failure(
    client: TestClient, db: Session, tokens: dict[str, dict[str, str]]
) -> None:
    from dutydesk.intake import service as intake

    hook = intake.create_integration(db, name="jenkins", kind="ci", actor="t")
    db.commit()

    def pipeline(status: str) -> None:
        sent = client.post(
            f"/hooks/ci/{hook.token}",
            json={"pipeline": "build-app", "status": status, "url": "https://ci.example.org/7"},
        )
        assert sent.status_code < 300, sent.text

    pipeline("success")
    template = {
        "name": "deploy",
        "pipelines": ["build-app"],
        "steps": [
            {"name": "Build passed", "kind": "ci", "params": {"pipeline": "build-app"}},
            {"name": "Testers run the acceptance test", "kind": "manual"},
        ],
    }
    client.post("/api/v1/release-templates", json=template, headers=tokens["olga"])
    ident = client.post(
        "/api/v1/releases", json={"template": "deploy", "version": "1.0.0"}, headers=tokens["olga"]
    ).json()["id"]
    client.post(f"/api/v1/releases/{ident}/start", headers=tokens["olga"])
    drive(db, ident)
    pipeline("failed")
    drive(db, ident)  # each look at the release attaches new failures
    from dutydesk.runbooks.releases.jobs import watch_pipelines

    assert watch_pipelines(db, {}) == {"attached": 0}  # attached once, not again
    operator = people.find_user(db, "olga")
    assert operator is not None
    sign_in(client, db, operator)
    page = client.get(f"/releases/{ident}/live").text
    assert 'id="pipeline-events"' in page
    assert page.count("build-app") >= 1 and ">failed<" in page
    assert "1 failed pipeline event(s) attached to this release" in page
    shown = client.get(f"/api/v1/releases/{ident}", headers=tokens["vic"]).json()
    assert [event["status"] for event in shown["attached_events"]] == ["failed"]
    assert shown["steps"][0]["state"] == "done"
