"""Escalation policies and the escalations they start: a ticket's policy is frozen when its
escalation starts, each step notifies its target and waits, acknowledgement stops it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.notify import service
from dutydesk.notify.models import Escalation, EscalationPolicy, EscalationState
from dutydesk.notify.service import NotifyError
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Severity, Status, Ticket
from dutydesk.web.words import plural

TARGETS = ("rotation", "user", "list", "channel")


def _check_steps(session: Session, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from dutydesk.duty.service import DutyError, find_user, get_rotation

    if not steps:
        raise NotifyError("a policy needs at least one step")
    clean = []
    for number, step in enumerate(steps, start=1):
        target, name = str(step.get("target", "")), str(step.get("name", "")).strip()
        if target not in TARGETS:
            raise NotifyError(f"step {number}: target must be one of {', '.join(TARGETS)}")
        try:
            wait = int(step.get("wait_minutes", 0))
        except (TypeError, ValueError) as error:
            raise NotifyError(f"step {number}: wait_minutes must be a number") from error
        if wait < 0:
            raise NotifyError(f"step {number}: wait_minutes cannot be negative")
        try:
            if target == "rotation":
                get_rotation(session, name)
            elif target == "user":
                find_user(session, name)
        except DutyError as error:
            raise NotifyError(f"step {number}: {error}") from error
        if target == "list":
            service.get_contact_list(session, name)
        elif target == "channel":
            service.get_channel(session, name)
        clean.append({"target": target, "name": name, "wait_minutes": wait})
    return clean


def create_policy(
    session: Session,
    *,
    name: str,
    steps: list[dict[str, Any]],
    repeat: int = 1,
    sources: list[str] | None = None,
    severities: list[str] | None = None,
    position: int = 100,
) -> EscalationPolicy:
    """A new escalation policy; every step's target must exist."""
    name = name.strip()
    if not name or session.scalar(select(EscalationPolicy.id).where(EscalationPolicy.name == name)):
        raise NotifyError(f"a policy needs a new name; {name!r} is empty or taken")
    if repeat < 1:
        raise NotifyError("repeat must be at least 1")
    levels = severities or [Severity.critical.value]
    for level in levels:
        if level not in Severity.__members__:
            raise NotifyError(f"unknown severity {level!r}")
    policy = EscalationPolicy(
        name=name,
        steps=_check_steps(session, steps),
        repeat=repeat,
        sources=sources or [],
        severities=levels,
        position=position,
    )
    session.add(policy)
    session.flush()
    return policy


def update_policy(
    session: Session,
    policy: EscalationPolicy,
    *,
    steps: list[dict[str, Any]],
    repeat: int | None = None,
) -> EscalationPolicy:
    """Change a policy's steps; running escalations keep the copy they started with."""
    policy.steps = _check_steps(session, steps)
    if repeat is not None:
        policy.repeat = repeat
    session.flush()
    return policy


def policy_for(session: Session, ticket: Ticket) -> EscalationPolicy | None:
    """The first policy (by position) whose rules match the ticket's source and severity."""
    for policy in session.scalars(
        select(EscalationPolicy).order_by(EscalationPolicy.position, EscalationPolicy.id)
    ):
        if ticket.severity in policy.severities and (
            not policy.sources or ticket.source in policy.sources
        ):
            return policy
    return None


