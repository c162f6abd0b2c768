"""Silences and maintenance windows: mute matching rule alarms for a while, with notices.

A silenced firing decision is stored (marked silenced) but raises nothing; when the silence
ends, the next evaluation finds the rule not yet firing and raises it at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms._ticket import labels_of, land_on_ticket
from dutydesk.alarms.models import Alarm, AlarmRule, AlarmState, Silence, SilenceKind
from dutydesk.db import session_memo, utcnow
from dutydesk.settings import get_settings
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket

log = logging.getLogger(__name__)


class SilenceError(ValueError):
    """A silence that cannot be made; the message says why."""


def create_silence(
    session: Session,
    *,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    reason: str,
    actor: str,
    matchers: dict[str, Any] | None = None,
    rule: AlarmRule | None = None,
    kind: str = SilenceKind.silence.value,
) -> Silence:
    """Make a silence (or maintenance window) no longer than DUTYDESK_SILENCE_MAX_HOURS."""
    if kind not in {k.value for k in SilenceKind}:
        raise SilenceError("kind is silence or maintenance")
    if ends_at <= starts_at:
        raise SilenceError("a silence must end after it starts")
    limit = get_settings().silence_max_hours
    if ends_at - starts_at > dt.timedelta(hours=limit):
        raise SilenceError(f"a silence may last at most {limit} hours (DUTYDESK_SILENCE_MAX_HOURS)")
    if not reason.strip():
        raise SilenceError("a silence needs a reason")
    if kind == SilenceKind.silence.value and not matchers and rule is None:
        raise SilenceError("a silence needs label matchers or a rule (maintenance may have none)")
    silence = Silence(
        kind=kind,
        matchers={str(k): str(v) for k, v in (matchers or {}).items()},
        rule_id=rule.id if rule else None,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason.strip(),
        created_by=actor,
    )
    session.add(silence)
    session.flush()
    return silence


def end_silence(session: Session, silence: Silence, at: dt.datetime | None = None) -> None:
    """End a silence now (its end notice follows at the next evaluation)."""
    silence.ends_at = min(silence.ends_at, at or utcnow())
    session.flush()


def rule_labels(rule: AlarmRule, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The labels silences match a rule's alarm by."""
    return {
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        **{str(k): str(v) for k, v in rule.labels.items()},
        **(extra or {}),
    }


def alarm_labels(alarm: Alarm) -> dict[str, str]:
    """`labels_of` an alarm."""
    return labels_of(alarm.labels, alarm.source, alarm.severity)


def silencing(session: Session, alarm: Alarm, at: dt.datetime) -> Silence | None:
    """The silence (without a rule) covering an alarm from intake at `at`, if any."""
    return covering_intake(session, alarm_labels(alarm), at)


# How far around a moment the silences are read once for a batch of intake writes.
_NEAR = dt.timedelta(hours=1)


def _near(session: Session, at: dt.datetime) -> tuple[dt.datetime, dt.datetime, list[Silence]]:
    """The silences in force at some time within `_NEAR` of `at`, with that span."""
    start, end = at - _NEAR, at + _NEAR
    found = session.scalars(
        select(Silence).where(Silence.starts_at < end, Silence.ends_at > start).order_by(Silence.id)
    )
    return start, end, list(found)


def covering_intake(session: Session, labels: dict[str, str], at: dt.datetime) -> Silence | None:
    """The silence (without a rule) covering an alarm from intake with `labels` at `at`."""
    start, end, near = session_memo(session, "silences near", lambda: _near(session, at))
    in_force = near if start <= at < end else active(session, at)
    for silence in in_force:
        if (
            silence.rule_id is None
            and silence.starts_at <= at < silence.ends_at
            and all(labels.get(name) == value for name, value in silence.matchers.items())
        ):
            return silence
    return None


