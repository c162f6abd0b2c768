"""An Alertmanager group on its ticket: titled from `groupLabels`, showing `commonLabels` and
each alert; a group re-sent unchanged adds no occurrence; the timeline in event-time order;
the token accepted as `Authorization: Bearer`."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.intake.models import InboxItem
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket
from tests.conftest import make_user, sign_in
from tests.intake.conftest import make_integration

GROUP_KEY = '{}:{alertname="NodeDown", cluster="eu1"}'


def node_down(instance: str, starts: str, ends: str | None = None) -> dict[str, Any]:
    """One alert of the NodeDown group; resolved when it has an end."""
    return {
        "status": "resolved" if ends else "firing",
        "labels": {
            "alertname": "NodeDown",
            "cluster": "eu1",
            "severity": "critical",
            "instance": instance,
        },
        "annotations": {"summary": f"{instance} is down"},
        "startsAt": starts,
        "endsAt": ends or "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": f"f00d{instance.encode().hex():0>12}"[:16],
    }


def group(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A webhook v4 body of the NodeDown group of cluster eu1."""
    firing = any(alert["status"] == "firing" for alert in alerts)
    return {
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "desk",
        "groupLabels": {"alertname": "NodeDown", "cluster": "eu1"},
        "commonLabels": {"alertname": "NodeDown", "cluster": "eu1", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://am.example:9093",
        "alerts": list(alerts),
    }


def the_ticket(db: Session) -> Ticket:
    db.expire_all()
    (ticket,) = db.scalars(select(Ticket))
    return ticket


def test_group_ticket_is_titled_from_group_labels_and_lists_each_alert(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager", "prometheus")
    three = [
        node_down("node-1", "2026-11-24T10:00:00Z"),
        node_down("node-2", "2026-11-24T10:01:00Z"),
        node_down("node-3", "2026-11-24T10:02:00.123456789Z"),
    ]
    answer = client.post(made.path or "", json=group(*three))
    assert answer.status_code == 200, answer.text
    assert the_ticket(db).title == "NodeDown (3) cluster=eu1"

    resolved = node_down("node-2", "2026-11-24T10:01:00Z", ends="2026-11-24T10:20:00Z")
    client.post(made.path or "", json=group(three[0], resolved, three[2]))
    ticket = the_ticket(db)
    assert ticket.title == "NodeDown (2) cluster=eu1"

    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/tickets/{ticket.key}").text
    shown = page.split('id="ticket-group"', 1)[1].split("</section>", 1)[0]
    assert (
        "<code>alertname=NodeDown</code> <code>cluster=eu1</code> <code>severity=critical</code>"
        in (shown)
    )
    rows = shown.split("<tbody>", 1)[1].split("</tr>")[:3]
    assert "firing" in rows[0] and "instance=node-1" in rows[0]
    assert "2026-11-24 10:00:00" in rows[0]
    assert "resolved" in rows[1] and "instance=node-2" in rows[1]
    assert "2026-11-24 10:01:00" in rows[1] and "2026-11-24 10:20:00" in rows[1]
    assert "instance=node-3" in rows[2] and "2026-11-24 10:02:00" in rows[2]
    assert "cluster=eu1" not in rows[0], "an alert's own labels, not the common ones"


def test_a_group_resent_unchanged_adds_no_occurrence_but_a_status_change_does(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager", "prometheus")
    two = [node_down("node-1", "2026-11-24T10:00:00Z"), node_down("node-2", "2026-11-24T10:01:00Z")]
    client.post(made.path or "", json=group(*two))
    ticket = the_ticket(db)
    events = len(tickets.timeline(db, ticket))
    assert ticket.occurrences == 2

    for _resend in range(3):  # group_interval / repeat_interval: the whole group again
        assert client.post(made.path or "", json=group(*two)).status_code == 200
    ticket = the_ticket(db)
    assert ticket.occurrences == 2
    assert len(tickets.timeline(db, ticket)) == events
    assert {alarm.occurrences for alarm in db.scalars(select(Alarm))} == {1}

    ended = node_down("node-2", "2026-11-24T10:01:00Z", ends="2026-11-24T10:30:00Z")
    client.post(made.path or "", json=group(two[0], ended))
    client.post(made.path or "", json=group(two[0], ended))  # the resolve re-sent
    again = node_down("node-2", "2026-11-24T11:00:00Z")
    client.post(made.path or "", json=group(two[0], again))
    ticket = the_ticket(db)
    assert ticket.occurrences == 3, "node-2 firing again is a new occurrence"
    assert ticket.title == "NodeDown (2) cluster=eu1"
    node_2 = db.scalar(select(Alarm).where(Alarm.fingerprint.like("%6e6f64652d32")))
    assert node_2 is not None and node_2.occurrences == 2


def test_a_resent_group_opens_a_new_ticket_when_a_person_closed_it(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager", "prometheus")
    body = group(node_down("node-1", "2026-11-24T10:00:00Z"))
    client.post(made.path or "", json=body)
    first = the_ticket(db)
    tickets.close_ticket(db, first, resolution="looked at it", actor="olga")
    db.commit()
    client.post(made.path or "", json=body)
    db.expire_all()
    newest = db.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
    assert newest is not None and newest.id != first.id and newest.seen_before_id == first.id


def test_timeline_is_in_event_time_order_not_arrival(client: TestClient, db: Session) -> None:
    made = make_integration(db, "alertmanager", "prometheus")
    late = node_down("node-1", "2026-11-24T10:05:00Z")
    early = node_down("node-2", "2026-11-24T10:01:00Z")
    client.post(made.path or "", json=group(late))
    client.post(made.path or "", json=group(late, early))
    ended = node_down("node-1", "2026-11-24T10:05:00Z", ends="2026-11-24T10:03:00Z")
    client.post(made.path or "", json=group(ended, early))
    ticket = the_ticket(db)
    shown = [(event.kind, event.at.strftime("%H:%M")) for event in tickets.timeline(db, ticket)]
    assert shown == [("occurrence", "10:01"), ("opened", "10:05")]

    token = made.token
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/tickets/{ticket.key}").text.split('id="ticket-timeline"', 1)[1]
    assert page.index("10:01:00") < page.index("10:05:00")
    assert token not in page


def test_the_token_is_taken_as_a_bearer_token_instead_of_in_the_url(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager", "prometheus")
    body = group(node_down("node-1", "2026-11-24T10:00:00Z"))
    sent = client.post(
        "/hooks/alertmanager", json=body, headers={"Authorization": f"Bearer {made.token}"}
    )
    assert sent.status_code == 200, sent.text
    assert the_ticket(db).title == "NodeDown (1) cluster=eu1"
    wrong = client.post(
        "/hooks/alertmanager", json=body, headers={"Authorization": f"Bearer {made.token}x"}
    )
    assert wrong.status_code == 401
    assert client.post("/hooks/alertmanager", json=body).status_code == 401
    basic = client.post(
        "/hooks/alertmanager", json=body, headers={"Authorization": f"Basic {made.token}"}
    )
    assert basic.status_code == 401
    other = make_integration(db, "generic", "apps")
    elsewhere = client.post(
        "/hooks/alertmanager", json=body, headers={"Authorization": f"Bearer {other.token}"}
    )
    assert elsewhere.status_code == 404
    db.expire_all()
    kept = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [item.status_code for item in kept] == [200, 401, 401, 401, 404]
    assert all(made.token not in item.path and "authorization" not in item.headers for item in kept)
