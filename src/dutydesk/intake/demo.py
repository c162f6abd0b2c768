"""Demo intake: a few integrations of each kind, a week of inbox history whose alarms landed on
tickets (including a malformed request and a refused token, as real life has), and a log source
scanning the worker log the demo writes under `$DUTYDESK_HOME/logs`."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.intake import service
from dutydesk.intake._heartbeat import handle_ping
from dutydesk.intake._parse import Rejected
from dutydesk.intake._receive import Handler, Inbound
from dutydesk.intake.hooks import _alertmanager, _github, _one_alert, _plain_ci
from dutydesk.intake.log_sources import create_log_source
from dutydesk.intake.mail import receive_message
from dutydesk.intake.models import Integration, Outcome
from dutydesk.settings import get_settings

SEED = 5
DAYS = 7
INTEGRATIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("prometheus", "alertmanager", {"close_on_resolve": True}),
    ("apps", "generic", {"group_by": ["labels.service", "title"]}),
    ("alerts", "email", {}),
    ("exporter-ci", "github", {"signing_secret": "demo-signing-secret", "close_on_resolve": True}),
    ("jenkins", "ci", {}),
    ("nightly-backup", "heartbeat", {"close_on_resolve": True}),
)
LOG_SOURCE = "export-worker"
LOG_HOURS = 24


def _deliver(
    session: Session,
    integration: Integration,
    handler: Handler,
    body: bytes,
    at: dt.datetime,
    headers: dict[str, str] | None = None,
    action: str = "",
) -> None:
    """What the endpoint does with one request, at a moment in the past."""
    path = service.hook_path(integration.kind, f"{integration.token_prefix}…") or ""
    item = service.record(
        session,
        source=integration.kind,
        method="POST",
        path=f"{path}/{action}" if action else path,
        client="10.0.4.17",
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
        integration=integration,
        at=at,
    )
    session.flush()
    inbound = Inbound(body, headers or {}, "POST", "10.0.4.17", action=action)
    try:
        reply = handler(session, integration, inbound)
    except Rejected as error:
        service.settle(item, Outcome.rejected, status_code=error.status, reason=error.reason)
        return
    service.settle(
        item,
        Outcome.accepted,
        status_code=reply.status,
        alarm_ids=reply.alarm_ids,
        ticket_ids=reply.ticket_ids,
    )


def _am_body(instance: str, status: str, at: dt.datetime) -> bytes:
    alert = {
        "status": status,
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"Disk usage above 90% on {instance}"},
        "startsAt": at.isoformat(),
        "endsAt": at.isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": hashlib.sha256(instance.encode()).hexdigest()[:16],
    }
    group = {"version": "4", "groupKey": '{}:{alertname="DiskFull"}', "status": status}
    return json.dumps({**group, "receiver": "desk", "alerts": [alert]}).encode()


def _worker_log(now: dt.datetime, rng: random.Random) -> str:
    """The export worker's log of the last day, in the Java layout, a few warnings in it."""
    lines = []
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=LOG_HOURS)
    for hour in range(LOG_HOURS):
        at = start + dt.timedelta(hours=hour, minutes=rng.randrange(0, 50))
        if rng.random() < 0.3:
            lines.append(
                f"{at:%Y-%m-%d %H:%M:%S},000 WARN [export-1] org.sagebionetworks.export.Worker - "
                f"Retrying upload of part {rng.randrange(1, 40)} after a timeout"
            )
        lines.append(
            f"{at:%Y-%m-%d %H:%M:%S},000 INFO [export-1] org.sagebionetworks.export.Worker - "
            f"Exported {rng.randrange(80, 160)} records in {rng.randrange(20, 90)} seconds"
        )
    return "\n".join(lines) + "\n"


def _seed_log_source(session: Session, now: dt.datetime, rng: random.Random) -> None:
    """Write the worker's log under the home's `logs` (the Logs page's root) and scan it."""
    folder = get_settings().home_path / "logs" / LOG_SOURCE
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / "worker.log"
    if not log_file.exists():
        log_file.write_text(_worker_log(now, rng))
    glob = str(folder / "*.log*")
    create_log_source(session, name=LOG_SOURCE, glob=glob, actor="demo", fmt="java")


