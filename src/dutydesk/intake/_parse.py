"""Payloads to signals: Alertmanager webhook v4, generic JSON, Grafana OnCall, CI events.

Each parser reads an already-loaded payload (`_payload.load_payload`: text made storable) for
one integration and returns the signals in it, or raises `Rejected` with the HTTP status and
the reason the sender should read. The Alertmanager parser judges each alert alone: it returns
a signal or a `Rejected` per alert, so one bad alert refuses only itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from dutydesk.alarms.service import Signal
from dutydesk.intake._fields import (
    Unreadable,
    known_severity,
    read_labels,
    read_severity,
    read_time,
)
from dutydesk.intake.models import Integration

MAX_DESCRIPTION = 20_000
RESOLVED_WORDS = frozenset({"resolved", "ok", "close", "closed", "inactive", "normal"})
# GitHub's `startup_failure` (the workflow could not start) and `action_required` (the run
# waits for someone) need a person as a failure does.
FAILED_CI = frozenset(
    {
        "failure",
        "failed",
        "error",
        "errored",
        "timed_out",
        "broken",
        "startup_failure",
        "action_required",
    }
)
# Titles for GitHub conclusions that are not a plain failure.
GITHUB_TROUBLE = {"startup_failure": "could not start", "action_required": "needs approval"}
PASSED_CI = frozenset({"success", "succeeded", "passed", "ok", "fixed", "stable"})


@dataclass
class Rejected(Exception):
    """A payload the desk refuses: the status to answer and why (plus details for the sender)."""

    status: int
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path (`labels.service`) of a JSON object, or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(key): _text(item) for key, item in value.items()}


def severity_of(value: Any, default: str) -> str:
    """Our severity for a sender's word (`page`, `P2`, `warn`...: `_fields.SEVERITIES`);
    `default` if unknown."""
    return known_severity(value) or default


def digest(*parts: str) -> str:
    """A short stable hash of the parts, for fingerprints made from content."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time, or None when absent, zero (`0001-01-01...`) or unreadable."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _group_key(integration: Integration, obj: Any, default: str) -> str:
    """The integration's grouping (values at its `group_by` paths) or the sender's key."""
    if not integration.group_by:
        return default
    return digest(*(_text(lookup(obj, path)) for path in integration.group_by))


def _rule_resolves(integration: Integration, obj: Any) -> bool:
    """Whether the integration's resolve rule matches the payload."""
    rule = integration.resolve_when
    return bool(rule) and all(_text(lookup(obj, path)) == want for path, want in rule.items())


def _signal(integration: Integration, key: str, **values: Any) -> Signal:
    return Signal(
        source=integration.name,
        integration_id=integration.id,
        fingerprint=f"{integration.name}:{key}"[:200],
        close_on_resolve=integration.close_on_resolve,
        **values,
    )


def _object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise Rejected(422, f"{what} must be a JSON object, not {type(payload).__name__}")
    return payload


# --- Alertmanager ------------------------------------------------------------------------------


def alertmanager(integration: Integration, payload: Any) -> list[Signal | Rejected]:
    """What each alert of an Alertmanager webhook v4 body becomes, in order: its signal (keyed
    by its fingerprint), or why it is refused. One bad alert never refuses the others.

    The alerts of one group (`groupKey`) land on one ticket, unless the integration groups
    by its own `group_by` paths.
    """
    body = _object(payload, "an Alertmanager webhook body")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise Rejected(422, "an Alertmanager webhook body needs an `alerts` list")
    group_key = _text(body.get("groupKey")) or None
    ticket_key = group_ticket_key(integration, body)
    judged: list[Signal | Rejected] = []
    for alert in alerts:
        if isinstance(alert, dict):
            judged.append(_alert_signal(integration, alert, ticket_key, group_key))
        else:
            judged.append(Rejected(422, f"an alert must be an object, not {type(alert).__name__}"))
    return judged


def group_ticket_key(integration: Integration, body: dict[str, Any]) -> str | None:
    """The ticket key of an Alertmanager group: its `groupKey` (else its `groupLabels`), when
    Alertmanager's grouping is the integration's (no `group_by` of its own); else None."""
    if integration.group_by:
        return None
    group = _text(body.get("groupKey"))
    if not group and isinstance(body.get("groupLabels"), dict) and body["groupLabels"]:
        group = json.dumps(_labels(body["groupLabels"]), sort_keys=True)
    return f"{integration.name}:group:{digest(group)}" if group else None


