"""Healthchecks-compatible pings: `/ping/{uuid}` plus `/start`, `/fail`, `/log`, `/{exit}`,
and the state of each check (new, up, late, down) as Healthchecks keeps it.

Each ping is stored with its body as run output (its first `ping_body_limit()` bytes, noted
as cut when it was longer: a body over the inbox limit still counts; undecodable
bytes and NUL as U+FFFD; the inbox keeps the request as it came). A success (plain ping or
exit 0) makes the check up and resolves its alarm; `fail` and a nonzero exit status make it
down and fire the alarm at once; `start` and `log` only record. A check that is up is late
once its deadline (last success plus period, or the first cron run time after it) passes,
and down, firing the alarm, when the grace after it passes too (`sweep`, the beat's work).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dutydesk.alarms._cron import parse_cron
from dutydesk.alarms.service import Signal
from dutydesk.clock import parse_time_zone
from dutydesk.db import utcnow
from dutydesk.intake._parse import Rejected
from dutydesk.intake._payload import storable, storable_bytes
from dutydesk.intake._receive import Inbound, Reply, land
from dutydesk.intake.models import Integration, Ping, PingCheck
from dutydesk.settings import get_settings

# Bytes of a ping's body kept as its run output (as Healthchecks: 100 kB); a longer body
# still counts, cut to its start with a note.
MAX_RUN_OUTPUT = 100_000
ACTIONS = ("", "start", "fail", "log")


def ping_body_limit() -> int:
    """What every ping answer's `Ping-Body-Limit` header says: the bytes of a body kept
    (runitor sends at most the tail of this many bytes of output)."""
    return min(MAX_RUN_OUTPUT, get_settings().inbox_max_bytes)


@dataclass(frozen=True)
class State:
    """A check's state at a moment: new, up, late or down, and its next deadline (when it
    becomes late if up, down if late; None if new or down)."""

    status: str
    deadline: dt.datetime | None


def grace_start(check: PingCheck) -> dt.datetime | None:
    """When the check becomes late: its last success plus the period, or with a schedule the
    first cron run time after the last success (None if it never succeeded)."""
    last = check.last_success_at
    if last is None:
        return None
    last = last.replace(tzinfo=dt.UTC) if last.tzinfo is None else last
    if check.schedule:
        return parse_cron(check.schedule).next_after(last, parse_time_zone(check.tz))
    return last + dt.timedelta(seconds=check.period_seconds)


def state_of(check: PingCheck, now: dt.datetime) -> State:
    """The check's state at `now` (late is not stored: it is up past its deadline)."""
    if check.status != "up":
        return State(check.status, None)
    late_at = grace_start(check)
    if late_at is None:
        return State("up", None)
    down_at = late_at + dt.timedelta(seconds=check.grace_seconds)
    if now >= down_at:
        return State("down", None)
    if now >= late_at:
        return State("late", down_at)
    return State("up", late_at)


def ping_kind(action: str) -> tuple[str, int | None]:
    """(kind, exit status) of a ping path's last part; Rejected (400) if it means nothing."""
    if action in ACTIONS:
        return (action or "success"), None
    if action.isdigit() and int(action) <= 255:
        status = int(action)
        return ("success" if status == 0 else "fail"), status
    raise Rejected(400, f"unknown ping {action!r}; use start, fail, log or an exit status 0-255")


def _signal(
    integration: Integration, now: dt.datetime, *, resolved: bool, why: str, missed: bool = False
) -> Signal:
    return Signal(
        source=integration.name,
        integration_id=integration.id,
        fingerprint=f"{integration.name}:heartbeat",
        title=f"Heartbeat {'missed' if missed else 'failed'}: {integration.name}",
        severity=integration.default_severity,
        description=why,
        labels={"check": integration.name},
        resolved=resolved,
        occurred_at=now,
        close_on_resolve=integration.close_on_resolve,
    )


def handle_ping(
    session: Session, integration: Integration, inbound: Inbound, now: dt.datetime | None = None
) -> Reply:
    """Store the ping, update the check's state, and fire or resolve the check's alarm."""
    kind, exit_status = ping_kind(inbound.action)
    check = integration.check
    if check is None:
        check = integration.check = PingCheck()
        session.flush()
    now = now or utcnow()
    body = inbound.body[: ping_body_limit()]
    seen = max(inbound.size, len(inbound.body))
    cut_from = seen if seen > len(body) else None
    session.add(
        Ping(
            check_id=check.id,
            at=now,
            kind=kind if exit_status is None else "exit",
            exit_status=exit_status,
            run_id=(inbound.query.get("rid") or None) and storable(inbound.query["rid"][:64]),
            body=storable_bytes(body),
            body_cut_from=cut_from,
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
    if cut_from is not None:
        reply.note = f"ping body of {cut_from} bytes cut to its first {len(body)}"
    if kind in ("success", "fail"):
        check.status = "up" if kind == "success" else "down"
        output = storable_bytes(inbound.body[:2000])
        detail = f"exit status {exit_status}" if exit_status is not None else "a fail ping"
        signal = _signal(
            integration,
            now,
            resolved=kind == "success",
            why=f"The job reported {detail}.\n\n{output}".strip(),
        )
        landed = land(session, [signal])
        reply.alarm_ids, reply.ticket_ids = landed.alarm_ids, landed.ticket_ids
    return reply


def sweep(session: Session, now: dt.datetime | None = None) -> list[str]:
    """Make every enabled check that is up and past its deadline plus grace down, and fire
    its alarm; returns the names of the checks it made down.

    Each check goes down by a conditional update (still up, still the same last success), so
    two workers sweeping at once fire its alarm once.
    """
    now = now or utcnow()
    went_down = []
    checks = session.scalars(
        select(PingCheck)
        .join(Integration)
        .where(PingCheck.status == "up", Integration.enabled.is_(True))
    )
    for check in list(checks):
        state = state_of(check, now)
        if state.status != "down":
            continue
        taken = session.execute(
            update(PingCheck)
            .where(
                PingCheck.id == check.id,
                PingCheck.status == "up",
                PingCheck.last_success_at == check.last_success_at,
            )
            .values(status="down")
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            continue
        session.expire(check, ["status"])
        integration = check.integration
        expected = grace_start(check)
        last = check.last_success_at
        why = (
            f"no success ping since {last:%Y-%m-%d %H:%M} UTC; one was expected by "
            f"{expected:%Y-%m-%d %H:%M} UTC, and the grace of {check.grace_seconds} s has passed"
            if last is not None and expected is not None
            else "no success ping by the deadline"
        )
        land(session, [_signal(integration, now, resolved=False, why=storable(why), missed=True)])
        went_down.append(integration.name)
    return went_down
