"""Release runs through the service: PATCH skips, windows and overrides, failing checks and
rollback, allowed commands, signoffs by a second person, backups' placeholder, CI pipelines."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import dutydesk.runbooks.releases.jobs  # noqa: F401 - registers the advance job
from dutydesk.alarms.models import Silence
from dutydesk.audit.models import AuditEvent
from dutydesk.backups.service import add_target
from dutydesk.db import utcnow
from dutydesk.intake.models import InboxItem, Integration
from dutydesk.notify import service as notify
from dutydesk.notify.models import Delivery
from dutydesk.people.models import Role
from dutydesk.runbooks.releases import _windows, service
from dutydesk.runbooks.releases.broadcasts import active_broadcasts
from dutydesk.runbooks.releases.models import Release
from tests.conftest import clear_caches, make_user


class _Answer(BaseHTTPRequestHandler):
    """Answers GET /status/N with status N."""

    def do_GET(self) -> None:
        status = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/status/") else 404
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on localhost; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Two allowed commands: one that prints and succeeds, one that fails."""
    listed = {
        "deploy": [sys.executable, "-c", "print('image switched')"],
        "broken": [sys.executable, "-c", "import sys; print('no'); sys.exit(3)"],
    }
    monkeypatch.setenv("DUTYDESK_RELEASE_COMMANDS", json.dumps(listed))
    clear_caches()
    return listed


def drive(db: Session, release: Release) -> None:
    """Run the release's automatic steps as the jobs would, until it waits or ends."""
    while service.advance(db, release):
        pass
    db.flush()


