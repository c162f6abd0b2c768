"""The database-change console and API: who may do what, the reviewer signs the dry run they
see, and a target's password never shows in a page, an API answer, a log line or the audit."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.audit.models import AuditEvent
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from dutydesk.runbooks.dbchange import service
from dutydesk.runbooks.dbchange._crypto import decrypt_password
from tests.conftest import sign_in
from tests.runbooks.dbchange_kit import POSTGRES_URL, Crew, TargetDb, make_crew, target_db

__all__ = ["target_db"]

PASSWORD = "Tr0ub4dor-and-3-horses-xyzzy"  # the secret the test hunts for
SCRIPT = "UPDATE items SET status = 'closed' WHERE n <= 100;\nDELETE FROM items WHERE n > 1995;\n"
WEB_TARGETS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DUTYDESK_TEST_POSTGRES_URL unset"),
    ),
]


@pytest.fixture
def crew(db: Session) -> Crew:
    """Olga (operator) writes scripts; Abe (approver) signs; Ada (admin) adds targets."""
    return make_crew(db)


def form(client: TestClient, path: str, csrf: str, **fields: str) -> int:
    """Post a console form; its status code."""
    return client.post(path, data={"csrf_token": csrf, **fields}).status_code


def run_jobs(db: Session, factory: sessionmaker[Session], kind: str) -> list[str]:
    """Run the queued jobs of `kind` here, as a worker would; the states they ended in."""
    queued = db.scalars(
        select(Job.id).where(Job.state == "queued", Job.kind == kind).order_by(Job.id)
    ).all()
    db.commit()
    return [jobs.execute(job_id, "test-worker", factory) for job_id in queued]


def url_with_password(target_db: TargetDb) -> str:
    """The target's URL with PASSWORD as the read-write login's password (trust auth on this
    machine's PostgreSQL accepts it; SQLite has no login)."""
    if target_db.backend == "sqlite":
        return target_db.url
    return target_db.url.replace("postgres@", f"postgres:{PASSWORD}@")


@pytest.mark.parametrize("target_db", WEB_TARGETS, indirect=True)
def test_a_target_password_never_appears_in_pages_api_logs_or_audit(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    crew: Crew,
    target_db: TargetDb,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    target_db.make_items()
    csrf = sign_in(client, db, crew.ada)
    fields = {
        "name": "items-db",
        "url": url_with_password(target_db),
        "read_user": "postgres" if target_db.backend == "postgresql" else "",
        "read_password": PASSWORD,
        "statement_timeout_ms": "5000",
        "lock_timeout_ms": "1000",
    }
    if target_db.backend == "sqlite":
        fields["write_password"] = PASSWORD
    assert form(client, "/dbchanges/targets", csrf, **fields) == 303
    assert form(client, "/dbchanges/targets/items-db/test", csrf) == 303
    seen = [client.get("/dbchanges/targets").text]
    assert "Test connection" in seen[0] and "ok at" in seen[0]
    seen.append(client.get("/api/v1/dbchange/targets").text)
    listed = json.loads(seen[-1])[0]
    assert listed["write_password_set"] and listed["read_password_set"]
    assert listed["last_test"]["ok"], listed["last_test"]

    csrf = sign_in(client, db, crew.olga)
    answer = client.post(
        "/dbchanges",
        data={"csrf_token": csrf, "target": "items-db", "title": "Close the first hundred"},
        files={"file": ("close.sql", SCRIPT.encode(), "application/sql")},
    )
    assert answer.status_code == 303
    page = answer.headers["location"]
    assert form(client, f"{page}/dry-run", csrf) == 303
    assert "A dry run is queued as" in client.get(page).text
    assert run_jobs(db, factory, "dbchange.dry_run") == ["succeeded"]
    seen += [client.get(page).text, client.get("/dbchanges").text]
    change_id = int(page.rsplit("/", 1)[1])
    seen.append(client.get(f"/api/v1/dbchanges/{change_id}").text)
    seen.append(client.get(f"/changes/{change_id}").text)
    assert '"ok":true' in seen[-2].replace(" ", "")
    db.expire_all()

    audit = [
        json.dumps([row.before, row.after, row.diff], default=str)
        for row in db.scalars(select(AuditEvent))
    ]
    assert any("db_change_targets" in row.object_type for row in db.scalars(select(AuditEvent)))
    stored = db.execute(text("SELECT read_password, write_password, url FROM db_change_targets"))
    row = stored.one()
    for place, words in [
        ("page or API answer", seen),
        ("log line", [record.getMessage() for record in caplog.records]),
        ("audit row", audit),
        ("stored target row", [str(tuple(row))]),
    ]:
        assert not [w for w in words if PASSWORD in w], f"the password shows in a {place}"
    assert decrypt_password(row[0]) == PASSWORD


def test_the_stored_password_column_is_ciphertext_that_only_the_secret_key_opens(
    db: Session, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from tests.conftest import clear_caches

    target = service.save_target(
        db, name="t", url="postgresql://app@db.example:5432/app", write_password=PASSWORD
    )
    assert target.write_password and PASSWORD not in target.write_password
    assert re.fullmatch(r"gAAAAA[\w=-]+", target.write_password)  # a Fernet token
    assert decrypt_password(target.write_password) == PASSWORD
    assert service.shown_url(target) == "postgresql://app:***@db.example:5432/app"
    monkeypatch.setenv("DUTYDESK_SECRET_KEY", "another-secret-key-that-is-long-enough-0123456789")
    clear_caches()
    with pytest.raises(ValueError, match="secret key changed"):
        decrypt_password(target.write_password)


def test_who_may_add_targets_register_scripts_dry_run_and_apply(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    crew: Crew,
    tmp_path: object,
) -> None:
    assert client.get("/api/v1/dbchange/targets").status_code == 401
    assert client.get("/dbchanges").status_code in (302, 303, 307)
    csrf = sign_in(client, db, crew.olga)
    sqlite_url = f"sqlite:///{tmp_path}/t.sqlite"
    assert form(client, "/dbchanges/targets", csrf, name="x", url=sqlite_url) == 403
    target_db = TargetDb("sqlite", sqlite_url)
    target_db.make_items()
    service.save_target(db, name="items-db", url=sqlite_url)
    db.commit()
    created = client.post(
        "/api/v1/dbchanges",
        json={"target": "items-db", "script": SCRIPT},
        headers={"x-csrf-token": csrf},
    )
    assert created.status_code == 201, created.text
    change_id = created.json()["id"]
    for bad, status in [
        ({"target": "nope", "script": SCRIPT}, 404),
        # Digits that are no id: a superscript (int() refuses it), past any id column.
        ({"target": "\u00b2", "script": SCRIPT}, 404),
        ({"target": "99999999999999999999", "script": SCRIPT}, 404),
        ({"target": "items-db"}, 422),
        ({"target": "items-db", "script": "-- only a comment"}, 422),
        ({"target": "items-db", "task": "tasks/20260101_x/x.sql"}, 422),  # no tasks folder
    ]:
        answer = client.post("/api/v1/dbchanges", json=bad, headers={"x-csrf-token": csrf})
        assert answer.status_code == status, (bad, answer.text)
    assert (
        client.post(
            f"/api/v1/dbchanges/{change_id}/apply", headers={"x-csrf-token": csrf}
        ).status_code
        == 409
    )
    queued = client.post(f"/api/v1/dbchanges/{change_id}/dry-run", headers={"x-csrf-token": csrf})
    assert queued.status_code == 202 and queued.json()["job_id"] > 0
    assert run_jobs(db, factory, "dbchange.dry_run") == ["succeeded"]
    shown = client.get(f"/api/v1/dbchanges/{change_id}").json()
    assert shown["dry_run"]["ok"] and shown["state"] == "pending"

    csrf = sign_in(client, db, crew.vic)
    assert form(client, f"/dbchanges/{change_id}/dry-run", csrf) == 403
    assert client.get(f"/dbchanges/{change_id}").status_code == 200
    assert client.get("/dbchanges/999").status_code == 404


def test_the_reviewer_signs_the_dry_run_they_see_and_an_edit_drops_the_signoff(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    crew: Crew,
    tmp_path: object,
) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/t.sqlite"
    target_db = TargetDb("sqlite", sqlite_url)
    target_db.make_items()
    target = service.save_target(db, name="items-db", url=sqlite_url)
    change = service.new_change(db, target=target, script=SCRIPT, author=crew.olga)
    db.commit()
    page = f"/dbchanges/{change.id}"

    csrf = sign_in(client, db, crew.olga)
    assert form(client, f"{page}/dry-run", csrf) == 303
    assert run_jobs(db, factory, "dbchange.dry_run") == ["succeeded"]
    mine = client.get(page).text
    assert 'id="sign-form"' not in mine  # the author has nothing to sign
    assert '<span style="color' in mine  # the script is highlighted
    assert "<td>100</td>" in mine and "<td>5</td>" in mine  # rows of each statement
    db.expire_all()
    evidence_hash = service.change_of(db, change.id).evidence_hash
    assert (
        form(
            client,
            f"/changes/{change.id}/approve",
            csrf,
            data_version=str(change.data_version + 1),
            evidence_hash=evidence_hash,
        )
        == 403
    )

    csrf = sign_in(client, db, crew.abe)
    seen = client.get(page).text
    assert 'id="sign-form"' in seen and evidence_hash in seen
    version = re.search(r'name="data_version" value="(\d+)"', seen)
    assert version
    assert (
        form(
            client,
            f"/changes/{change.id}/approve",
            csrf,
            data_version=version.group(1),
            evidence_hash=evidence_hash,
        )
        == 303
    )
    db.expire_all()
    assert service.change_of(db, change.id).state == "approved"

    csrf = sign_in(client, db, crew.olga)
    assert form(client, f"{page}/edit", csrf, script=SCRIPT + "-- one more look\n") == 303
    db.expire_all()
    edited = service.change_of(db, change.id)
    assert edited.state == "pending" and edited.active_signoffs == []
    assert form(client, f"{page}/apply", csrf) == 409
    assert form(client, f"{page}/dry-run", csrf) == 303
    assert run_jobs(db, factory, "dbchange.dry_run") == ["succeeded"]

    csrf = sign_in(client, db, crew.abe)
    seen = client.get(page).text
    db.expire_all()
    evidence_hash = service.change_of(db, change.id).evidence_hash
    version = re.search(r'name="data_version" value="(\d+)"', seen)
    assert version
    assert (
        form(
            client,
            f"/changes/{change.id}/approve",
            csrf,
            data_version=version.group(1),
            evidence_hash=evidence_hash,
        )
        == 303
    )
    csrf = sign_in(client, db, crew.olga)
    assert form(client, f"{page}/apply", csrf) == 303
    assert run_jobs(db, factory, "runbooks.run_change") == ["succeeded"]
    applied = client.get(page).text
    assert "committed" in applied and 'id="apply-result"' in applied
    assert target_db.rows("SELECT count(*) FROM items WHERE status = 'closed'") == [(100,)]
    assert people  # the people service is what sign_in uses


def test_a_failed_dry_run_shows_the_statement_and_offers_nothing_to_sign(
    client: TestClient, db: Session, crew: Crew, tmp_path: object
) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/t.sqlite"
    TargetDb("sqlite", sqlite_url).make_items()
    target = service.save_target(db, name="items-db", url=sqlite_url)
    script = "UPDATE items SET status = 'a' WHERE n < 5;\nUPDATE nowhere SET x = 1;\nCOMMIT;\n"
    refused = service.new_change(db, target=target, script=script, author=crew.olga)
    service.dry_run(db, refused, crew.olga)
    failing = service.new_change(db, target=target, script=script[:-8], author=crew.olga)
    service.dry_run(db, failing, crew.olga)
    db.commit()

    sign_in(client, db, crew.abe)
    page = client.get(f"/dbchanges/{refused.id}").text
    assert "statement 3 (COMMIT) ends or opens a transaction" in page
    assert 'id="sign-form"' not in page and 'id="apply-form"' not in page
    page = client.get(f"/dbchanges/{failing.id}").text
    assert "statement 2 failed: no such table: nowhere" in page
    assert 'id="sign-form"' not in page
    listing = client.get("/dbchanges").text
    assert listing.count("<td>failed</td>") == 2
