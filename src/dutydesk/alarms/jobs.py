"""Alarms' background work: every DUTYDESK_RULE_EVAL_SECONDS the beat tick enqueues one
evaluation job, which sends silence notices and evaluates the rules that are due."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms import silences
from dutydesk.alarms.evaluate import due_rules, evaluate_rule
from dutydesk.alarms.models import AlarmRule
from dutydesk.db import utcnow, write_phase
from dutydesk.jobs import service as jobs
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)


@registry.due("alarms.evaluate")
def enqueue_evaluation(session: Session) -> None:
    """While any rule is enabled: enqueue an evaluation at least once a minute (each rule is
    evaluated every DUTYDESK_RULE_EVAL_SECONDS, a probe by its own interval)."""
    every = dt.timedelta(seconds=min(get_settings().rule_eval_seconds, 60))
    anything = session.scalar(select(AlarmRule.id).where(AlarmRule.enabled.is_(True)).limit(1))
    if anything is not None and jobs.is_due(session, "alarms.evaluate", every):
        jobs.enqueue(session, "alarms.evaluate")


@registry.job_kind("alarms.evaluate")
def evaluate_due_rules(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Send silence notices, then evaluate each due rule (a failing rule does not stop the
    others; its error is logged and it is tried again next time)."""
    # It reads, then writes: with SQLite, hold the write lock from here, or a write by another
    # process in between leaves every rule's write refused as "database is locked".
    write_phase(session)
    now = utcnow()
    counts = silences.send_notices(session, now)
    every = dt.timedelta(seconds=get_settings().rule_eval_seconds)
    evaluated = fired = failed = 0
    for rule in due_rules(session, now, every):
        try:
            with session.begin_nested():
                outcomes = evaluate_rule(session, rule, now)
        except Exception:
            log.exception("evaluating rule %s failed", rule.name)
            failed += 1
            continue
        evaluated += 1
        fired += sum(o.action == "fired" for o in outcomes)
    return {**counts, "evaluated": evaluated, "fired": fired, "failed": failed}


@registry.job_kind("alarms.replay")
def replay_rules(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Replay the enabled metric rules over the last `days` of metric points."""
    from dutydesk.alarms.evaluate import replay
    from dutydesk.alarms.rules import list_rules

    now = utcnow()
    since = now - dt.timedelta(days=int(args.get("days", 31)))
    kinds = args.get("kinds") or ["metric_shift"]
    fired = 0
    for rule in list_rules(session, enabled_only=True):
        if rule.kind in kinds and rule.kind == "metric_shift":
            for _at, outcomes in replay(session, rule, since, now):
                fired += sum(o.action == "fired" for o in outcomes)
    return {"fired": fired}