def start_escalations(
    session: Session, *, now: dt.datetime | None = None, ticket_ids: Sequence[int] | None = None
) -> int:
    """Start an escalation for every open ticket (of `ticket_ids`, when given) a policy covers
    that has none yet."""
    now = now or utcnow()
    started = 0
    query = select(Ticket).where(
        Ticket.status == Status.open.value, ~Ticket.id.in_(select(Escalation.ticket_id))
    )
    if ticket_ids is not None:
        query = query.where(Ticket.id.in_(ticket_ids))
    tickets = session.scalars(query).all()
    settings = get_settings()
    for ticket in tickets:
        policy = policy_for(session, ticket)
        if policy is None:
            continue
        frozen = {"name": policy.name, "steps": list(policy.steps), "repeat": policy.repeat}
        try:
            with session.begin_nested():
                session.add(
                    Escalation(
                        ticket_id=ticket.id,
                        policy_name=policy.name,
                        policy=frozen,
                        next_at=now + dt.timedelta(seconds=settings.notify_group_wait_seconds),
                        started_at=now,
                        occurrences_told=ticket.occurrences,
                    )
                )
            started += 1
        except IntegrityError:
            continue  # another worker started it first
    return started


def _reason(cycle: int, step: int, count: int) -> str:
    if cycle == 1 and step == 0:
        return "first notification"
    if step == 0:
        return "repeat interval elapsed"
    return f"escalation step {step + 1} of {count}"


def _notify_target(
    session: Session,
    ticket: Ticket,
    step: dict[str, Any],
    *,
    reason: str,
    sequence: str,
    now: dt.datetime,
) -> str:
    from dutydesk.duty.service import find_user, get_rotation, who_is_on_duty

    title = f"[{ticket.key}] {ticket.title}"
    body = (
        f"{ticket.severity} ticket {ticket.key} from {ticket.source}: {ticket.title}\n"
        f"{ticket.description}\nReason: {reason}"
    )
    common: dict[str, Any] = {
        "subject": ticket.key,
        "reason": reason,
        "title": title,
        "body": body,
        "ticket": ticket,
        "sequence": sequence,
        "critical": ticket.severity == Severity.critical.value,
        "now": now,
    }
    target, name = step["target"], step["name"]
    if target in ("rotation", "user"):
        user = (
            who_is_on_duty(get_rotation(session, name), now)
            if target == "rotation"
            else find_user(session, name)
        )
        if user is None:
            return f"rotation {name} has nobody on duty"
        service.notify_user(session, user, **common)
        return f"{user.username} (on duty for {name})" if target == "rotation" else user.username
    if target == "list":
        service.notify_list(
            session,
            service.get_contact_list(session, name),
            subject_line=title,
            message=body,
            subject=ticket.key,
            reason=reason,
            ticket=ticket,
            sequence=sequence,
            now=now,
        )
        return f"list {name}"
    service.notify_channel(session, service.get_channel(session, name), **common)
    return f"channel {name}"


def advance_escalations(
    session: Session, *, now: dt.datetime | None = None, ticket_ids: Sequence[int] | None = None
) -> int:
    """Run every escalation step that is due (of `ticket_ids`' escalations, when given); stop
    escalations of acknowledged tickets.

    A step that waits 0 minutes leads straight to the next one, in the same call: the steps
    of a policy without waits all run at once, not one per beat tick.
    """
    now = now or utcnow()
    ran = 0
    query = select(Escalation).where(
        Escalation.state.in_([EscalationState.running.value, EscalationState.done.value]),
        Escalation.next_at <= now,
    )
    if ticket_ids is not None:
        query = query.where(Escalation.ticket_id.in_(ticket_ids))
    due = session.scalars(query.with_for_update(skip_locked=True)).all()
    for escalation in due:
        ticket = session.get(Ticket, escalation.ticket_id)
        if ticket is None or ticket.status != Status.open.value:
            escalation.state = EscalationState.stopped.value
            escalation.end_reason = ticket.status if ticket else "deleted"
            escalation.ended_at = now
            escalation.next_at = None
            continue
        # Every step of every cycle at most once, then the reminder: a bound, not a loop
        # that a policy of zero waits could keep going.
        for _step in range(len(escalation.policy["steps"]) * escalation.policy["repeat"] + 1):
            _run_step(session, escalation, ticket, now)
            ran += 1
            if escalation.state != EscalationState.running.value or (
                escalation.next_at is None or escalation.next_at > now
            ):
                break
    return ran