@registry.demo_seeder("intake")
def seed_intake(session: Session, context: registry.DemoContext) -> None:
    """Integrations and a week of inbox history, once (nothing when integrations exist)."""
    if session.scalar(select(Integration.id).limit(1)) is not None:
        return
    made = {
        name: service.create_integration(session, name=name, kind=kind, actor="demo", **options)
        for name, kind, options in INTEGRATIONS
    }
    rng = random.Random(SEED)
    now = utcnow()
    count = 0
    for day in range(DAYS, 0, -1):
        base = now - dt.timedelta(days=day)
        at = base + dt.timedelta(hours=rng.uniform(0, 6))
        instance = rng.choice(["db-1", "db-2"])
        prometheus = made["prometheus"].integration
        _deliver(session, prometheus, _alertmanager, _am_body(instance, "firing", at), at)
        later = at + dt.timedelta(hours=rng.uniform(1, 5))
        _deliver(session, prometheus, _alertmanager, _am_body(instance, "resolved", later), later)
        service_name = rng.choice(["bridge-worker", "api"])
        alert = {
            "title": f"Queue backlog above 10k on {service_name}",
            "severity": "high",
            "labels": {"service": service_name},
            "starts_at": at.isoformat(),
        }
        _deliver(session, made["apps"].integration, _one_alert, json.dumps(alert).encode(), at)
        ping_at = base + dt.timedelta(hours=2)
        backup = made["nightly-backup"].integration
        _deliver(session, backup, handle_ping, b"", ping_at, action="start")
        status = "1" if day == 3 else "0"
        output = b"pg_dump: error: connection refused" if status == "1" else b"backup done"
        _deliver(session, backup, handle_ping, output, ping_at, action=status)
        count += 6
    run = {
        "action": "completed",
        "workflow_run": {
            "name": "tests",
            "head_branch": "main",
            "conclusion": "failure",
            "html_url": "https://github.example/acme/exporter/actions/runs/812",
        },
        "repository": {"full_name": "acme/exporter"},
    }
    body = json.dumps(run).encode()
    secret = b"demo-signing-secret"
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": signature, "x-github-event": "workflow_run"}
    ci = made["exporter-ci"].integration
    _deliver(session, ci, _github, body, now - dt.timedelta(hours=20), headers)
    jenkins = {
        "pipeline": "nightly-export",
        "stage": "deploy",
        "status": "failed",
        "branch": "main",
        "url": "https://jenkins.example/job/nightly-export/812/",
    }
    _deliver(
        session,
        made["jenkins"].integration,
        _plain_ci,
        json.dumps(jenkins).encode(),
        now - dt.timedelta(hours=5),
    )
    broken = b'{"title": "Disk full", "labels": {host: "db-1"}}'
    _deliver(session, made["apps"].integration, _one_alert, broken, now - dt.timedelta(hours=3))
    mail = (
        b"From: cron@db-1.example\r\nTo: alerts@desk.example\r\n"
        b"Subject: Backup verify failed at 04:12 (job 4711)\r\n\r\n"
        b"checksum mismatch on chunk 17\r\n"
    )
    receive_message(
        session,
        mail,
        source="smtp",
        peer="10.0.4.2",
        mail_from="cron@db-1.example",
        recipients=["alerts@desk.example"],
        limit=1_048_576,
    )
    unknown = service.record(
        session,
        source="generic",
        method="POST",
        path="/hooks/generic/Zx81q…",
        client="203.0.113.9",
        headers={},
        body=b'{"title": "test"}',
        at=now - dt.timedelta(hours=1),
    )
    service.settle(
        unknown, Outcome.rejected, status_code=401, reason="unknown or disabled integration token"
    )
    _seed_log_source(session, now, rng)
    context.note(
        f"{len(made)} integrations, {count + 5} inbox items with their alarms, "
        f"and the log source {LOG_SOURCE}"
    )