def spec(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A template spec named `deploy` with these steps."""
    return {"name": "deploy", "steps": list(steps), **extra}


def states(release: Release) -> list[str]:
    """Each step's state, in order."""
    return [step.state for step in release.steps]


def what(db: Session, release: Release) -> list[str]:
    """The release's timeline lines."""
    return [event.what for event in service.timeline(db, release)]


def test_patch_release_skips_change_control_steps_and_minor_release_does_not(db: Session) -> None:
    author = make_user(db, Role.operator, "olga")
    template = service.save_template(
        db,
        spec(
            {"name": "Change-control form", "kind": "manual", "skip_for_patch": True},
            {"name": "Tag", "kind": "manual"},
        ),
        actor="olga",
    )
    first = service.create_release(db, template, version="1.4.0", author=author, actor="olga")
    assert not first.patch
    first.state = "done"  # the previous release
    hotfix = service.create_release(db, template, version="1.4.1", author=author, actor="olga")
    minor = service.create_release(db, template, version="1.5.0", author=author, actor="olga")

    assert hotfix.patch and hotfix.previous_version == "1.4.0"
    assert states(hotfix) == ["skipped", "pending"]
    assert "PATCH" in hotfix.steps[0].note
    assert not minor.patch
    assert states(minor) == ["pending", "pending"]

    service.start_release(db, hotfix, actor="olga")
    drive(db, hotfix)
    assert states(hotfix) == ["skipped", "waiting"]  # straight to the tag


def test_version_must_be_semantic_and_after_the_previous_release(db: Session) -> None:
    template = service.save_template(db, spec({"name": "Tag", "kind": "manual"}), actor="t")
    with pytest.raises(service.ReleaseError, match="not a semantic version"):
        service.create_release(db, template, version="next", author=None, actor="t")
    with pytest.raises(service.ReleaseError, match="not after the previous release"):
        service.create_release(
            db, template, version="1.0.0", previous_version="1.2.0", author=None, actor="t"
        )


def test_non_manual_step_outside_the_window_is_refused_until_an_approver_overrides(
    db: Session, commands: dict[str, list[str]]
) -> None:
    author = make_user(db, Role.operator, "olga")
    approver = make_user(db, Role.approver, "ann")
    now = utcnow()
    closed_day = (now.weekday() + 3) % 7  # a day that is not today
    _windows.create_window(
        db, name="thursday nights", days=[closed_day], starts="20:00", ends="22:00", actor="t"
    )
    template = service.save_template(
        db,
        spec(
            {"name": "Agree a time", "kind": "manual"},
            {"name": "Switch the image", "kind": "command", "command": "deploy"},
            window="thursday nights",
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="2.0.0", author=author, actor="olga")
    service.start_release(db, release, actor="olga")
    drive(db, release)
    assert states(release) == ["waiting", "pending"]  # a manual step does not mind the window
    service.tick_step(db, release, 1, actor="olga", note="core users agreed")
    drive(db, release)

    assert release.state == "blocked"
    assert states(release) == ["done", "blocked"]
    assert "refused to start outside the release window" in what(db, release)[-1]

    with pytest.raises(service.ReleaseError, match="needs an approver") as refused:
        service.override_window(db, release, 2, author, reason="urgent")
    assert refused.value.status == 403
    with pytest.raises(service.ReleaseError, match="needs a reason"):
        service.override_window(db, release, 2, approver, reason=" ")

    service.override_window(db, release, 2, approver, reason="security fix cannot wait")
    drive(db, release)
    assert release.state == "done"
    assert release.steps[1].output["stdout"].strip() == "image switched"
    assert release.steps[1].override_by == "ann"
    assert any(
        "window overridden for step 2 (Switch the image): security fix cannot wait" in line
        for line in what(db, release)
    )


def test_window_open_reads_days_and_hours_in_its_time_zone(db: Session) -> None:
    window = _windows.create_window(
        db,
        name="evenings",
        days="mon",
        starts="22:00",
        ends="02:00",
        time_zone="Europe/Berlin",
        actor="t",
    )
    monday_late = dt.datetime(2026, 12, 7, 22, 30, tzinfo=dt.UTC)  # 23:30 in Berlin, Monday
    tuesday_early = dt.datetime(2026, 12, 8, 0, 30, tzinfo=dt.UTC)  # 01:30 Tuesday: Monday's
    tuesday_late = dt.datetime(2026, 12, 8, 22, 30, tzinfo=dt.UTC)
    assert _windows.is_open(window, monday_late)
    assert _windows.is_open(window, tuesday_early)
    assert not _windows.is_open(window, tuesday_late)
    with pytest.raises(_windows.WindowError, match="not a time of day"):
        _windows.create_window(db, name="bad", days="mon", starts="25:00", ends="02:00", actor="t")
    with pytest.raises(_windows.WindowError, match="unknown time zone"):
        _windows.create_window(
            db,
            name="bad",
            days="mon",
            starts="01:00",
            ends="02:00",
            time_zone="Mars/Base",
            actor="t",
        )


def test_failing_http_check_stops_the_run_and_rollback_runs_the_rollback_steps(
    db: Session, http_server: str, commands: dict[str, list[str]]
) -> None:
    author = make_user(db, Role.operator, "olga")
    template = service.save_template(
        db,
        spec(
            {"name": "Health check", "kind": "http_check", "url": f"{http_server}/status/503"},
            {"name": "Announce", "kind": "manual"},
            {
                "name": "Switch back the image",
                "kind": "command",
                "command": "deploy",
                "rollback": True,
            },
            {
                "name": "Health check again",
                "kind": "http_check",
                "url": f"{http_server}/status/200",
                "rollback": True,
            },
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="3.1.0", author=author, actor="olga")
    service.start_release(db, release, actor="olga")
    drive(db, release)

    assert release.state == "failed"
    assert states(release) == ["failed", "pending", "pending", "pending"]
    assert release.steps[0].output["status"] == 503
    assert "answered 503, expected 200" in release.steps[0].output["error"]

    service.rollback(db, release, actor="olga", reason="the app answers 503")
    drive(db, release)
    assert release.state == "rolled_back"
    assert states(release) == ["failed", "skipped", "done", "done"]
    assert release.steps[2].output["exit_code"] == 0
    lines = what(db, release)
    assert "rollback started: the app answers 503" in lines
    assert any(line.startswith("step 3 (Switch back the image) done") for line in lines)
    assert lines[-1] == "rolled back"


def test_failed_step_can_be_retried_or_skipped_with_a_reason(
    db: Session, commands: dict[str, list[str]]
) -> None:
    template = service.save_template(
        db,
        spec(
            {"name": "Migrate", "kind": "command", "command": "broken"},
            {"name": "Start", "kind": "command", "command": "deploy"},
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="1.0.0", author=None, actor="olga")
    service.start_release(db, release, actor="olga")
    drive(db, release)
    assert release.state == "failed"
    assert release.steps[0].output["exit_code"] == 3
    service.retry_step(db, release, 1, actor="olga")
    drive(db, release)
    assert release.steps[0].attempts == 2 and release.state == "failed"
    with pytest.raises(service.ReleaseError, match="needs a reason"):
        service.skip_step(db, release, 1, actor="olga", reason="")
    service.skip_step(db, release, 1, actor="olga", reason="no migrations in this release")
    drive(db, release)
    assert release.state == "done"
    assert states(release) == ["skipped", "done"]
    assert "step 1 (Migrate) skipped: no migrations in this release" in what(db, release)
    audited = db.scalars(
        select(AuditEvent).where(AuditEvent.object_type == "release_step_runs")
    ).all()
    assert any(event.diff.get("note") for event in audited if event.diff)


def test_command_not_listed_in_settings_is_refused_with_a_clear_error(
    db: Session, commands: dict[str, list[str]]
) -> None:
    text = """
name: deploy
steps:
  - name: Wipe
    kind: command
    command: rm-everything
"""
    with pytest.raises(service.ReleaseError) as refused:
        service.load_yaml(db, text, actor="t")
    assert "'rm-everything' is not one of the commands an admin listed" in str(refused.value)
    assert "DUTYDESK_RELEASE_COMMANDS (broken, deploy)" in str(refused.value)
    assert service.list_templates(db) == []


def test_yaml_template_loads_and_round_trips_and_unknown_parameters_are_refused(
    db: Session, commands: dict[str, list[str]]
) -> None:
    text = """
name: deploy
pipelines: [build-app]
steps:
  - {name: Change-control form, kind: manual, skip_for_patch: true}
  - {name: Switch the image, kind: command, command: deploy}
  - {name: Acceptance test, kind: signoff, role: approver, count: 2}
"""
    template = service.load_yaml(db, text, actor="t")
    assert [step.kind for step in template.steps] == ["manual", "command", "signoff"]
    assert template.steps[2].params == {"role": "approver", "count": 2}
    assert service.template_spec(template)["steps"][0]["skip_for_patch"] is True
    again = service.save_template(db, service.template_spec(template), actor="t")
    assert again.id == template.id and len(again.steps) == 3
    db.flush()
    audited = db.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type.in_(["release_templates", "release_template_steps"])
        )
    ).all()
    actions = {(event.object_type, event.action) for event in audited}
    assert ("release_templates", "create") in actions
    assert ("release_template_steps", "create") in actions
    assert ("release_template_steps", "delete") in actions  # the replaced steps
    with pytest.raises(service.ReleaseError, match="has no parameter 'colour'"):
        service.load_yaml(
            db, "name: x\nsteps:\n  - {name: a, kind: manual, colour: red}", actor="t"
        )
    with pytest.raises(service.ReleaseError, match=r"uses \{versoin\}"):
        service.save_template(
            db,
            spec(
                {"name": "n", "kind": "notify", "list": "l", "subject": "{versoin}", "message": "m"}
            ),
            actor="t",
        )
    with pytest.raises(service.ReleaseError, match="not valid YAML"):
        service.load_yaml(db, "name: [", actor="t")


def test_signoff_needs_a_second_person_of_the_role(db: Session) -> None:
    author = make_user(db, Role.approver, "olga")
    viewer = make_user(db, Role.viewer, "vic")
    second = make_user(db, Role.approver, "ann")
    template = service.save_template(
        db, spec({"name": "Acceptance test", "kind": "signoff"}), actor="t"
    )
    release = service.create_release(db, template, version="1.0.0", author=author, actor="olga")
    service.start_release(db, release, actor="olga")
    drive(db, release)
    with pytest.raises(service.ReleaseError, match="author cannot sign"):
        service.sign_step(db, release, 1, author)
    with pytest.raises(service.ReleaseError, match="needs the approver role"):
        service.sign_step(db, release, 1, viewer)
    with pytest.raises(service.ReleaseError, match="needs a person"):
        service.sign_step(db, release, 1, None)
    service.sign_step(db, release, 1, second, comment="acceptance test passed")
    drive(db, release)
    assert release.state == "done"
    assert release.steps[0].signers == ["ann"]


def test_notify_broadcast_and_backup_steps(db: Session, tmp_path: Path) -> None:
    author = make_user(db, Role.operator, "olga")
    source = tmp_path / "app.sqlite"
    with sqlite3.connect(source) as app_db:
        app_db.execute("CREATE TABLE t (x INTEGER)")
        app_db.execute("INSERT INTO t VALUES (1)")
    add_target(db, "app-db", f"sqlite:///{source}", destination=str(tmp_path / "backups"))
    notify.create_contact_list(db, name="core-users", members=["users@example.org"])
    template = service.save_template(
        db,
        spec(
            {
                "name": "Notify users",
                "kind": "notify",
                "list": "core-users",
                "subject": "Release {version} tonight",
                "message": "{kind} {version}: {release_url}",
            },
            {
                "name": "Broadcast",
                "kind": "broadcast",
                "action": "start",
                "message": "Release {version} in progress",
            },
            {"name": "Back up the database", "kind": "backup", "target": "app-db"},
            {"name": "Broadcast off", "kind": "broadcast", "action": "end"},
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="1.2.0", author=author, actor="olga")
    service.start_release(db, release, actor="olga")
    service.advance(db, release)  # notify
    service.advance(db, release)  # broadcast on
    assert [b.message for b in active_broadcasts(db)] == ["Release 1.2.0 in progress"]
    drive(db, release)
    assert active_broadcasts(db) == []
    delivery = db.scalars(
        select(Delivery).where(Delivery.address == "mailto:users@example.org")
    ).one()
    assert delivery.title == "Release 1.2.0 tonight"
    assert delivery.body.startswith("release 1.2.0: http")
    assert delivery.body.endswith(f"/releases/{release.id}")
    backup = release.steps[2]
    assert backup.state == "done" and backup.output["backup"] > 0
    assert backup.output["summary"].startswith(
        f"verified backup {backup.output['backup']} of app-db"
    )


def test_backup_step_fails_without_a_verified_backup_of_its_target(db: Session) -> None:
    template = service.save_template(
        db, spec({"name": "Back up", "kind": "backup", "target": "nowhere"}), actor="t"
    )
    release = service.create_release(db, template, version="1.0.0", author=None, actor="t")
    service.start_release(db, release, actor="t")
    drive(db, release)
    assert release.state == "failed"
    assert "no verified backup of 'nowhere'" in release.steps[0].output["error"]


def _pipeline_event(db: Session, integration: Integration, status: str, at: dt.datetime) -> None:
    db.add(
        InboxItem(
            received_at=at,
            source="ci",
            integration_id=integration.id,
            method="POST",
            path="/hooks/ci/x",
            body=json.dumps(
                {"pipeline": "build-app", "status": status, "url": "https://ci.example.org/1"}
            ),
            status_code=202,
            outcome="accepted",
        )
    )
    db.flush()


def test_ci_step_and_failed_pipeline_events_attached_to_a_running_release(db: Session) -> None:
    from dutydesk.intake import service as intake

    integration = intake.create_integration(db, name="jenkins", kind="ci", actor="t").integration
    _pipeline_event(db, integration, "success", utcnow() - dt.timedelta(minutes=5))
    template = service.save_template(
        db,
        spec(
            {"name": "Build passed", "kind": "ci", "pipeline": "build-app"},
            {"name": "Testers run the acceptance test", "kind": "manual"},
            pipelines=["build-app"],
            silence={"service": "app"},
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="1.0.0", author=None, actor="t")
    service.start_release(db, release, actor="t")
    silence = db.get(Silence, release.silence_id)
    assert silence is not None and silence.matchers == {"service": "app"}
    drive(db, release)
    assert states(release) == ["done", "waiting"]

    _pipeline_event(db, integration, "failed", utcnow())
    assert service.attach_failed_pipelines(db, release) == 1
    assert service.attach_failed_pipelines(db, release) == 0
    assert release.attached_events[0]["status"] == "failed"
    assert any(
        "pipeline build-app failed while the release ran" in line for line in what(db, release)
    )

    service.tick_step(db, release, 2, actor="t")
    drive(db, release)
    assert release.state == "done"
    assert silence.ends_at <= utcnow()


def test_ci_step_fails_when_the_last_pipeline_event_is_a_failure(db: Session) -> None:
    from dutydesk.intake import service as intake

    integration = intake.create_integration(db, name="jenkins", kind="ci", actor="t").integration
    _pipeline_event(db, integration, "failed", utcnow())
    template = service.save_template(
        db, spec({"name": "Build passed", "kind": "ci", "pipeline": "build-app"}), actor="t"
    )
    release = service.create_release(db, template, version="1.0.0", author=None, actor="t")
    service.start_release(db, release, actor="t")
    drive(db, release)
    assert release.state == "failed"
    assert "is 'failed', not a success" in release.steps[0].output["error"]


def _approved_db_change(db: Session, author_name: str) -> Any:
    import dutydesk.runbooks.dbchange.service  # noqa: F401 - registers the db_change kind
    from dutydesk.people.service import find_user
    from dutydesk.runbooks import open_change, sign_off, submit_change

    author = find_user(db, author_name)
    approver = make_user(db, Role.approver, "ann")
    assert author is not None
    change = open_change(
        db,
        kind="db_change",
        title="Add the consent column",
        payload={"script": "ALTER TABLE t ADD COLUMN consent TEXT"},
        evidence={"dry_run": "ok"},
        author=author,
    )
    submit_change(db, change, author)
    sign_off(
        db, change, approver, data_version=change.data_version, evidence_hash=change.evidence_hash
    )
    return change


def test_db_change_step_applies_an_approved_change_request_and_waits_for_it(
    db: Session,
) -> None:
    from dutydesk.runbooks import ChangeState

    author = make_user(db, Role.operator, "olga")
    change = _approved_db_change(db, "olga")
    assert change.state == ChangeState.approved
    template = service.save_template(
        db, spec({"name": "Run migrations", "kind": "db_change", "change_id": change.id}), actor="t"
    )
    release = service.create_release(db, template, version="1.1.0", author=author, actor="olga")
    service.start_release(db, release, actor="olga")
    drive(db, release)
    step = release.steps[0]
    assert step.state == "running" and step.output["change"] == change.id
    assert change.job_id == step.output["job"]
    assert service.waits_on_a_change(release)
    drive(db, release)
    assert step.state == "running"  # the change's job has not run yet

    change.state, change.result = ChangeState.done.value, {"rows": 3}
    drive(db, release)
    assert step.state == "done" and step.output["result"] == {"rows": 3}
    assert release.state == "done"


def test_db_change_step_fails_on_a_change_request_not_approved(db: Session) -> None:
    import dutydesk.runbooks.dbchange.service  # noqa: F401 - registers the db_change kind
    from dutydesk.runbooks import open_change

    author = make_user(db, Role.operator, "olga")
    draft = open_change(
        db, kind="db_change", title="Drop it", payload={}, evidence={}, author=author
    )
    template = service.save_template(
        db, spec({"name": "Run migrations", "kind": "db_change"}), actor="t"
    )
    release = service.create_release(
        db,
        template,
        version="1.1.0",
        author=author,
        actor="olga",
        inputs={"db_change_id": draft.id},
    )
    service.start_release(db, release, actor="olga")
    drive(db, release)
    assert release.state == "failed"
    assert "it runs only once approved" in release.steps[0].output["error"]


def test_advance_job_runs_commands_and_checks_outside_a_transaction_and_chains_the_next(
    db: Session, http_server: str, commands: dict[str, list[str]]
) -> None:
    from dutydesk.jobs.models import Job
    from dutydesk.runbooks.releases.jobs import advance_release

    template = service.save_template(
        db,
        spec(
            {"name": "Switch the image", "kind": "command", "command": "deploy"},
            {"name": "Health check", "kind": "http_check", "url": f"{http_server}/status/500"},
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="1.0.0", author=None, actor="t")
    service.start_release(db, release, actor="t")
    first = advance_release(db, {"release_id": release.id})
    assert first == {"release": release.id, "state": "running", "more": True}
    assert release.steps[0].state == "done"
    assert release.steps[0].output["stdout"] == "image switched\n"
    queued = db.scalars(select(Job).where(Job.kind == "releases.advance")).all()
    assert len(queued) == 2  # the start's, and the one chained for the next step
    second = advance_release(db, {"release_id": release.id})
    assert second["state"] == "failed" and not second["more"]
    assert release.steps[1].output["status"] == 500
    # A job run again (a worker that died) finds nothing to do twice.
    assert advance_release(db, {"release_id": release.id})["more"] is False
    assert release.steps[0].attempts == 1


def test_a_command_step_left_running_by_a_stopped_worker_can_be_skipped(
    db: Session, commands: dict[str, list[str]]
) -> None:
    template = service.save_template(
        db,
        spec(
            {"name": "Switch the image", "kind": "command", "command": "deploy"},
            {"name": "Tell users", "kind": "manual"},
        ),
        actor="t",
    )
    release = service.create_release(db, template, version="1.0.0", author=None, actor="t")
    service.start_release(db, release, actor="t")
    began = service.begin_step(db, release)
    assert not isinstance(began, bool) and began.state == "running"  # and the worker died
    assert service.advance(db, release) is False  # nobody runs it a second time
    service.skip_step(db, release, 1, actor="olga", reason="switched by hand after a crash")
    drive(db, release)
    assert [step.state for step in release.steps] == ["skipped", "waiting"]
