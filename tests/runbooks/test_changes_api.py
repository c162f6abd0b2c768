"""The change API and pages: the signer is always the caller, roles decide on every route,
refusals carry their reason, forms need their CSRF token."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from dutydesk.runbooks import ChangeRequest, submit_change
from tests.conftest import sign_in
from tests.runbooks.changes_kit import KIND, People, make_people, new_change


@pytest.fixture
def team(db: Session) -> People:
    return make_people(db)


def token(db: Session, username: str | None, scope: str = "write") -> dict[str, str]:
    made = people.create_token(db, f"{username or 'service'} {scope}", [scope], username=username)
    db.commit()
    return {"Authorization": f"Bearer {made.secret}"}


def pending(db: Session, team: People) -> ChangeRequest:
    change = new_change(db, team.olga)
    submit_change(db, change, team.olga)
    db.commit()
    return change


def signoff(change: ChangeRequest, version: int | None = None) -> dict[str, object]:
    return {"data_version": version or change.data_version, "evidence_hash": change.evidence_hash}


def test_an_approver_signs_off_through_the_api_and_nothing_is_queued(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    answer = client.post(
        f"/api/v1/changes/{change.id}/signoffs",
        json=signoff(change) | {"comment": "counts match"},
        headers=token(db, "abe"),
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["state"] == "approved" and body["rules_met"] is True
    assert body["signoffs"][0]["user"] == "abe" and body["signoffs"][0]["active"] is True
    assert db.scalar(select(func.count()).select_from(Job)) == 0
    ran = client.post(f"/api/v1/changes/{change.id}/run", headers=token(db, "olga"))
    assert ran.status_code == 202 and ran.json()["job_id"] > 0
    shown = client.get(f"/api/v1/changes/{change.id}", headers=token(db, "vic", "read")).json()
    assert [e["kind"] for e in shown["timeline"]][-1] == "run_requested"


@pytest.mark.parametrize(
    ("who", "status", "words"),
    [
        ("olga", 403, "nobody signs off their own"),
        (None, 403, "token without a user"),
        ("otto", 403, "cannot sign"),
        ("vic", 403, "needs the 'operate' permission"),
    ],
)
def test_signoffs_refused_for_the_author_a_userless_token_and_lower_roles(
    client: TestClient, db: Session, team: People, who: str | None, status: int, words: str
) -> None:
    change = pending(db, team)
    scope = "read" if who == "vic" else "write"
    answer = client.post(
        f"/api/v1/changes/{change.id}/signoffs", json=signoff(change), headers=token(db, who, scope)
    )
    assert answer.status_code == status
    assert words in answer.json()["detail"]


def test_a_stale_data_version_is_refused_with_409_and_the_reason(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    from dutydesk.runbooks import revise_change

    revise_change(db, change, team.olga, evidence={"count": 1, "ids": ["r-9"]})
    db.commit()
    answer = client.post(
        f"/api/v1/changes/{change.id}/signoffs",
        json=signoff(change, version=1),
        headers=token(db, "abe"),
    )
    assert answer.status_code == 409
    assert "stale data_version" in answer.json()["detail"]
    assert "version 2" in answer.json()["detail"]


def test_nobody_signs_for_someone_else_the_api_takes_no_user(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    answer = client.post(
        f"/api/v1/changes/{change.id}/signoffs",
        json=signoff(change) | {"user": "amy"},
        headers=token(db, "abe"),
    )
    assert answer.status_code == 422
    db.expire_all()
    assert db.get(ChangeRequest, change.id).signoffs == []  # type: ignore[union-attr]


def test_run_before_approval_is_refused_with_the_reason(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    answer = client.post(f"/api/v1/changes/{change.id}/run", headers=token(db, "olga"))
    assert answer.status_code == 409
    assert "runs only once approved" in answer.json()["detail"]


def test_reject_comment_and_cancel_through_the_api(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    url = f"/api/v1/changes/{change.id}"
    commented = client.post(f"{url}/comments", json={"text": "why 2?"}, headers=token(db, "abe"))
    assert commented.status_code == 201
    assert commented.json()["timeline"][-1]["detail"]["text"] == "why 2?"
    refused = client.post(f"{url}/reject", json={"comment": "no"}, headers=token(db, "otto"))
    assert refused.status_code == 403
    rejected = client.post(f"{url}/reject", json={"comment": "wrong"}, headers=token(db, "amy"))
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    cancelled = client.post(f"{url}/cancel", json={}, headers=token(db, "olga"))
    assert cancelled.status_code == 409 and "cannot be cancelled" in cancelled.json()["detail"]


def test_only_admins_change_the_signoff_rules(
    client: TestClient, db: Session, team: People
) -> None:
    rule = {"kind": KIND, "role": "admin", "count": 2}
    assert (
        client.put("/api/v1/change-rules", json=rule, headers=token(db, "otto")).status_code == 403
    )
    assert (
        client.put("/api/v1/change-rules", json=rule, headers=token(db, "abe")).status_code == 403
    )
    made = client.put("/api/v1/change-rules", json=rule, headers=token(db, "ada", "admin"))
    assert made.status_code == 200
    assert made.json() == [{"kind": KIND, "role": "admin", "count": 2, "default": False}]
    bad = client.put(
        "/api/v1/change-rules", json=rule | {"role": "viewer"}, headers=token(db, "ada", "admin")
    )
    assert bad.status_code == 422 and "cannot sign off" in bad.json()["detail"]
    listed = client.get("/api/v1/change-rules", headers=token(db, "vic", "read")).json()
    assert {"kind": KIND, "role": "admin", "count": 2, "default": False} in listed
    gone = client.delete(f"/api/v1/change-rules/{KIND}/admin", headers=token(db, "ada", "admin"))
    assert gone.status_code == 204
    again = client.delete(f"/api/v1/change-rules/{KIND}/admin", headers=token(db, "ada", "admin"))
    assert again.status_code == 404


def test_unknown_and_out_of_range_ids_are_4xx(
    client: TestClient, db: Session, team: People
) -> None:
    read = token(db, "vic", "read")
    assert client.get("/api/v1/changes/999", headers=read).status_code == 404
    assert client.get("/api/v1/changes/99999999999999", headers=read).status_code == 422
    assert client.get("/api/v1/changes?state=nope", headers=read).status_code == 422
    assert client.get("/api/v1/changes").status_code == 401


def test_the_change_page_shows_the_evidence_and_an_approver_approves_with_its_form(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    csrf = sign_in(client, db, team.abe)
    listing = client.get("/changes")
    assert listing.status_code == 200
    waiting = listing.text.split('id="waiting"')[1].split("</section>")[0]
    assert f"/changes/{change.id}" in waiting
    assert 'href="/change-notices"' in listing.text
    page = client.get(f"/changes/{change.id}")
    assert page.status_code == 200
    assert change.evidence_hash in page.text and 'id="approve-form"' in page.text
    assert "1 more signoff from approver (or higher)" in page.text
    assert 'href="/tickets?change=' in page.text  # the kind's own page
    form = {
        "data_version": str(change.data_version),
        "evidence_hash": change.evidence_hash,
        "comment": "",
    }
    no_csrf = client.post(f"/changes/{change.id}/approve", data=form)
    assert no_csrf.status_code == 403
    approved = client.post(f"/changes/{change.id}/approve", data=form | {"csrf_token": csrf})
    assert approved.status_code == 303
    after = client.get(f"/changes/{change.id}")
    assert re.search(r'id="change-state"[^>]*>approved<', after.text)
    assert 'id="approve-form"' not in after.text


def test_pages_by_role(client: TestClient, db: Session, team: People) -> None:
    change = pending(db, team)
    sign_in(client, db, team.vic)
    page = client.get(f"/changes/{change.id}")
    assert page.status_code == 200 and 'id="approve-form"' not in page.text
    assert client.get("/changes/rules").status_code == 403
    sign_in(client, db, team.otto)
    assert client.get("/changes/rules").status_code == 403
    csrf = sign_in(client, db, team.ada)
    rules = client.get("/changes/rules")
    assert rules.status_code == 200 and "Test change" in rules.text
    made = client.post(
        "/changes/rules", data={"kind": KIND, "role": "admin", "count": "1", "csrf_token": csrf}
    )
    assert made.status_code == 303
    assert "Remove" in client.get("/changes/rules").text
    bad = client.post(
        "/changes/rules", data={"kind": KIND, "role": "admin", "count": "x", "csrf_token": csrf}
    )
    assert bad.status_code == 422


def test_anonymous_pages_go_to_the_login(client: TestClient) -> None:
    answer = client.get("/changes/1")
    assert answer.status_code in (302, 303, 307) and "/login" in answer.headers["location"]


def test_a_request_of_a_kind_this_desk_does_not_know_shows_without_a_server_error(
    client: TestClient, db: Session, team: People
) -> None:
    change = pending(db, team)
    change.kind = "retired_kind"
    db.commit()
    shown = client.get(f"/api/v1/changes/{change.id}", headers=token(db, "vic", "read"))
    assert shown.status_code == 200
    assert shown.json()["missing"] == ["the kind 'retired_kind' is not known to this desk"]
    signed = client.post(
        f"/api/v1/changes/{change.id}/signoffs", json=signoff(change), headers=token(db, "abe")
    )
    assert signed.status_code == 422 and "unknown change kind" in signed.json()["detail"]
    sign_in(client, db, team.abe)
    assert client.get(f"/changes/{change.id}").status_code == 200
    assert client.get("/changes").status_code == 200
