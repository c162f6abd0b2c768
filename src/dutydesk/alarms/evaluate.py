"""Rule evaluation: decide, store the numbers, and fire or resolve the rule's alarms.

Every evaluation is stored (`RuleEvaluation`) with the numbers behind its decision; a firing
decision not covered by a silence raises the alarm through `raise_signal` (and so reaches
tickets through `open_or_update_ticket`); an instance that stops firing resolves its alarm.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms import silences
from dutydesk.alarms._kinds import EVALUATORS, Decision
from dutydesk.alarms.models import AlarmRule, RuleEvaluation
from dutydesk.alarms.sentences import explain
from dutydesk.alarms.service import Signal, raise_signal
from dutydesk.db import utcnow
from dutydesk.intake.models import Integration

MAX_SHOWN_NUMBERS = 4_000


@dataclass
class Outcome:
    """One instance's decision and what the evaluation did about it."""

    decision: Decision
    silenced: bool = False
    action: str = "none"  # fired, resolved, silenced, none
    alarm_id: int | None = None


def decide(session: Session, rule: AlarmRule, at: dt.datetime | None = None) -> list[Decision]:
    """The rule's decisions at `at` (default now), without storing or firing anything."""
    return EVALUATORS[rule.kind](session, rule, at or utcnow())


def _signal(
    rule: AlarmRule,
    decision: Decision,
    source: str,
    at: dt.datetime,
    resolved: bool,
    close: bool = False,
) -> Signal:
    numbers = json.dumps(decision.numbers, indent=1, default=str)[:MAX_SHOWN_NUMBERS]
    return Signal(
        source=source,
        fingerprint=silences.fingerprint(rule, decision.instance),
        title=decision.summary,
        severity=rule.severity,
        description="\n\n".join(
            part
            for part in (
                decision.summary,
                f"Rule {rule.name}: {explain(rule)}",
                rule.description,
                f"The numbers behind it:\n{numbers}",
            )
            if part
        ),
        labels=silences.rule_labels(rule, {"instance": decision.instance, **decision.labels}),
        annotations={"rule_id": rule.id, "numbers": decision.numbers},
        resolved=resolved,
        occurred_at=at,
        integration_id=rule.integration_id,
        close_on_resolve=close,
        check_silences=False,
    )


def evaluate_rule(
    session: Session, rule: AlarmRule, at: dt.datetime | None = None
) -> list[Outcome]:
    """Decide, store each decision with its numbers, and fire or resolve the rule's alarms."""
    at = at or utcnow()
    decisions = decide(session, rule, at)
    source, close = "rules", False
    if rule.integration_id is not None:
        integration = session.get(Integration, rule.integration_id)
        if integration is not None:
            source, close = integration.name, integration.close_on_resolve
    in_force = silences.active(session, at)
    firing = {str(i) for i in rule.firing}
    outcomes = []
    for decision in decisions:
        labels = silences.rule_labels(rule, {"instance": decision.instance, **decision.labels})
        covered = silences.covering(in_force, rule, labels) if decision.firing else None
        outcome = Outcome(decision, silenced=covered is not None)
        if decision.firing and covered is None and decision.instance not in firing:
            landed = raise_signal(session, _signal(rule, decision, source, at, resolved=False))
            firing.add(decision.instance)
            outcome.action, outcome.alarm_id = "fired", landed.alarm.id
        elif decision.firing and covered is not None:
            outcome.action = "silenced"
        elif not decision.firing and decision.instance in firing:
            landed = raise_signal(
                session, _signal(rule, decision, source, at, resolved=True, close=close)
            )
            firing.discard(decision.instance)
            outcome.action, outcome.alarm_id = "resolved", landed.alarm.id
        elif decision.firing:
            outcome.action = "still firing"
        session.add(
            RuleEvaluation(
                rule_id=rule.id,
                at=at,
                instance=decision.instance[:300],
                firing=decision.firing,
                silenced=outcome.silenced,
                summary=decision.summary,
                numbers=json.loads(json.dumps(decision.numbers, default=str)),
                alarm_id=outcome.alarm_id or _alarm_id(session, rule, decision.instance),
            )
        )
        outcomes.append(outcome)
    rule.firing = sorted(firing)
    rule.last_evaluated_at = at
    session.flush()
    return outcomes


def _alarm_id(session: Session, rule: AlarmRule, instance: str) -> int | None:
    from dutydesk.alarms.models import Alarm

    return session.scalar(
        select(Alarm.id).where(Alarm.fingerprint == silences.fingerprint(rule, instance))
    )


def evaluations_of_alarm(
    session: Session, alarm_id: int, *, limit: int = 20
) -> list[RuleEvaluation]:
    """The latest evaluations that decided about an alarm, newest first."""
    return list(
        session.scalars(
            select(RuleEvaluation)
            .where(RuleEvaluation.alarm_id == alarm_id)
            .order_by(RuleEvaluation.at.desc(), RuleEvaluation.id.desc())
            .limit(limit)
        )
    )


def evaluations_of_rule(session: Session, rule_id: int, *, limit: int = 50) -> list[RuleEvaluation]:
    """The rule's latest evaluations, newest first."""
    return list(
        session.scalars(
            select(RuleEvaluation)
            .where(RuleEvaluation.rule_id == rule_id)
            .order_by(RuleEvaluation.at.desc(), RuleEvaluation.id.desc())
            .limit(limit)
        )
    )


def due_rules(session: Session, at: dt.datetime, every: dt.timedelta) -> list[AlarmRule]:
    """Enabled rules whose interval (a probe's own, `every` for others) has passed."""
    due = []
    for rule in session.scalars(select(AlarmRule).where(AlarmRule.enabled.is_(True))):
        interval = every
        if rule.kind == "http_probe":
            interval = dt.timedelta(seconds=int(rule.params["interval_seconds"]))
        if rule.last_evaluated_at is None or at - rule.last_evaluated_at >= interval:
            due.append(rule)
    return due


def replay(
    session: Session, rule: AlarmRule, since: dt.datetime, until: dt.datetime
) -> list[tuple[dt.datetime, list[Outcome]]]:
    """Evaluate a metric rule at each time its series have a point in [since, until], in
    order: the history's shifts fire (and resolve) as they would have then."""
    from dutydesk.alarms._kinds import series_pattern
    from dutydesk.metrics.models import MetricPoint

    pattern = series_pattern(str(rule.params.get("series", "")))
    names = [n for n in session.scalars(select(MetricPoint.series).distinct()) if pattern.match(n)]
    if not names:
        return []
    times = sorted(
        set(
            session.scalars(
                select(MetricPoint.at).where(
                    MetricPoint.series.in_(names), MetricPoint.at >= since, MetricPoint.at <= until
                )
            )
        )
    )
    return [(at, evaluate_rule(session, rule, at)) for at in times]
