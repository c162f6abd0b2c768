"""The audit log: every change to configuration objects, with actor, time and diff."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.audit.models import AuditEvent
from dutydesk.audit.service import REDACTED
from dutydesk.people import service as people
from tests.conftest import make_user, sign_in


def events(db: Session, object_type: str) -> list[AuditEvent]:
    """The audit events about one kind of object, oldest first."""
    return list(
        db.scalars(
            select(AuditEvent).where(AuditEvent.object_type == object_type).order_by(AuditEvent.id)
        )
    )


def test_creating_a_user_records_who_and_the_new_values(db: Session) -> None:
    db.info["actor"] = "ada"
    user = people.add_user(db, "olga", "operator", email="olga@x.example", password="p" * 12)
    db.commit()
    [event] = events(db, "users")
    assert (event.actor, event.action, event.object_id) == ("ada", "create", str(user.id))
    assert event.after is not None
    assert event.after["username"] == "olga"
    assert event.diff["role"] == [None, "operator"]
    assert event.after["password_hash"] == REDACTED
    assert "argon2" not in str(event.after) + str(event.diff)


def test_changing_a_role_records_a_before_after_diff(db: Session) -> None:
    user = make_user(db, "viewer", "vera")
    make_user(db, "admin", "root")
    db.info["actor"] = "root"
    people.update_user(db, user, role="operator", active=True)
    db.commit()
    update = events(db, "users")[-1]
    assert update.action == "update"
    assert update.actor == "root"
    assert update.diff == {"role": ["viewer", "operator"]}
    assert update.before is not None and update.before["role"] == "viewer"
    assert update.after is not None and update.after["role"] == "operator"


def test_token_create_and_revoke_are_audited_without_the_secret(db: Session) -> None:
    made = people.create_token(db, "ci", ["intake"])
    db.commit()
    people.revoke_token(db, made.token.id)
    db.commit()
    create, revoke = events(db, "api_tokens")
    assert create.after is not None and create.after["token_hash"] == REDACTED
    assert made.secret not in str(create.after)
    assert revoke.action == "update"
    assert set(revoke.diff) == {"revoked_at"}


def test_token_use_bookkeeping_is_not_an_audited_change(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "dash", ["read"])
    db.commit()
    before = len(events(db, "api_tokens"))
    client.get("/api/v1/me", headers={"Authorization": f"Bearer {made.secret}"})
    assert len(events(db, "api_tokens")) == before


def test_deleting_an_audited_object_records_its_last_values(db: Session) -> None:
    user = make_user(db, "viewer", "gone")
    db.delete(user)
    db.commit()
    deleted = events(db, "users")[-1]
    assert deleted.action == "delete"
    assert deleted.before is not None and deleted.before["username"] == "gone"
    assert deleted.after is None


def test_a_rolled_back_change_leaves_no_audit_event(db: Session) -> None:
    people.add_user(db, "ghost", "viewer", email=None, password="p" * 12)
    db.rollback()
    assert events(db, "users") == []


def test_changes_made_in_the_console_name_the_signed_in_user(
    client: TestClient, db: Session
) -> None:
    admin = make_user(db, "admin", "root")
    token = sign_in(client, db, admin)
    response = client.post(
        "/users", data={"username": "newbie", "role": "viewer", "csrf_token": token}
    )
    assert response.status_code == 200
    assert re.search(r'id="new-password">[^<]{8,}<', response.text)
    created = events(db, "users")[-1]
    assert (created.actor, created.action) == ("root", "create")
    assert created.after is not None and created.after["username"] == "newbie"


def test_changes_made_with_a_token_name_the_token(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "provisioner", ["admin"])
    db.commit()
    response = client.post(
        "/api/v1/tokens",
        json={"name": "child", "scopes": ["read"]},
        headers={"Authorization": f"Bearer {made.secret}"},
    )
    assert response.status_code == 201
    assert response.json()["token"].startswith("ddt_")
    assert events(db, "api_tokens")[-1].actor == "(token provisioner)"


def test_audit_api_filters_by_actor_object_and_action(client: TestClient, db: Session) -> None:
    db.info["actor"] = "ada"
    people.add_user(db, "one", "viewer", email=None, password="p" * 12)
    db.info["actor"] = "dirk"
    two = people.add_user(db, "two", "viewer", email=None, password="p" * 12)
    people.create_token(db, "t", ["read"])
    db.commit()
    db.info["actor"] = "dirk"
    two.email = "two@x.example"
    db.commit()
    reader = people.create_token(db, "auditor", ["read"])
    db.commit()
    headers = {"Authorization": f"Bearer {reader.secret}"}

    by_dirk = client.get("/api/v1/audit", params={"actor": "dirk"}, headers=headers).json()
    assert {(e["object_type"], e["action"]) for e in by_dirk} == {
        ("users", "create"),
        ("api_tokens", "create"),
        ("users", "update"),
    }
    updates = client.get(
        "/api/v1/audit", params={"object_type": "users", "action": "update"}, headers=headers
    ).json()
    assert [e["diff"] for e in updates] == [{"email": [None, "two@x.example"]}]
    newest_first = client.get("/api/v1/audit", headers=headers).json()
    assert [e["id"] for e in newest_first] == sorted((e["id"] for e in newest_first), reverse=True)
    bad = client.get("/api/v1/audit", params={"action": "explode"}, headers=headers)
    assert bad.status_code == 422
    assert "action" in bad.text


def test_audit_page_lists_changes_and_filters_them(client: TestClient, db: Session) -> None:
    viewer = make_user(db, "viewer", "vera")
    db.info["actor"] = "ada"
    people.add_user(db, "listed", "operator", email=None, password="p" * 12)
    db.commit()
    sign_in(client, db, viewer)
    page = client.get("/audit", params={"actor": "ada"})
    assert page.status_code == 200
    assert "listed" in page.text
    assert "role: operator" in page.text
    assert "vera" not in page.text.split('id="audit-events"')[1]


def test_audit_page_takes_its_own_form_with_blank_fields(client: TestClient, db: Session) -> None:
    viewer = make_user(db, "viewer", "vera")
    db.info["actor"] = "ada"
    people.add_user(db, "listed", "operator", email=None, password="p" * 12)
    db.commit()
    sign_in(client, db, viewer)
    blank = {"actor": "", "object_type": "", "action": "", "since": "", "until": ""}
    page = client.get("/audit", params=blank)
    assert page.status_code == 200
    assert "listed" in page.text
    typed = client.get("/audit", params={**blank, "since": "2000-01-01 00:00"})
    assert typed.status_code == 200
    assert 'value="2000-01-01 00:00"' in typed.text
    assert "listed" in typed.text
    wrong = client.get("/audit", params={**blank, "since": "yesterday"})
    assert wrong.status_code == 422
    assert "since" in wrong.text


def test_audit_page_shows_each_change_as_field_before_and_after(
    client: TestClient, db: Session
) -> None:
    viewer = make_user(db, "viewer", "vera")
    db.info["actor"] = "ada"
    user = people.add_user(db, "promoted", "viewer", email=None, password="p" * 12)
    db.commit()
    user.role = "operator"
    db.commit()
    sign_in(client, db, viewer)
    page = client.get("/audit", params={"actor": "ada", "action": "update"})
    table = page.text.split('id="audit-events"')[1]
    assert "role: <del>viewer</del> → <ins>operator</ins>" in table
    # No raw dictionaries or lists of the stored diff, and no password hash.
    assert "['viewer'" not in table and "{&#39;" not in table and "argon2" not in table
