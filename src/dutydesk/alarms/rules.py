"""Alarm rules: checked settings per kind, CRUD (audited through the model), seeded defaults.

Functions take a session and never commit.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms._cron import CronError, parse_cron
from dutydesk.alarms.models import AlarmRule, RuleKind
from dutydesk.idents import as_id
from dutydesk.intake.models import Integration
from dutydesk.tickets.service import TicketInputError, parse_severity

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
SHARING_OPTIONS_LINE = r"Unable to parse sharing options.*sharing scope value=null"

# Each kind's settings and their defaults; None means required.
DEFAULTS: dict[str, dict[str, Any]] = {
    RuleKind.log_threshold.value: {
        "sources": [],
        "levels": ["ERROR"],
        "regex": None,
        "threshold": None,
        "window_minutes": 60,
        "ignore": [],
    },
    RuleKind.deadline.value: {
        "event": None,
        "check": None,
        "source": None,
        "regex": None,
        "cron": None,
        "grace_minutes": 60,
        "slow_factor": None,
        "baseline_runs": 10,
    },
    RuleKind.metric_shift.value: {
        "series": None,
        "points": 14,
        "k": 4.0,
        "min_relative": 0.2,
        "min_history": 7,
        "direction": "drop",
        "same_weekday": False,
        "min_baseline": 0,
    },
    RuleKind.http_probe.value: {
        "url": None,
        "expected_status": 200,
        "latency_ms": 2000,
        "interval_seconds": 60,
        "timeout_seconds": 10,
    },
    RuleKind.ci_silence.value: {"integration": None, "hours": 24},
}


class RuleError(ValueError):
    """A rule that cannot be made or changed; the message says why."""


class RuleNotFound(RuleError):
    """No rule by that id or name."""


def _regex(value: Any, name: str) -> str:
    try:
        re.compile(str(value))
    except re.error as error:
        raise RuleError(f"{name} {value!r} is not a valid regex: {error}") from None
    return str(value)


def _number(params: dict[str, Any], name: str, *, low: float = 0, integer: bool = True) -> None:
    value = params[name]
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise RuleError(f"{name} must be a number, not {value!r}") from None
    if number < low:
        raise RuleError(f"{name} must be at least {low}")
    params[name] = number


def check_params(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """The kind's settings from `given`, defaults filled in; RuleError naming what is wrong."""
    if kind not in DEFAULTS:
        raise RuleError(f"unknown rule kind {kind!r}; use one of {', '.join(DEFAULTS)}")
    unknown = set(given) - set(DEFAULTS[kind])
    if unknown:
        raise RuleError(f"unknown setting(s) for a {kind} rule: {', '.join(sorted(unknown))}")
    params = {**DEFAULTS[kind], **{k: v for k, v in given.items() if v is not None}}
    missing = [
        name for name, value in params.items() if value is None and name in _required(kind, params)
    ]
    if missing:
        raise RuleError(f"a {kind} rule needs {', '.join(missing)}")
    if kind == RuleKind.log_threshold.value:
        _number(params, "threshold", low=1)
        _number(params, "window_minutes", low=1)
        params["levels"] = [str(level).upper() for level in params["levels"]]
        params["sources"] = [str(source) for source in params["sources"]]
        if params["regex"]:
            _regex(params["regex"], "regex")
        ignores = []
        for ignore in params["ignore"]:
            item = {"pattern": ignore, "threshold": 1_000} if isinstance(ignore, str) else ignore
            if not isinstance(item, dict) or "pattern" not in item:
                raise RuleError("each ignore entry is a regex or {pattern, threshold}")
            ignores.append(
                {
                    "pattern": _regex(item["pattern"], "ignore pattern"),
                    "threshold": int(item.get("threshold") or 1_000),
                }
            )
        params["ignore"] = ignores
    elif kind == RuleKind.deadline.value:
        if params["event"] not in ("ping", "log", "export"):
            raise RuleError("a deadline's event is ping, log or export")
        try:
            parse_cron(str(params["cron"]))
        except CronError as error:
            raise RuleError(str(error)) from None
        _number(params, "grace_minutes")
        _number(params, "baseline_runs", low=3)
        if params["slow_factor"] is not None:
            _number(params, "slow_factor", low=1, integer=False)
        if params["regex"]:
            _regex(params["regex"], "regex")
    elif kind == RuleKind.metric_shift.value:
        _number(params, "points", low=3)
        _number(params, "min_history", low=2)
        _number(params, "k", integer=False)
        _number(params, "min_relative", integer=False)
        _number(params, "min_baseline", integer=False)
        if params["direction"] not in ("drop", "rise", "both"):
            raise RuleError("direction is drop, rise or both")
        params["same_weekday"] = bool(params["same_weekday"])
    elif kind == RuleKind.http_probe.value:
        if not str(params["url"]).startswith(("http://", "https://")):
            raise RuleError("a probe's url starts with http:// or https://")
        for name in ("expected_status", "latency_ms", "interval_seconds", "timeout_seconds"):
            _number(params, name, low=1)
    else:
        _number(params, "hours", low=0, integer=False)
    return params


