"""The alarms console: alarms with the numbers behind them, rules (make, change, enable,
disable, delete, test), silences and maintenance windows, and the log error groups."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.alarms import rules, sentences, silences
from dutydesk.alarms.api import get_rule_or_404, try_rule
from dutydesk.alarms.evaluate import evaluations_of_alarm, evaluations_of_rule
from dutydesk.alarms.models import Alarm, RuleKind, Silence, SilenceKind
from dutydesk.alarms.service import list_alarms
from dutydesk.db import utcnow
from dutydesk.intake import logs
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Db, OperatorPage, ViewerPage
from dutydesk.web.params import RowId
from dutydesk.web.templating import render, templates
from dutydesk.web.words import as_typed_in_zone

router = APIRouter()
registry.add_nav(registry.NavItem("Alarms", "/alarms", order=57))
# What a rule checks, as a sentence from its settings (the rules list and a rule's page).
templates.env.globals["explain_rule"] = sentences.explain


def _alarms_page(request: Request, db: Db, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "alarms/alarms.html",
        {
            "alarms": list_alarms(db, limit=100),
            "rules": rules.list_rules(db),
            "silences": silences.list_silences(db, limit=30),
            "now": utcnow(),
            "kinds": [kind.value for kind in RuleKind],
            "silence_kinds": [kind.value for kind in SilenceKind],
            **extra,
        },
    )


@router.get("/alarms", response_class=HTMLResponse)
def alarms_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Alarms, rules and silences on one page."""
    return _alarms_page(request, db)


@router.get("/alarms/log-groups", response_class=HTMLResponse)
def log_groups_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Warning and error groups of the log sources, and the hour's counts per level."""
    now = utcnow()
    counts = {
        source: logs.level_counts(db, source, now - dt.timedelta(hours=1), now)
        for source in logs.sources(db)
    }
    return render(
        request,
        "alarms/log_groups.html",
        {"groups": logs.error_groups(db, limit=200), "counts": counts},
    )


@router.get("/alarms/{alarm_id}", response_class=HTMLResponse)
def alarm_page(request: Request, _who: ViewerPage, db: Db, alarm_id: RowId) -> HTMLResponse:
    """One alarm and the evaluations (with their numbers) that decided about it."""
    alarm = db.get(Alarm, alarm_id) if 0 < alarm_id < 2**62 else None
    if alarm is None:
        raise HTTPException(404, f"no alarm {alarm_id}")
    evaluations = evaluations_of_alarm(db, alarm.id)
    return render(
        request,
        "alarms/alarm.html",
        {"alarm": alarm, "evaluations": evaluations, "pretty": _pretty},
    )


def _pretty(numbers: dict[str, Any]) -> str:
    return json.dumps(numbers, indent=2, default=str)


@router.get("/alarms/rules/{ident}", response_class=HTMLResponse)
def rule_page(request: Request, _who: ViewerPage, db: Db, ident: str) -> HTMLResponse:
    """A rule, its settings, a test decision now, and its latest evaluations."""
    rule = get_rule_or_404(db, ident)
    return render(
        request,
        "alarms/rule.html",
        {
            "rule": rule,
            "params": _pretty(rule.params),
            "evaluations": evaluations_of_rule(db, rule.id, limit=30),
            "pretty": _pretty,
        },
    )


def _json_field(value: object, name: str) -> dict[str, Any]:
    text = str(value or "").strip() or "{}"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise rules.RuleError(f"{name} is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise rules.RuleError(f"{name} must be a JSON object")
    return parsed


@router.post("/alarms/rules", response_class=HTMLResponse)
async def create_rule_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """Make a rule from the form (settings as a JSON object)."""
    form = await request.form()
    try:
        rule = rules.create_rule(
            db,
            name=str(form.get("name") or ""),
            kind=str(form.get("kind") or ""),
            severity=str(form.get("severity") or "warning"),
            description=str(form.get("description") or ""),
            integration=str(form.get("integration") or "") or None,
            params=_json_field(form.get("params"), "settings"),
            actor=caller_name(who),
        )
    except rules.RuleError as error:
        return _alarms_page(request, db, error=str(error))
    return RedirectResponse(f"/alarms/rules/{rule.id}", status_code=303)


@router.post("/alarms/rules/{ident}/{action}", response_class=HTMLResponse)
async def rule_action(
    request: Request, _who: OperatorPage, db: Db, ident: str, action: str
) -> Response:
    """Enable, disable, delete, test or change (`update`, settings as JSON) a rule."""
    rule = get_rule_or_404(db, ident)
    if action in ("enable", "disable"):
        rules.update_rule(db, rule, {"enabled": action == "enable"})
    elif action == "delete":
        rules.delete_rule(db, rule)
        return RedirectResponse("/alarms", status_code=303)
    elif action in ("update", "test"):
        form = await request.form()
        extra: dict[str, Any] = {"pretty": _pretty}
        try:
            if action == "update":
                rules.update_rule(
                    db,
                    rule,
                    {
                        "params": _json_field(form.get("params"), "settings"),
                        "severity": str(form.get("severity") or rule.severity),
                    },
                )
            else:
                at_text = str(form.get("at") or "").strip()
                # Typed without an offset: in the tester's own time zone.
                at = as_typed_in_zone(dt.datetime.fromisoformat(at_text)) if at_text else None
                extra["decisions"] = try_rule(db, rule, at)
        except (rules.RuleError, ValueError) as error:
            extra["error"] = str(error)
        return render(
            request,
            "alarms/rule.html",
            {
                "rule": rule,
                "params": _pretty(rule.params),
                "evaluations": evaluations_of_rule(db, rule.id, limit=30),
                **extra,
            },
        )
    else:
        raise HTTPException(404, f"unknown action {action!r}")
    return RedirectResponse(f"/alarms/rules/{rule.id}", status_code=303)


@router.post("/alarms/silences", response_class=HTMLResponse)
async def create_silence_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """Silence alarms (`label=value` matchers, one per line, and/or a rule) for some hours."""
    form = await request.form()
    matchers = {}
    for line in str(form.get("matchers") or "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            matchers[name.strip()] = value.strip()
    try:
        hours = float(str(form.get("hours") or "0"))
        rule_name = str(form.get("rule") or "").strip()
        now = utcnow()
        silences.create_silence(
            db,
            kind=str(form.get("kind") or "silence"),
            matchers=matchers,
            rule=rules.get_rule(db, rule_name) if rule_name else None,
            starts_at=now,
            ends_at=now + dt.timedelta(hours=hours),
            reason=str(form.get("reason") or ""),
            actor=caller_name(who),
        )
    except (silences.SilenceError, rules.RuleError, ValueError) as error:
        return _alarms_page(request, db, error=str(error))
    return RedirectResponse("/alarms", status_code=303)


@router.post("/alarms/silences/{silence_id}/end", response_class=HTMLResponse)
def end_silence_form(_request: Request, _who: OperatorPage, db: Db, silence_id: RowId) -> Response:
    """End a silence now."""
    silence = db.get(Silence, silence_id) if 0 < silence_id < 2**62 else None
    if silence is None:
        raise HTTPException(404, f"no silence {silence_id}")
    silences.end_silence(db, silence)
    return RedirectResponse("/alarms", status_code=303)
