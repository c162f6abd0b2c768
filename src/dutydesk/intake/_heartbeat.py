"""Healthchecks-compatible pings: `/ping/{uuid}` plus `/start`, `/fail`, `/log`, `/{exit}`.

Each ping is stored with its body as run output (undecodable bytes and NUL as U+FFFD; the
inbox keeps the request as it came). `fail` and a nonzero exit status fire the
check's alarm; a success (plain ping or exit 0) resolves it; `start` and `log` only record.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from dutydesk.alarms.service import Signal
from dutydesk.db import utcnow
from dutydesk.intake._parse import Rejected
from dutydesk.intake._payload import storable, storable_bytes
from dutydesk.intake._receive import Inbound, Reply, land
from dutydesk.intake.models import Integration, Ping, PingCheck

MAX_RUN_OUTPUT = 100_000
ACTIONS = ("", "start", "fail", "log")


def ping_kind(action: str) -> tuple[str, int | None]:
    """(kind, exit status) of a ping path's last part; Rejected (400) if it means nothing."""
    if action in ACTIONS:
        return (action or "success"), None
    if action.isdigit() and int(action) <= 255:
        status = int(action)
        return ("success" if status == 0 else "fail"), status
    raise Rejected(400, f"unknown ping {action!r}; use start, fail, log or an exit status 0-255")


def handle_ping(session: Session, integration: Integration, inbound: Inbound) -> Reply:
    """Store the ping, update the check, and fire or resolve the check's alarm."""
    kind, exit_status = ping_kind(inbound.action)
    check = integration.check
    if check is None:
        check = integration.check = PingCheck()
        session.flush()
    now = utcnow()
    session.add(
        Ping(
            check_id=check.id,
            at=now,
            kind=kind if exit_status is None else "exit",
            exit_status=exit_status,
            run_id=(inbound.query.get("rid") or None) and storable(inbound.query["rid"][:64]),
            body=storable_bytes(inbound.body[:MAX_RUN_OUTPUT]),
            client=inbound.client,
        )
    )
    check.last_ping_at = now
    check.last_ping_kind = kind
    if kind == "start":
        check.last_start_at = now
    if kind == "success":
        check.last_success_at = now
    reply = Reply(200, "OK", text=True)
    if kind in ("success", "fail"):
        output = storable_bytes(inbound.body[:2000])
        detail = f"exit status {exit_status}" if exit_status is not None else "a fail ping"
        signal = Signal(
            source=integration.name,
            integration_id=integration.id,
            fingerprint=f"{integration.name}:heartbeat",
            title=f"Heartbeat failed: {integration.name}",
            severity=integration.default_severity,
            description=f"The job reported {detail}.\n\n{output}".strip(),
            labels={"check": integration.name},
            resolved=kind == "success",
            occurred_at=now,
            close_on_resolve=integration.close_on_resolve,
        )
        landed = land(session, [signal])
        reply.alarm_ids, reply.ticket_ids = landed.alarm_ids, landed.ticket_ids
    return reply