def _run_step(session: Session, escalation: Escalation, ticket: Ticket, now: dt.datetime) -> None:
    """Notify the escalation's current step's target and move on to the next step."""
    from dutydesk.tickets.service import record_notification

    steps = escalation.policy["steps"]
    repeat_every = dt.timedelta(minutes=get_settings().notify_repeat_interval_minutes)
    if escalation.state == EscalationState.done.value:
        # Every step ran and nobody acknowledged: remind the last target each interval.
        step, reason = steps[-1], "repeat interval elapsed"
        escalation.cycle += 1
        sequence = f"r{escalation.cycle}"
    else:
        step = steps[escalation.step]
        reason = _reason(escalation.cycle, escalation.step, len(steps))
        sequence = f"c{escalation.cycle}s{escalation.step + 1}"
    recipient = _notify_target(session, ticket, step, reason=reason, sequence=sequence, now=now)
    if reason == "first notification":  # it tells of every occurrence so far
        escalation.occurrences_told = ticket.occurrences
        escalation.occurrences_told_at = now
    record_notification(
        session,
        ticket,
        channel="escalation",
        recipient=recipient,
        reason=f"{escalation.policy_name}: {reason}",
        actor="escalation",
    )
    if escalation.state == EscalationState.done.value:
        escalation.next_at = now + repeat_every
        return
    escalation.next_at = now + dt.timedelta(minutes=step["wait_minutes"])
    if escalation.step + 1 < len(steps):
        escalation.step += 1
    elif escalation.cycle < escalation.policy["repeat"]:
        escalation.step, escalation.cycle = 0, escalation.cycle + 1
    else:
        escalation.state = EscalationState.done.value
        escalation.end_reason = "all steps ran"
        escalation.ended_at = now
        escalation.next_at = now + repeat_every if repeat_every else None


def stop_acknowledged(session: Session, *, now: dt.datetime | None = None) -> int:
    """Stop escalations (and reminders) whose ticket was acknowledged or closed."""
    now = now or utcnow()
    stopped = 0
    for escalation, status in session.execute(
        select(Escalation, Ticket.status)
        .join(Ticket, Ticket.id == Escalation.ticket_id)
        .where(
            Escalation.state.in_([EscalationState.running.value, EscalationState.done.value]),
            Escalation.next_at.is_not(None),
            Ticket.status != Status.open.value,
        )
    ).all():
        escalation.state = EscalationState.stopped.value
        escalation.end_reason = status
        escalation.ended_at = now
        escalation.next_at = None
        stopped += 1
    return stopped


def send_resolved(session: Session, *, now: dt.datetime | None = None) -> int:
    """Tell everyone who got a notice about a ticket that has since closed that it is resolved."""
    now = now or utcnow()
    told = 0
    closed = session.execute(
        select(Escalation, Ticket)
        .join(Ticket, Ticket.id == Escalation.ticket_id)
        .where(
            Ticket.status == Status.closed.value,
            or_(Escalation.end_reason.is_(None), Escalation.end_reason != "resolved sent"),
        )
    ).all()
    for escalation, ticket in closed:
        told += _notify_notified(
            session,
            ticket,
            reason="resolved",
            sequence="resolved",
            title=f"[{ticket.key}] resolved: {ticket.title}",
            body=ticket.resolution or "",
            now=now,
        )
        escalation.state = EscalationState.stopped.value
        escalation.end_reason = "resolved sent"
        escalation.ended_at = escalation.ended_at or now
        escalation.next_at = None
    return told


