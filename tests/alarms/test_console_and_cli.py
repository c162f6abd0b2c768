"""Rules through the API and console (audited), the alarm page's numbers, `dutydesk alarms
test`, the scheduled evaluation job, and an HTTP probe against a real local server."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from dutydesk.alarms import rules
from dutydesk.alarms.evaluate import decide
from dutydesk.alarms.jobs import evaluate_due_rules
from dutydesk.alarms.models import Alarm, AlarmRule
from dutydesk.audit.models import AuditEvent
from dutydesk.cli import app
from dutydesk.db import transaction, utcnow
from dutydesk.intake import logs
from dutydesk.people import service as people
from tests.conftest import make_user, sign_in


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def error_text(count: int, start: dt.datetime) -> str:
    return "".join(
        f"{start + dt.timedelta(seconds=n):%Y-%m-%d %H:%M:%S},000 ERROR [main] org.x.App - "
        f"Timeout after {n} ms\n"
        for n in range(count)
    )


def test_api_rule_crud_is_audited_and_checked(client: TestClient, db: Session) -> None:
    secret = people.create_token(db, "ops", ["write"]).secret
    db.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    made = client.post(
        "/api/v1/rules",
        json={"name": "api-errors", "kind": "log_threshold", "params": {"threshold": 3}},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    assert made.json()["params"]["window_minutes"] == 60
    bad = client.post(
        "/api/v1/rules",
        json={"name": "bad", "kind": "metric_shift", "params": {"series": "x", "direction": "up"}},
        headers=headers,
    )
    assert bad.status_code == 422 and "direction" in bad.json()["detail"]
    changed = client.patch(
        "/api/v1/rules/api-errors",
        json={"enabled": False, "params": {"threshold": 5}},
        headers=headers,
    )
    assert changed.json()["enabled"] is False and changed.json()["params"]["threshold"] == 5
    assert client.delete("/api/v1/rules/api-errors", headers=headers).status_code == 200
    db.expire_all()
    actions = list(
        db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.object_type == "alarm_rules")
            .order_by(AuditEvent.id)
        )
    )
    assert actions == ["create", "update", "delete"]


def test_alarm_page_shows_the_numbers_behind_a_fired_rule(
    client: TestClient, db: Session, factory: object
) -> None:
    now = utcnow()
    rules.seed_default_rules(db, "test")
    logs.ingest(
        db, "bridge", error_text(12, now - dt.timedelta(minutes=10)), "java", now, strict=False
    )
    db.commit()
    result = evaluate_due_rules(db, {})
    db.commit()
    assert result["fired"] >= 1
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "rule:errors-per-hour:bridge"))
    assert alarm is not None
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/alarms/{alarm.id}")
    assert page.status_code == 200
    assert "Timeout after &lt;num&gt; ms" in page.text
    assert "&#34;threshold&#34;: 10" in page.text or '"threshold": 10' in page.text
    api = client.get(f"/api/v1/alarms/{alarm.id}").json()
    assert api["evaluations"][0]["numbers"]["count"] == 12
    assert client.get("/alarms").status_code == 200
    assert "Timeout after" in client.get("/alarms/log-groups").text
    rule_page = client.get("/alarms/rules/errors-per-hour")
    assert rule_page.status_code == 200
    assert "ERROR/FATAL lines from bridge: 12 in the last hour, over the threshold of 10." in (
        rule_page.text
    )


def test_operator_makes_a_rule_and_a_silence_in_the_console(
    client: TestClient, db: Session
) -> None:
    csrf = sign_in(client, db, make_user(db, "operator"))
    made = client.post(
        "/alarms/rules",
        data={
            "csrf_token": csrf,
            "name": "quiet-ci",
            "kind": "log_threshold",
            "severity": "high",
            "params": '{"threshold": 2}',
        },
    )
    assert made.status_code == 303
    wrong = client.post(
        "/alarms/rules",
        data={"csrf_token": csrf, "name": "x", "kind": "log_threshold", "params": "{oops"},
    )
    assert "not JSON" in wrong.text
    silenced = client.post(
        "/alarms/silences",
        data={"csrf_token": csrf, "matchers": "rule=quiet-ci", "hours": "2", "reason": "deploy"},
    )
    assert silenced.status_code == 303
    too_long = client.post(
        "/alarms/silences",
        data={"csrf_token": csrf, "matchers": "rule=quiet-ci", "hours": "500", "reason": "x"},
    )
    assert "at most 168 hours" in too_long.text
    tested = client.post("/alarms/rules/quiet-ci/test", data={"csrf_token": csrf, "at": ""})
    assert tested.status_code == 200


def test_alarms_test_prints_the_decision_and_numbers_without_firing() -> None:
    assert dutydesk("db", "upgrade").exit_code == 0
    at = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    with transaction(immediate=True) as session:
        rules.seed_default_rules(session, "test")
        logs.ingest(
            session,
            "bridge",
            error_text(12, at - dt.timedelta(minutes=30)),
            "java",
            at,
            strict=False,
        )
    result = dutydesk("alarms", "test", "errors-per-hour", "--at", "2026-11-24T12:00")
    assert result.exit_code == 0, result.output
    assert "errors-per-hour [bridge]: FIRING" in result.stdout
    assert '"count": 12' in result.stdout and '"threshold": 10' in result.stdout
    quiet = dutydesk("alarms", "test", "errors-per-hour", "--at", "2026-11-24T15:00")
    assert "FIRING" not in quiet.stdout
    with transaction() as session:
        assert session.scalar(select(Alarm)) is None
        rule = session.scalar(select(AlarmRule).where(AlarmRule.name == "errors-per-hour"))
        assert rule is not None and rule.last_evaluated_at is None
    missing = dutydesk("alarms", "test", "nope")
    assert missing.exit_code == 2 and "no rule 'nope'" in missing.stderr
    listed = dutydesk("alarms", "list")
    assert "errors-per-hour\tlog_threshold\thigh\tenabled" in listed.stdout


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/ok" else 503
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def web_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_probe_fires_on_a_bad_status_or_a_slow_answer(db: Session, web_server: str) -> None:
    good = rules.create_rule(
        db, name="up", kind="http_probe", actor="t", params={"url": f"{web_server}/ok"}
    )
    (decision,) = decide(db, good)
    assert not decision.firing and decision.numbers["status"] == 200
    broken = rules.create_rule(
        db, name="down", kind="http_probe", actor="t", params={"url": f"{web_server}/x"}
    )
    (decision,) = decide(db, broken)
    assert decision.firing and " instead of 200, in " in decision.summary
    slow = rules.create_rule(
        db,
        name="slow",
        kind="http_probe",
        actor="t",
        params={"url": f"{web_server}/ok", "latency_ms": 1},
    )
    rules.update_rule(db, slow, {"params": {"latency_ms": 1}})
    gone = rules.create_rule(
        db, name="gone", kind="http_probe", actor="t", params={"url": "http://127.0.0.1:9/"}
    )
    (decision,) = decide(db, gone)
    assert decision.firing and "error" in decision.numbers


def test_beat_tick_enqueues_evaluation_once_rules_exist(
    db: Session, factory: sessionmaker[Session]
) -> None:
    from dutydesk.jobs import service as jobs
    from dutydesk.jobs.models import Job

    jobs.tick(factory)
    assert "alarms.evaluate" not in set(db.scalars(select(Job.kind)))
    rules.seed_default_rules(db, "test")
    db.commit()
    jobs.tick(factory)
    assert "alarms.evaluate" in set(db.scalars(select(Job.kind)))
