"""Generic JSON alerts, Grafana OnCall webhooks, and what every refused request leaves behind."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.intake.models import InboxItem
from dutydesk.tickets.models import Ticket
from tests.intake.conftest import make_integration


def latest_inbox(db: Session) -> InboxItem:
    db.expire_all()
    item = db.scalar(select(InboxItem).order_by(InboxItem.id.desc()).limit(1))
    assert item is not None
    return item


def test_generic_alert_opens_a_ticket_and_a_repeat_adds_an_occurrence(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic")
    alert = {"summary": "Disk full on db-1", "severity": "page", "labels": {"host": "db-1"}}
    first = client.post(made.path or "", json=alert)
    assert first.status_code == 202, first.text
    assert first.json()["is_new"] is True
    again = client.post(made.path or "", json=alert)
    assert again.status_code == 202
    assert again.json()["is_new"] is False
    assert again.json()["ticket_id"] == first.json()["ticket_id"]
    assert again.json()["alert_id"] == first.json()["alert_id"]
    db.expire_all()
    ticket = db.get(Ticket, first.json()["ticket_id"])
    assert ticket is not None
    assert (ticket.title, ticket.severity, ticket.occurrences) == (
        "Disk full on db-1",
        "critical",
        2,
    )
    alarm = db.get(Alarm, first.json()["alert_id"])
    assert alarm is not None and alarm.occurrences == 2 and alarm.labels == {"host": "db-1"}
    assert latest_inbox(db).outcome == "accepted"
    assert latest_inbox(db).ticket_ids == [ticket.id]


def test_resolved_generic_alert_resolves_its_alarm_and_closes_when_configured(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic", close_on_resolve=True)
    fired = client.post(made.path or "", json={"title": "API 5xx", "dedup_key": "api-5xx"}).json()
    done = client.post(
        made.path or "", json={"title": "API 5xx", "dedup_key": "api-5xx", "status": "resolved"}
    )
    assert done.status_code == 202
    db.expire_all()
    alarm = db.get(Alarm, fired["alert_id"])
    ticket = db.get(Ticket, fired["ticket_id"])
    assert alarm is not None and alarm.state == "resolved" and alarm.resolved_at is not None
    assert ticket is not None and ticket.status == "closed"


def test_grouping_rule_makes_the_fingerprint_from_chosen_fields(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic", group_by=["labels.service"])
    one = client.post(made.path or "", json={"title": "a", "labels": {"service": "api"}}).json()
    two = client.post(made.path or "", json={"title": "b", "labels": {"service": "api"}}).json()
    other = client.post(made.path or "", json={"title": "c", "labels": {"service": "db"}}).json()
    assert one["alert_id"] == two["alert_id"] != other["alert_id"]


def test_resolve_rule_resolves_on_a_field_value(client: TestClient, db: Session) -> None:
    made = make_integration(db, "generic", resolve_when={"labels.phase": "done"})
    fired = client.post(made.path or "", json={"title": "job", "dedup_key": "j"}).json()
    client.post(
        made.path or "", json={"title": "job", "dedup_key": "j", "labels": {"phase": "done"}}
    )
    db.expire_all()
    alarm = db.get(Alarm, fired["alert_id"])
    assert alarm is not None and alarm.state == "resolved"


def test_oncall_formatted_webhook_fires_and_ok_resolves(client: TestClient, db: Session) -> None:
    made = make_integration(db, "oncall")
    body = {"alert_uid": "u-1", "title": "Latency", "state": "alerting", "message": "p99 2s"}
    fired = client.post(made.path or "", json=body)
    assert fired.status_code == 202 and fired.json()["is_new"] is True
    client.post(made.path or "", json={**body, "state": "ok"})
    db.expire_all()
    alarm = db.get(Alarm, fired.json()["alert_id"])
    assert alarm is not None and alarm.state == "resolved"


def test_malformed_json_gets_400_with_the_position_and_is_kept(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(
        made.path or "",
        content=b'{"title": "x",\n "labels": {oops}}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    detail = answer.json()
    assert (detail["line"], detail["column"], detail["position"]) == (2, 13, 27)
    assert "line 2 column 13" in detail["detail"]
    item = latest_inbox(db)
    assert item.outcome == "rejected" and item.status_code == 400
    assert "line 2 column 13" in (item.reason or "")
    assert item.body == '{"title": "x",\n "labels": {oops}}'


def test_missing_title_gets_422_and_is_kept(client: TestClient, db: Session) -> None:
    made = make_integration(db, "generic")
    answer = client.post(made.path or "", json={"severity": "high"})
    assert answer.status_code == 422
    assert "title" in answer.json()["detail"]
    assert latest_inbox(db).outcome == "rejected"


def test_unknown_token_gets_401_and_is_kept_without_the_token(
    client: TestClient, db: Session
) -> None:
    answer = client.post("/hooks/generic/not-a-real-token-123", json={"title": "x"})
    assert answer.status_code == 401
    item = latest_inbox(db)
    assert item.status_code == 401 and item.integration_id is None
    assert "not-a-real-token-123" not in item.path
    assert json.loads(item.body) == {"title": "x"}


def test_token_of_another_kind_is_refused_with_the_right_address(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic")
    answer = client.post(f"/hooks/alertmanager/{made.token}", json={"alerts": []})
    assert answer.status_code == 404
    assert "/hooks/generic/" in answer.json()["detail"]


def test_oversized_body_gets_413_and_is_kept_truncated(
    client: TestClient, db: Session, monkeypatch: object
) -> None:
    import pytest

    from tests.conftest import clear_caches

    mp = monkeypatch
    assert isinstance(mp, pytest.MonkeyPatch)
    mp.setenv("DUTYDESK_INBOX_MAX_BYTES", "2048")
    clear_caches()
    made = make_integration(db, "generic")
    big = json.dumps({"title": "big", "message": "x" * 5000}).encode()
    answer = client.post(made.path or "", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    item = latest_inbox(db)
    assert item.outcome == "rejected" and item.truncated and item.body_bytes == len(big)
    assert "over the limit of 2048" in (item.reason or "")
    assert 0 < len(item.body) <= len(big)


def test_rate_limit_answers_429_beyond_the_limit_and_counts_refusals(
    client: TestClient, db: Session
) -> None:
    from dutydesk.db import utcnow
    from dutydesk.intake import service

    made = make_integration(db, "generic", rate_limit=3)
    codes = [client.post(made.path or "", json={"title": "t"}).status_code for _ in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    db.expire_all()
    since = utcnow().replace(second=0, microsecond=0)
    import datetime as dt

    assert service.rate_counts(db, made.integration, since=since - dt.timedelta(minutes=1)) == (
        3,
        2,
    )
    assert latest_inbox(db).status_code == 429


def test_disabled_integration_token_gets_401(client: TestClient, db: Session) -> None:
    from dutydesk.intake import service

    made = make_integration(db, "generic")
    service.update_integration(db, made.integration, {"enabled": False})
    db.commit()
    assert client.post(made.path or "", json={"title": "t"}).status_code == 401


def test_rate_limit_counts_the_earlier_minutes_of_the_window(
    client: TestClient, db: Session
) -> None:
    import datetime as dt

    from dutydesk.db import utcnow
    from dutydesk.intake.models import RateCount

    made = make_integration(db, "generic", rate_limit=10, rate_window_seconds=300)
    minute = utcnow().replace(second=0, microsecond=0)
    db.add(
        RateCount(
            integration_id=made.integration.id, minute=minute - dt.timedelta(minutes=3), accepted=9
        )
    )
    db.add(
        RateCount(
            integration_id=made.integration.id,
            minute=minute - dt.timedelta(minutes=9),
            accepted=500,
        )
    )
    db.commit()
    codes = [client.post(made.path or "", json={"title": "t"}).status_code for _ in range(3)]
    assert codes == [202, 429, 429]