def matches(silence: Silence, rule: AlarmRule, labels: dict[str, str]) -> bool:
    """Whether the silence covers this rule's alarm with these labels."""
    if silence.rule_id is not None and silence.rule_id != rule.id:
        return False
    return all(labels.get(name) == value for name, value in silence.matchers.items())


def active(session: Session, at: dt.datetime) -> list[Silence]:
    """Silences and windows in force at `at`."""
    return list(
        session.scalars(
            select(Silence)
            .where(Silence.starts_at <= at, Silence.ends_at > at)
            .order_by(Silence.id)
        )
    )


def covering(silences: list[Silence], rule: AlarmRule, labels: dict[str, str]) -> Silence | None:
    """The first of `silences` that covers the alarm, if any."""
    return next((s for s in silences if matches(s, rule, labels)), None)


def list_silences(session: Session, *, limit: int = 100) -> list[Silence]:
    """Silences, latest start first."""
    return list(session.scalars(select(Silence).order_by(Silence.starts_at.desc()).limit(limit)))


def _firing_alarms(session: Session, silence: Silence) -> list[tuple[AlarmRule, Alarm]]:
    found = []
    for rule in session.scalars(select(AlarmRule)):
        for instance in rule.firing:
            alarm = session.scalar(
                select(Alarm).where(
                    Alarm.fingerprint == fingerprint(rule, str(instance)),
                    Alarm.state == AlarmState.firing.value,
                )
            )
            # The alarm's labels are the ones its evaluation raised it with.
            labels = {str(k): str(v) for k, v in (alarm.labels if alarm else {}).items()}
            if alarm is not None and matches(silence, rule, labels):
                found.append((rule, alarm))
    return found


def fingerprint(rule: AlarmRule, instance: str) -> str:
    """The alarm fingerprint of one instance of a rule."""
    return f"rule:{rule.name}" + (f":{instance}" if instance else "")


def _notice(session: Session, silence: Silence, what: str) -> int:
    reason = f"{silence.kind} #{silence.id} {what}: {silence.reason} (by {silence.created_by})"
    noted = 0
    for _rule, alarm in _firing_alarms(session, silence):
        ticket = session.get(Ticket, alarm.ticket_id) if alarm.ticket_id else None
        if ticket is not None:
            tickets.record_notification(
                session, ticket, channel="silence", recipient="desk", reason=reason, actor="alarms"
            )
            noted += 1
    log.info("%s (noted on %d tickets)", reason, noted)
    return noted


def send_notices(session: Session, at: dt.datetime) -> dict[str, int]:
    """Note silences that started or ended since the last call on the tickets they cover."""
    started = ended = 0
    for silence in session.scalars(
        select(Silence).where(Silence.starts_at <= at, Silence.start_noticed.is_(False))
    ):
        _notice(session, silence, "started")
        silence.start_noticed = True
        started += 1
    for silence in session.scalars(
        select(Silence).where(Silence.ends_at <= at, Silence.end_noticed.is_(False))
    ):
        _notice(session, silence, "ended")
        _tell_muted(session, silence, at)
        silence.end_noticed = True
        ended += 1
    return {"started": started, "ended": ended}


def _tell_muted(session: Session, silence: Silence, at: dt.datetime) -> int:
    """Alarms from intake that fired under the silence and still fire: tell their tickets now.
    (Rule alarms are raised by their next evaluation.)"""
    if silence.rule_id is not None:
        return 0
    told = 0
    for alarm in session.scalars(
        select(Alarm).where(
            Alarm.state == AlarmState.firing.value,
            Alarm.last_fired_at >= silence.starts_at,
            Alarm.last_fired_at < silence.ends_at,
            ~Alarm.fingerprint.startswith("rule:"),
        )
    ):
        labels = alarm_labels(alarm)
        if not all(labels.get(k) == v for k, v in silence.matchers.items()):
            continue
        if silencing(session, alarm, at) is None:
            land_on_ticket(session, alarm, at)
            told += 1
    return told
