"""What log deadline rules remember from incoming lines: the last line matching their regex
(and the duration it reports, from a `seconds` group), kept in the rule's state."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import AlarmRule, RuleKind

DURATIONS_KEPT = 50


def log_deadline_rules(session: Session, source: str) -> list[AlarmRule]:
    """The enabled deadline rules waiting for a log line of `source`."""
    return [
        rule
        for rule in session.scalars(
            select(AlarmRule).where(
                AlarmRule.kind == RuleKind.deadline.value, AlarmRule.enabled.is_(True)
            )
        )
        if rule.params.get("event") == "log" and rule.params.get("source") in (None, "", source)
    ]


def note_log_lines(session: Session, source: str, messages: list[tuple[dt.datetime, str]]) -> int:
    """Record matches of enabled log deadline rules for `source` among `messages`."""
    if not messages:
        return 0
    rules = log_deadline_rules(session, source)
    noted = 0
    for rule in rules:
        pattern = re.compile(rule.params["regex"])
        state = dict(rule.state)
        last = (
            dt.datetime.fromisoformat(state["last_event_at"])
            if state.get("last_event_at")
            else None
        )
        durations = list(state.get("durations", []))
        for at, message in messages:
            match = pattern.search(message)
            if match is None:
                continue
            noted += 1
            if last is None or at > last:
                last = at
                seconds = match.groupdict().get("seconds")
                if seconds is not None:
                    durations.append(float(seconds))
        if last is not None:
            state["last_event_at"] = last.isoformat()
            state["durations"] = durations[-DURATIONS_KEPT:]
            rule.state = state
    return noted
