"""An Alertmanager group on its ticket: the title from `groupLabels` ("NodeDown (3)
cluster=eu1"), and the group as it was last sent (`commonLabels` and each alert with its
labels, status, `startsAt` and `endsAt`) as the ticket's payload, which its page shows."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.intake._parse import group_ticket_key, parse_time
from dutydesk.intake.models import Integration
from dutydesk.tickets import service as tickets

# Alerts a ticket's payload lists (a group can hold thousands; the count says how many).
MAX_ALERTS_SHOWN = 200


@dataclass(frozen=True)
class GroupView:
    """What a group's ticket shows: its key, title (None when no alert fires) and payload."""

    ticket_key: str
    title: str | None
    payload: dict[str, Any]


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(key): str(item) for key, item in value.items()}


def _moment(value: Any) -> str | None:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def group_title(group_labels: dict[str, str], common_labels: dict[str, str], firing: int) -> str:
    """`<alertname> (<alerts firing>) k=v ...` for the group's other labels."""
    name = group_labels.get("alertname") or common_labels.get("alertname") or "Alerts"
    others = [f"{key}={value}" for key, value in sorted(group_labels.items()) if key != "alertname"]
    return " ".join([f"{name} ({firing})", *others])


def group_view(integration: Integration, body: Any, accepted: Collection[int]) -> GroupView | None:
    """The view of the group a webhook body sends, made of its `accepted` alerts (by index);
    None when the integration does not follow Alertmanager's grouping."""
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        return None
    ticket_key = group_ticket_key(integration, body)
    if ticket_key is None:
        return None
    group_labels = _labels(body.get("groupLabels"))
    common_labels = _labels(body.get("commonLabels"))
    alerts = []
    for index in sorted(accepted):
        alert = body["alerts"][index]
        resolved = alert.get("status") == "resolved"
        shown = {
            "fingerprint": str(alert.get("fingerprint") or ""),
            "status": "resolved" if resolved else "firing",
            "labels": _labels(alert.get("labels")),
            "startsAt": _moment(alert.get("startsAt")),
        }
        if resolved:
            shown["endsAt"] = _moment(alert.get("endsAt"))
        alerts.append(shown)
    firing = sum(alert["status"] == "firing" for alert in alerts)
    payload = {
        "labels": common_labels,
        "groupKey": str(body.get("groupKey") or ""),
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _labels(body.get("commonAnnotations")),
        "externalURL": str(body.get("externalURL") or ""),
        "alerts": alerts[:MAX_ALERTS_SHOWN],
        "alerts_count": len(alerts),
        "firing_count": firing,
    }
    title = group_title(group_labels, common_labels, firing) if firing else None
    return GroupView(ticket_key, title, payload)


def show_group(session: Session, view: GroupView, told: Collection[int]) -> None:
    """Put the group's view on its ticket (the one open, or the one this batch closed)."""
    tickets.show_group(
        session, view.ticket_key, title=view.title, payload=view.payload, touched=told
    )
