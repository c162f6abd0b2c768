"""The Backups page, the overview's backup line and /api/v1/backups: who may do what, what
shows red, and clear 4xx answers."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.backups import service
from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from tests.backups.support import flip_byte, make_source
from tests.conftest import make_user, sign_in

SCOPES = {"viewer": ["read"], "operator": ["read", "write"], "admin": ["admin"]}


def token(db: Session, role: str) -> dict[str, str]:
    """A bearer header of a token of a user of `role` with that role's scopes."""
    make_user(db, role, f"{role}-api")
    made = people.create_token(db, f"{role}-token", SCOPES[role], username=f"{role}-api")
    secret = made.secret
    db.commit()
    return {"Authorization": f"Bearer {secret}"}


def drilled_target(db: Session, tmp_path: Path, *, corrupt: bool) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=20)
    target = service.add_target(db, "app", url, destination=str(tmp_path / "dest"))
    backup = service.take_backup(db, target)
    if corrupt and backup.location:
        flip_byte(Path(backup.location))
    service.verify_backup(db, backup)
    db.commit()


def test_page_and_overview_show_a_failed_drill_red(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    drilled_target(db, tmp_path, corrupt=True)
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/backups")
    assert page.status_code == 200
    assert 'id="target-app"' in page.text and "drill failed" in page.text
    assert "checksum mismatch" in page.text
    assert "Back up now" not in page.text  # a viewer gets no buttons
    overview = client.get("/")
    assert 'class="failing"><a href="/backups#target-app">app</a>: restore drill failed' in (
        overview.text
    )


def test_page_and_overview_show_a_verified_target_green(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    drilled_target(db, tmp_path, corrupt=False)
    sign_in(client, db, make_user(db, "operator"))
    page = client.get("/backups")
    assert "verified" in page.text and "Back up now" in page.text
    assert "1 target(s), none stale, no failed drill" in client.get("/").text


def test_operator_queues_a_backup_from_the_page_and_a_viewer_may_not(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    drilled_target(db, tmp_path, corrupt=False)
    csrf = sign_in(client, db, make_user(db, "viewer"))
    refused = client.post("/backups/app/run", data={"csrf_token": csrf})
    assert refused.status_code == 403
    csrf = sign_in(client, db, make_user(db, "operator"))
    assert client.post("/backups/app/run", data={}).status_code == 403  # no CSRF token
    queued = client.post("/backups/app/run", data={"csrf_token": csrf})
    assert queued.status_code == 303
    kinds = [job.kind for job in db.scalars(select(Job).where(Job.kind.like("backups.%")))]
    assert kinds == ["backups.run"]
    assert client.post("/backups/nope/verify", data={"csrf_token": csrf}).status_code == 404


def test_api_lists_targets_backups_and_drills_without_passwords(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    drilled_target(db, tmp_path, corrupt=False)
    service.add_target(db, "pg", "postgresql+psycopg://u:hunter2@db.example/x")
    db.commit()
    viewer = token(db, "viewer")
    targets = client.get("/api/v1/backups/targets", headers=viewer).json()
    assert [t["name"] for t in targets] == ["app", "pg"]
    assert targets[0]["fresh"] is True and "hunter2" not in str(targets)
    backups = client.get("/api/v1/backups?target=app", headers=viewer).json()
    assert backups[0]["verification"] == "verified" and len(backups[0]["sha256"]) == 64
    drills = client.get("/api/v1/backups/drills", headers=viewer).json()
    assert drills[0]["state"] == "passed" and drills[0]["rto_seconds"] is not None
    assert client.get("/api/v1/backups?target=nope", headers=viewer).status_code == 404
    assert client.get("/api/v1/backups/targets").status_code == 401


def test_api_adds_targets_for_admins_only_and_names_bad_input(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    body = {"name": "study", "source_url": f"sqlite:///{tmp_path / 's.sqlite'}"}
    operator = token(db, "operator")
    assert client.post("/api/v1/backups/targets", json=body, headers=operator).status_code == 403
    admin = token(db, "admin")
    made = client.post("/api/v1/backups/targets", json=body, headers=admin)
    assert made.status_code == 201 and made.json()["kind"] == "sqlite"
    again = client.post("/api/v1/backups/targets", json=body, headers=admin)
    assert again.status_code == 409
    wrong = client.post(
        "/api/v1/backups/targets",
        json={"name": "m", "source_url": "mysql://root@localhost/x"},
        headers=admin,
    )
    assert wrong.status_code == 422 and "cannot back up mysql" in wrong.json()["detail"]
    queued = client.post("/api/v1/backups/targets/study/run", headers=operator)
    assert queued.status_code == 202 and queued.json()["kind"] == "backups.run"
    viewer = token(db, "viewer")
    assert client.post("/api/v1/backups/targets/study/verify", headers=viewer).status_code == 403


def test_metrics_show_each_targets_backup_drill_rpo_rto_and_freshness(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    drilled_target(db, tmp_path, corrupt=True)
    viewer = token(db, "viewer")
    text = client.get("/metrics", headers=viewer).text
    assert 'dutydesk_backup_drill_ok{target="app"} 0.0' in text
    assert 'dutydesk_backup_fresh{target="app"} 0.0' in text
    assert 'dutydesk_backup_drill_rto_seconds{target="app"}' in text
    assert 'dutydesk_backup_last_size_bytes{target="app"}' in text