def _notify_notified(
    session: Session,
    ticket: Ticket,
    *,
    reason: str,
    sequence: str,
    title: str,
    body: str,
    now: dt.datetime,
) -> int:
    """Send `reason` to every target that already got a notice about the ticket."""
    from dutydesk.notify.models import Delivery, DeliveryState

    sent = session.execute(
        select(Delivery.target, Delivery.channel, Delivery.kind, Delivery.address)
        .where(Delivery.ticket_id == ticket.id, Delivery.state == DeliveryState.sent.value)
        .distinct()
    ).all()
    told = 0
    for target, channel, kind, address in sent:
        made = service.add_delivery(
            session,
            ticket_id=ticket.id,
            subject=ticket.key,
            target=target,
            channel=channel,
            kind=kind,
            address=address,
            reason=reason,
            sequence=sequence,
            title=title,
            body=body,
            next_attempt_at=now,
        )
        told += made is not None
    return told


def send_silence_ended(session: Session, *, now: dt.datetime | None = None) -> int:
    """Tell whoever heard about a ticket that a silence covering it ended (the alarms side
    notes silence starts and ends on the ticket's timeline; this turns an end into notices)."""
    from dutydesk.tickets.models import EventKind, TicketEvent

    now = now or utcnow()
    told = 0
    events = session.scalars(
        select(TicketEvent).where(
            TicketEvent.kind == EventKind.notified.value,
            TicketEvent.at >= now - dt.timedelta(days=1),
        )
    ).all()
    for event in events:
        detail = event.detail or {}
        if detail.get("channel") != "silence" or " ended" not in str(detail.get("reason", "")):
            continue
        ticket = session.get(Ticket, event.ticket_id)
        if ticket is None or ticket.status == Status.closed.value:
            continue
        told += _notify_notified(
            session,
            ticket,
            reason="silence ended",
            sequence=f"event{event.id}",
            title=f"[{ticket.key}] silence ended: {ticket.title}",
            body=str(detail.get("reason", "")),
            now=now,
        )
    return told


def send_new_occurrences(session: Session, *, now: dt.datetime | None = None) -> int:
    """Tell whoever heard about an open ticket that it occurred again since, at most once per
    group interval (`DUTYDESK_NOTIFY_GROUP_INTERVAL_MINUTES`)."""
    now = now or utcnow()
    interval = dt.timedelta(minutes=get_settings().notify_group_interval_minutes)
    told = 0
    rows = session.execute(
        select(Escalation, Ticket)
        .join(Ticket, Ticket.id == Escalation.ticket_id)
        .where(
            Ticket.status != Status.closed.value,
            Ticket.occurrences > Escalation.occurrences_told,
            Escalation.state != EscalationState.stopped.value,
        )
    ).all()
    for escalation, ticket in rows:
        last = escalation.occurrences_told_at or escalation.started_at
        if now - last < interval:
            continue
        new = ticket.occurrences - escalation.occurrences_told
        told += _notify_notified(
            session,
            ticket,
            reason="new occurrences",
            sequence=f"occurrences{ticket.occurrences}",
            title=f"[{ticket.key}] {new} more: {ticket.title}",
            body=f"{ticket.key} occurred {plural(new, 'more time')} ({ticket.occurrences} in all), "
            f"last at {ticket.last_seen_at:%Y-%m-%d %H:%M} UTC.",
            now=now,
        )
        escalation.occurrences_told = ticket.occurrences
        escalation.occurrences_told_at = now
    return told


def run_escalations(session: Session, *, now: dt.datetime | None = None) -> int:
    """Start, stop and advance escalations: the escalation part of one beat tick."""
    now = now or utcnow()
    start_escalations(session, now=now)
    stop_acknowledged(session, now=now)
    send_resolved(session, now=now)
    send_silence_ended(session, now=now)
    send_new_occurrences(session, now=now)
    return advance_escalations(session, now=now)


def escalate_opened(
    session: Session,
    ticket_ids: Sequence[int],
    *,
    opened_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Start the escalations of tickets opened at `opened_at` (as if started then, so the group
    wait counts from the opening) and run their steps due by `now`; the number of steps run."""
    now = now or utcnow()
    start_escalations(session, now=min(opened_at or now, now), ticket_ids=ticket_ids)
    return advance_escalations(session, now=now, ticket_ids=ticket_ids)