def _required(kind: str, params: dict[str, Any]) -> set[str]:
    if kind == RuleKind.deadline.value:
        extra = {"ping": {"check"}, "log": {"regex"}}.get(str(params.get("event")), set())
        return {"event", "cron", *extra}
    return {
        RuleKind.log_threshold.value: {"threshold"},
        RuleKind.metric_shift.value: {"series"},
        RuleKind.http_probe.value: {"url"},
        RuleKind.ci_silence.value: {"integration"},
    }[kind]


def _integration_id(session: Session, name: str | None) -> int | None:
    if not name:
        return None
    found = session.scalar(select(Integration.id).where(Integration.name == name))
    if found is None:
        raise RuleError(f"no integration {name!r}")
    return found


def create_rule(
    session: Session,
    *,
    name: str,
    kind: str,
    params: dict[str, Any],
    actor: str,
    severity: str = "warning",
    description: str = "",
    enabled: bool = True,
    integration: str | None = None,
    labels: dict[str, Any] | None = None,
) -> AlarmRule:
    """Make a rule (its settings checked)."""
    if not NAME_PATTERN.match(name):
        raise RuleError("a rule name is lower case letters, digits, '.', '_' or '-'")
    if session.scalar(select(AlarmRule.id).where(AlarmRule.name == name)) is not None:
        raise RuleError(f"a rule named {name!r} exists")
    try:
        severity = parse_severity(severity)
    except TicketInputError as error:
        raise RuleError(str(error)) from None
    rule = AlarmRule(
        name=name,
        kind=kind,
        params=check_params(kind, params),
        severity=severity,
        description=description,
        enabled=enabled,
        integration_id=_integration_id(session, integration),
        labels=labels or {},
        state={},
        firing=[],
        created_by=actor,
    )
    session.add(rule)
    session.flush()
    return rule


def update_rule(session: Session, rule: AlarmRule, changes: dict[str, Any]) -> AlarmRule:
    """Change a rule's settings, severity, description, enabled flag or integration."""
    if "params" in changes:
        rule.params = check_params(rule.kind, {**rule.params, **changes["params"]})
    if "severity" in changes:
        try:
            rule.severity = parse_severity(changes["severity"])
        except TicketInputError as error:
            raise RuleError(str(error)) from None
    if "integration" in changes:
        rule.integration_id = _integration_id(session, changes["integration"])
    for name in ("description", "enabled", "labels"):
        if name in changes:
            setattr(rule, name, changes[name])
    session.flush()
    return rule


def delete_rule(session: Session, rule: AlarmRule) -> None:
    """Remove a rule (its evaluations go with it; its alarms stay)."""
    session.delete(rule)
    session.flush()


def get_rule(session: Session, ident: str | int) -> AlarmRule:
    """A rule by id or name, or RuleNotFound."""
    text = str(ident)
    number = as_id(text)
    rule = (
        session.get(AlarmRule, number)
        if number is not None
        else session.scalar(select(AlarmRule).where(AlarmRule.name == text))
    )
    if rule is None:
        raise RuleNotFound(f"no rule {text!r}")
    return rule


def list_rules(session: Session, *, enabled_only: bool = False) -> list[AlarmRule]:
    """Rules by name."""
    statement = select(AlarmRule).order_by(AlarmRule.name)
    if enabled_only:
        statement = statement.where(AlarmRule.enabled.is_(True))
    return list(session.scalars(statement))


SEEDED: list[dict[str, Any]] = [
    {
        "name": "errors-per-hour",
        "kind": "log_threshold",
        "severity": "high",
        "description": "10 or more ERROR lines in an hour from one source.",
        "params": {
            "levels": ["ERROR", "FATAL"],
            "threshold": 10,
            "window_minutes": 60,
            "ignore": [{"pattern": SHARING_OPTIONS_LINE, "threshold": 1_000}],
        },
    },
    {
        "name": "warnings-per-hour",
        "kind": "log_threshold",
        "severity": "warning",
        "description": "100 or more WARN lines in an hour from one source.",
        "params": {
            "levels": ["WARN"],
            "threshold": 100,
            "window_minutes": 60,
            "ignore": [{"pattern": SHARING_OPTIONS_LINE, "threshold": 1_000}],
        },
    },
    *(
        {
            "name": f"shift-{slug}",
            "kind": "metric_shift",
            "severity": "high" if slug == "unique-health-codes" else "warning",
            "description": f"The export's {series} series moved far from its recent median.",
            "params": {"series": series, "direction": direction, **extra},
        }
        for slug, series, direction, extra in (
            # The series the dashboards and the review show (an export run also writes the
            # older `uniqueHealthCodes[study]` keys, which rules made before still read).
            ("unique-health-codes", "export.uniqueHealthCodes[*]", "drop", {"min_relative": 0.3}),
            ("num-total", "numTotal", "both", {"min_relative": 0.3}),
            ("accepted", "accepted[*]", "both", {"min_relative": 0.3}),
            ("excluded", "excluded[*]", "rise", {"min_relative": 0.5}),
            ("line-count", "*.lineCount", "drop", {"min_relative": 0.5, "min_baseline": 20}),
        )
    ),
]


def seed_default_rules(session: Session, actor: str) -> list[AlarmRule]:
    """Make the seeded rules that do not exist yet (by name); returns those made."""
    made = []
    existing = set(session.scalars(select(AlarmRule.name)))
    for spec in SEEDED:
        if spec["name"] not in existing:
            made.append(create_rule(session, actor=actor, **spec))
    return made