def _alert_signal(
    integration: Integration, alert: dict[str, Any], ticket_key: str | None, group_key: str | None
) -> Signal:
    labels = _labels(alert.get("labels"))
    annotations = _labels(alert.get("annotations"))
    own_key = _text(alert.get("fingerprint")) or digest(json.dumps(labels, sort_keys=True))
    key = _group_key(integration, alert, own_key)
    resolved = alert.get("status") == "resolved" or _rule_resolves(integration, alert)
    name = labels.get("alertname", "alert")
    title = annotations.get("summary") or " ".join(
        filter(None, [name, labels.get("instance") or labels.get("job")])
    )
    description = annotations.get("description") or annotations.get("message") or ""
    if alert.get("generatorURL"):
        description = f"{description}\n\n{_text(alert['generatorURL'])}".strip()
    moment = parse_time(alert.get("endsAt")) if resolved else parse_time(alert.get("startsAt"))
    return _signal(
        integration,
        key,
        title=title,
        severity=severity_of(labels.get("severity"), integration.default_severity),
        description=description[:MAX_DESCRIPTION],
        labels=labels,
        annotations=annotations,
        resolved=resolved,
        occurred_at=moment,
        ticket_key=ticket_key,
        payload={"labels": labels, "groupKey": group_key},
        resent_unchanged=True,
    )


# --- generic JSON and Grafana OnCall -----------------------------------------------------------


