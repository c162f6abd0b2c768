"""The log sources page (`/log-sources`) and `dutydesk log-sources add | list | scan | remove`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from dutydesk.audit.models import AuditEvent
from dutydesk.cli import app
from dutydesk.db import transaction
from dutydesk.intake import log_sources
from dutydesk.jobs.models import Job
from tests.conftest import make_user, sign_in


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def names(db: Session) -> list[str]:
    db.expire_all()
    return [source.name for source in log_sources.list_log_sources(db)]


def test_page_lists_each_source_with_its_last_scan(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    (tmp_path / "a.log").write_text(
        '10.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 500 1 "-" "curl/8"\n'
    )
    scanned = log_sources.create_log_source(
        db, name="web", glob=str(tmp_path / "*.log"), actor="t", fmt="nginx"
    )
    log_sources.scan_source(db, scanned, dt.datetime(2026, 11, 24, 12, 5, tzinfo=dt.UTC))
    log_sources.create_log_source(db, name="api", glob="/var/log/api/*.log", actor="t")
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/log-sources")
    assert page.status_code == 200
    text = page.text
    assert "web" in text and str(tmp_path / "*.log") in text and "nginx" in text
    assert "2026-11-24 12:05" in text and "1 file, 1 line" in text
    assert "/var/log/api/*.log" in text and "never" in text and "not scanned yet" in text
    assert 'href="/log-sources"' in client.get("/integrations").text  # linked, and in the menu


def test_admin_adds_a_source_through_the_form(client: TestClient, db: Session) -> None:
    csrf = sign_in(client, db, make_user(db, "admin"))
    page = client.get("/log-sources").text
    assert 'action="/log-sources"' in page and "<option>nginx</option>" in page
    form = {"csrf_token": csrf, "name": "web", "glob": "/var/log/nginx/*.log*", "format": "nginx"}
    made = client.post("/log-sources", data=form)
    assert made.status_code == 303 and made.headers["location"] == "/log-sources"
    db.expire_all()
    source = log_sources.get_log_source(db, "web")
    assert (source.glob, source.format, source.created_by) == (
        "/var/log/nginx/*.log*",
        "nginx",
        "admin-user",
    )
    assert "/var/log/nginx/*.log*" in client.get("/log-sources").text


def test_a_relative_glob_is_shown_with_400_and_adds_nothing(
    client: TestClient, db: Session
) -> None:
    csrf = sign_in(client, db, make_user(db, "admin"))
    refused = client.post(
        "/log-sources",
        data={"csrf_token": csrf, "name": "web", "glob": "logs/*.log", "format": "auto"},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("text/html")
    assert "must be an absolute path" in refused.text and 'role="alert"' in refused.text
    assert 'value="logs/*.log"' in refused.text  # what was typed is kept
    unknown = client.post(
        "/log-sources",
        data={"csrf_token": csrf, "name": "web", "glob": "/var/log/*.log", "format": "syslogd"},
    )
    assert unknown.status_code == 400 and "unknown format" in unknown.text
    assert names(db) == []


def test_a_viewer_sees_the_list_without_forms_and_may_not_post(
    client: TestClient, db: Session
) -> None:
    log_sources.create_log_source(db, name="web", glob="/var/log/web/*.log", actor="t")
    db.commit()
    csrf = sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/log-sources").text
    assert "/var/log/web/*.log" in page
    assert "<form" not in page.split("<main>", 1)[1]
    assert 'action="/log-sources' not in page
    form = {"csrf_token": csrf, "name": "api", "glob": "/var/log/api/*.log"}
    assert client.post("/log-sources", data=form).status_code == 403
    assert client.post("/log-sources/web/delete", data={"csrf_token": csrf}).status_code == 403
    assert client.post("/log-sources/scan", data={"csrf_token": csrf}).status_code == 403
    assert names(db) == ["web"]


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    sign_in(client, db, make_user(db, "admin"))
    form = {"name": "web", "glob": "/var/log/web/*.log"}
    assert client.post("/log-sources", data=form).status_code == 403
    assert names(db) == []


def test_admin_deletes_a_source_and_an_unknown_one_is_404(client: TestClient, db: Session) -> None:
    source = log_sources.create_log_source(db, name="web", glob="/var/log/web/*.log", actor="t")
    log_sources.create_log_source(db, name="api", glob="/var/log/api/*.log", actor="t")
    db.commit()
    csrf = sign_in(client, db, make_user(db, "admin"))
    assert f'action="/log-sources/{source.id}/delete"' in client.get("/log-sources").text
    gone = client.post(f"/log-sources/{source.id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303 and gone.headers["location"] == "/log-sources"
    assert names(db) == ["api"]
    assert client.post("/log-sources/api/delete", data={"csrf_token": csrf}).status_code == 303
    assert names(db) == []
    assert client.post("/log-sources/nope/delete", data={"csrf_token": csrf}).status_code == 404


def test_admin_queues_a_scan_now(client: TestClient, db: Session) -> None:
    log_sources.create_log_source(db, name="web", glob="/var/log/web/*.log", actor="t")
    db.commit()
    csrf = sign_in(client, db, make_user(db, "admin"))
    queued = client.post("/log-sources/scan", data={"csrf_token": csrf})
    assert queued.status_code == 200 and "is queued (job" in queued.text
    db.expire_all()
    assert db.scalars(select(Job.kind)).all() == ["intake.log_scan"]


def test_cli_adds_lists_scans_and_removes_sources(tmp_path: Path) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    (tmp_path / "app.log").write_text("2026-11-24 10:00:00,123 ERROR [main] x.Y - boom\n")
    glob = str(tmp_path / "*.log")
    added = dutydesk("log-sources", "add", "app", glob, "--format", "java")
    assert added.exit_code == 0, added.output
    assert "added log source app" in added.stdout
    listed = dutydesk("log-sources", "list")
    assert listed.exit_code == 0
    assert "app" in listed.stdout and glob in listed.stdout and "never" in listed.stdout
    scanned = dutydesk("log-sources", "scan", "app")
    assert scanned.exit_code == 0, scanned.output
    assert "app: 1 file, 1 line" in scanned.stdout
    assert "1 file, 1 line" in dutydesk("log-sources", "list").stdout
    assert dutydesk("log-sources", "scan").stdout == "app: 0 files, 0 lines\n"
    with transaction() as session:
        audited = session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "log_sources")
        ).all()
        assert audited and all(event.actor.startswith("cli:") for event in audited)
    removed = dutydesk("log-sources", "remove", "app")
    assert removed.exit_code == 0 and "removed log source app" in removed.stdout
    assert dutydesk("log-sources", "list").stdout == ""


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    relative = dutydesk("log-sources", "add", "web", "logs/*.log")
    assert relative.exit_code == 2 and "error: the glob must be an absolute path" in relative.stderr
    wrong = dutydesk("log-sources", "add", "web", "/var/log/*.log", "--format", "syslogd")
    assert wrong.exit_code == 2 and "unknown format 'syslogd'" in wrong.stderr
    assert dutydesk("log-sources", "add", "web", "/var/log/*.log").exit_code == 0
    again = dutydesk("log-sources", "add", "web", "/var/log/x/*.log")
    assert again.exit_code == 2 and "exists" in again.stderr
    missing = dutydesk("log-sources", "remove", "nope")
    assert missing.exit_code == 2 and "error: no log source 'nope'" in missing.stderr
    assert dutydesk("log-sources", "scan", "nope").exit_code == 2
