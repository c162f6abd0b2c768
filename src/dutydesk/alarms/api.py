"""Alarms API: rules (CRUD, test, evaluations), alarms with their numbers, silences, and the
log error groups rules count over."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy.orm import Session

from dutydesk.alarms import rules, silences
from dutydesk.alarms.evaluate import decide, evaluations_of_alarm, evaluations_of_rule
from dutydesk.alarms.models import Alarm, AlarmRule, Silence
from dutydesk.alarms.schemas import (
    AlarmOut,
    DecisionOut,
    EvaluationOut,
    RuleIn,
    RuleOut,
    RulePatch,
    SilenceIn,
    SilenceOut,
)
from dutydesk.alarms.service import list_alarms
from dutydesk.db import utcnow
from dutydesk.intake import logs
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Db, Operator, Viewer
from dutydesk.web.openapi import answers
from dutydesk.web.params import Moment, RowId

router = APIRouter()


def get_rule_or_404(db: Session, ident: str) -> AlarmRule:
    """The rule by id or name; 404 otherwise."""
    try:
        return rules.get_rule(db, ident)
    except rules.RuleNotFound as error:
        raise HTTPException(404, str(error)) from None


def try_rule(db: Session, rule: AlarmRule, at: dt.datetime | None) -> list[DecisionOut]:
    """The rule's decisions at `at` with the silences in force, nothing stored or fired."""
    at = at or utcnow()
    in_force = silences.active(db, at)
    shown = []
    for decision in decide(db, rule, at):
        labels = silences.rule_labels(rule, {"instance": decision.instance, **decision.labels})
        covered = silences.covering(in_force, rule, labels) is not None
        shown.append(
            DecisionOut(
                instance=decision.instance,
                firing=decision.firing,
                silenced=covered and decision.firing,
                summary=decision.summary,
                numbers=decision.numbers,
            )
        )
    return shown


@router.get("/api/v1/rules")
def list_rules(_who: Viewer, db: Db) -> list[RuleOut]:
    """Every alarm rule."""
    return [RuleOut.of(rule) for rule in rules.list_rules(db)]


@router.post("/api/v1/rules", status_code=201)
def create_rule(who: Operator, db: Db, body: RuleIn) -> RuleOut:
    """Make a rule; 422 names a setting that is wrong."""
    try:
        rule = rules.create_rule(db, actor=caller_name(who), **body.model_dump())
    except rules.RuleError as error:
        raise HTTPException(422, str(error)) from None
    return RuleOut.of(rule)


@router.get("/api/v1/rules/{ident}")
def get_rule(_who: Viewer, db: Db, ident: str) -> RuleOut:
    """One rule by id or name."""
    return RuleOut.of(get_rule_or_404(db, ident))


@router.patch("/api/v1/rules/{ident}")
def update_rule(_who: Operator, db: Db, ident: str, body: RulePatch) -> RuleOut:
    """Change a rule's settings, severity, description, labels, integration or enabled flag."""
    rule = get_rule_or_404(db, ident)
    try:
        rules.update_rule(db, rule, body.model_dump(exclude_none=True))
    except rules.RuleError as error:
        raise HTTPException(422, str(error)) from None
    return RuleOut.of(rule)


@router.delete("/api/v1/rules/{ident}")
def delete_rule(_who: Operator, db: Db, ident: str) -> RuleOut:
    """Remove a rule (its alarms stay)."""
    rule = get_rule_or_404(db, ident)
    shown = RuleOut.of(rule)
    rules.delete_rule(db, rule)
    return shown


@router.get("/api/v1/rules/{ident}/test")
def test_rule_api(_who: Viewer, db: Db, ident: str, at: Moment | None = None) -> list[DecisionOut]:
    """What the rule decides at `at` (default now) and the numbers why, without firing."""
    return try_rule(db, get_rule_or_404(db, ident), at)


@router.get("/api/v1/rules/{ident}/evaluations")
def rule_evaluations(
    _who: Viewer, db: Db, ident: str, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[EvaluationOut]:
    """The rule's latest stored evaluations, newest first."""
    rule = get_rule_or_404(db, ident)
    return [EvaluationOut.model_validate(e) for e in evaluations_of_rule(db, rule.id, limit=limit)]


@router.get("/api/v1/alarms")
def alarms(
    _who: Viewer,
    db: Db,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlarmOut]:
    """Alarms, most recently fired first."""
    return [AlarmOut.of(alarm) for alarm in list_alarms(db, state=state, limit=limit)]


@router.get("/api/v1/alarms/{alarm_id}")
def alarm(_who: Viewer, db: Db, alarm_id: RowId) -> AlarmOut:
    """One alarm with the evaluations (and their numbers) that decided about it."""
    found = db.get(Alarm, alarm_id) if 0 < alarm_id < 2**62 else None
    if found is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    return AlarmOut.of(found, evaluations_of_alarm(db, found.id))


@router.get("/api/v1/silences")
def list_silences(_who: Viewer, db: Db) -> list[SilenceOut]:
    """Silences and maintenance windows, latest start first."""
    return [SilenceOut.model_validate(s) for s in silences.list_silences(db)]


@router.post("/api/v1/silences", status_code=201, responses=answers(404))
def create_silence(who: Operator, db: Db, body: SilenceIn) -> SilenceOut:
    """Silence alarms matching labels (and/or one rule) for a while; or plan maintenance."""
    rule = get_rule_or_404(db, body.rule) if body.rule else None
    try:
        silence = silences.create_silence(
            db,
            kind=body.kind,
            matchers=body.matchers,
            rule=rule,
            starts_at=body.starts_at or utcnow(),
            ends_at=body.ends_at,
            reason=body.reason,
            actor=caller_name(who),
        )
    except silences.SilenceError as error:
        raise HTTPException(422, str(error)) from None
    return SilenceOut.model_validate(silence)


@router.post("/api/v1/silences/{silence_id}/end")
def end_silence(_who: Operator, db: Db, silence_id: RowId) -> SilenceOut:
    """End a silence now."""
    silence = db.get(Silence, silence_id) if 0 < silence_id < 2**62 else None
    if silence is None:
        raise HTTPException(404, f"no silence {silence_id}")
    silences.end_silence(db, silence)
    return SilenceOut.model_validate(silence)


@router.get("/api/v1/log-groups")
def log_groups(
    _who: Viewer,
    db: Db,
    source: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Warning and error groups of the log sources, most recently seen first."""
    return [
        {
            "id": g.id,
            "source": g.source,
            "level": g.level,
            "template": g.template,
            "count": g.count,
            "first_seen": g.first_seen,
            "last_seen": g.last_seen,
            "last_sample": g.last_sample,
        }
        for g in logs.error_groups(db, source=source, limit=limit)
    ]