def _first(body: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = body.get(name)
        if value not in (None, ""):
            return value
    return None


def _generic_resolved(body: dict[str, Any]) -> bool:
    status = str(_first(body, "status", "state") or "").strip().lower()
    return status in RESOLVED_WORDS or str(body.get("action", "")).lower() == "close"


def generic(integration: Integration, payload: Any) -> list[Signal]:
    """The signal of one generic JSON alert (interop section 3; aliases of GoAlert, OnCall,
    Keep and Alertmanager accepted). A severity, time or labels the desk cannot read refuse
    the alert (422) naming the field."""
    body = _object(payload, "a generic alert")
    title = _first(body, "title", "summary", "name")
    if not isinstance(title, str) or not title.strip():
        raise Rejected(422, "a generic alert needs a `title` (or `summary` or `name`) string")
    try:
        labels_field = "labels" if body.get("labels") is not None else "meta"
        labels = read_labels(body.get(labels_field), labels_field)
        severity = read_severity(body.get("severity"), integration.default_severity)
        starts_at = read_time(body.get("starts_at"), "starts_at")
        ends_at = read_time(body.get("ends_at"), "ends_at")
    except Unreadable as error:
        raise Rejected(422, str(error)) from None
    for extra in ("service", "environment", "source"):
        if isinstance(body.get(extra), str):
            labels.setdefault(extra, body[extra])
    default_key = digest(title.strip(), json.dumps(labels, sort_keys=True))
    key = _group_key(
        integration,
        body,
        _text(_first(body, "dedup_key", "alert_uid", "dedup", "fingerprint")) or default_key,
    )
    message = _text(_first(body, "message", "details", "description"))
    url = _text(_first(body, "url", "link_to_upstream_details", "generatorURL"))
    annotations = {name: value for name, value in (("url", url),) if value}
    payload_kept: dict[str, Any] = {"labels": labels}
    image_url = body.get("image_url")
    if isinstance(image_url, str) and image_url.strip():
        # Kept on the alarm and on its ticket's payload, which the ticket page shows.
        annotations["image_url"] = payload_kept["image_url"] = image_url.strip()
    resolved = _generic_resolved(body) or _rule_resolves(integration, body)
    return [
        _signal(
            integration,
            key,
            title=title,
            severity=severity,
            description=(f"{message}\n\n{url}".strip() if url else message)[:MAX_DESCRIPTION],
            labels=labels,
            annotations=annotations,
            resolved=resolved,
            occurred_at=ends_at if resolved else starts_at,
            payload=payload_kept,
        )
    ]


def oncall(integration: Integration, payload: Any) -> list[Signal]:
    """The signal of a Grafana OnCall formatted webhook (no field required; `state: ok`
    resolves; an empty `alert_uid` means no grouping)."""
    body = dict(_object(payload, "an OnCall formatted webhook"))
    body.setdefault("title", body.get("title") or "Alert from Grafana OnCall")
    if not body.get("alert_uid"):
        # As OnCall documents: no `alert_uid`, no grouping; each such alert is its own.
        body["alert_uid"] = f"ungrouped-{uuid.uuid4().hex}"
    return generic(integration, body)


# --- CI pipelines ------------------------------------------------------------------------------


def _pipeline_signal(
    integration: Integration,
    *,
    key: str,
    outcome: str,
    title: str,
    url: str,
    labels: dict[str, str],
) -> list[Signal]:
    outcome = outcome.strip().lower()
    if outcome in FAILED_CI:
        resolved = False
    elif outcome in PASSED_CI:
        resolved = True
    else:
        return []  # running, cancelled, skipped...: neither opens nor resolves
    return [
        _signal(
            integration,
            _group_key(integration, labels, key),
            title=title if not resolved else title.replace("failed", "passed", 1),
            severity=integration.default_severity,
            description=url,
            labels=labels,
            annotations={"url": url} if url else {},
            resolved=resolved,
            payload={"labels": labels},
        )
    ]


def github(integration: Integration, event: str, payload: Any) -> list[Signal]:
    """A GitHub `workflow_run` event: a completed failure fires, a success resolves."""
    body = _object(payload, "a GitHub event")
    if event != "workflow_run":
        return []  # `ping` and other events are accepted and ignored
    run = body.get("workflow_run")
    if not isinstance(run, dict):
        raise Rejected(422, "a workflow_run event needs a `workflow_run` object")
    if body.get("action") != "completed":
        return []
    repository = _text(lookup(body, "repository.full_name"))
    workflow = _text(run.get("name"))
    branch = _text(run.get("head_branch"))
    labels = {"repository": repository, "workflow": workflow, "branch": branch}
    conclusion = _text(run.get("conclusion")).strip().lower()
    trouble = GITHUB_TROUBLE.get(conclusion, "failed")
    return _pipeline_signal(
        integration,
        key=digest(repository, workflow, branch),
        outcome=conclusion,
        title=f"CI {trouble}: {repository} {workflow} on {branch}",
        url=_text(run.get("html_url")),
        labels=labels,
    )


def gitlab(integration: Integration, payload: Any) -> list[Signal]:
    """A GitLab pipeline hook: `failed` fires, `success` resolves."""
    body = _object(payload, "a GitLab hook")
    if body.get("object_kind") != "pipeline":
        return []
    attributes = body.get("object_attributes")
    if not isinstance(attributes, dict):
        raise Rejected(422, "a pipeline hook needs `object_attributes`")
    project = _text(lookup(body, "project.path_with_namespace")) or _text(
        lookup(body, "project.name")
    )
    name = _text(attributes.get("name")) or "pipeline"
    branch = _text(attributes.get("ref"))
    labels = {"repository": project, "workflow": name, "branch": branch}
    return _pipeline_signal(
        integration,
        key=digest(project, name, branch),
        outcome=_text(attributes.get("status")),
        title=f"CI failed: {project} {name} on {branch}",
        url=_text(attributes.get("url")),
        labels=labels,
    )


def plain_ci(integration: Integration, payload: Any) -> list[Signal]:
    """A plain pipeline event (`pipeline`, `stage`, `status`, `url`, `branch`)."""
    body = _object(payload, "a pipeline event")
    pipeline = body.get("pipeline")
    status = body.get("status")
    if not isinstance(pipeline, str) or not pipeline.strip():
        raise Rejected(422, "a pipeline event needs a `pipeline` name")
    if not isinstance(status, str):
        raise Rejected(422, "a pipeline event needs a `status` string")
    branch = _text(body.get("branch"))
    stage = _text(body.get("stage"))
    labels = {"workflow": pipeline, "branch": branch, "stage": stage}
    where = f" at {stage}" if stage else ""
    return _pipeline_signal(
        integration,
        key=digest(pipeline, branch),
        outcome=status,
        title=f"CI failed: {pipeline} on {branch or 'default'}{where}",
        url=_text(body.get("url")),
        labels=labels,
    )
