"""Log lines in: counts per (source, minute, level), error groups by template, the API."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.intake import logs
from dutydesk.intake.models import ErrorGroup, InboxItem, LogCount
from dutydesk.logs.formats import FORMATS
from dutydesk.people import service as people

NOW = dt.datetime(2026, 11, 24, 12, 30, tzinfo=dt.UTC)
JAVA = """\
2026-11-24 12:01:02,123 ERROR [main] org.sagebionetworks.Worker - Timeout after 3000 ms for id 42
java.lang.RuntimeException: boom
\tat org.sagebionetworks.Worker.run(Worker.java:10)
2026-11-24 12:01:09,001 ERROR [main] org.sagebionetworks.Worker - Timeout after 5000 ms for id 77
2026-11-24 12:02:00,000 INFO [main] org.x.Worker - Finished processing request in 12 seconds
2026-11-24 12:02:01,000 WARN [main] org.x.Share - Unable to parse sharing options for hc 'abc-1', \
sharing scope value=null
"""


def token(db: Session, scopes: list[str]) -> str:
    made = people.create_token(db, "shipper", scopes)
    db.commit()
    return made.secret


def test_templates_mask_numbers_hex_uuids_and_quoted_values() -> None:
    message = (
        'Record 12345 of "study-a" failed: id=0x1f3a 5f0c2b7e-3c5d-4e1f-8a9b-0c1d2e3f4a5b '
        "hash deadbeef0123 took 1.5s"
    )
    assert logs.template_of(message) == (
        "Record <num> of <str> failed: id=<hex> <uuid> hash <hex> took <num>s"
    )


def test_java_lines_count_per_minute_and_level_with_stack_traces_joined() -> None:
    batch = logs.count_text(JAVA, FORMATS["java"], NOW)
    minute = dt.datetime(2026, 11, 24, 12, 1, tzinfo=dt.UTC)
    assert batch.counts[(minute, "ERROR")] == 2
    assert batch.counts[(minute.replace(minute=2), "INFO")] == 1
    assert batch.counts[(minute.replace(minute=2), "WARN")] == 1
    assert batch.unparsed == 0
    (timeouts,) = [g for g in batch.groups.values() if g.template.startswith("Timeout")]
    assert timeouts.count == 2
    assert timeouts.template == "Timeout after <num> ms for id <num>"
    assert "RuntimeException" in timeouts.samples[0]


def test_stored_counts_add_up_across_batches_and_groups_keep_few_samples(db: Session) -> None:
    for _ in range(4):
        logs.store_counts(db, "bridge", logs.count_text(JAVA, FORMATS["java"], NOW))
    db.flush()
    counts = {
        (c.level, c.minute.minute): c.count
        for c in db.scalars(select(LogCount).where(LogCount.source == "bridge"))
    }
    assert counts[("ERROR", 1)] == 8
    group = db.scalar(select(ErrorGroup).where(ErrorGroup.template.like("Timeout%")))
    assert group is not None
    assert group.count == 8
    assert len(group.samples) == logs.SAMPLES_KEPT
    assert "id 77" in group.last_sample
    assert group.first_seen < group.last_seen


def test_api_counts_text_lines_with_an_intake_token(client: TestClient, db: Session) -> None:
    secret = token(db, ["intake"])
    response = client.post(
        "/api/v1/logs?source=bridge",
        content=JAVA.encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["format"] == "java"
    assert response.json()["events"] == 4
    item = db.get(InboxItem, response.json()["inbox_id"])
    assert item is not None and item.outcome == "accepted" and item.source == "logs"


def test_api_counts_json_lines(client: TestClient, db: Session) -> None:
    secret = token(db, ["intake"])
    body = (
        '{"ts": "2026-11-24T12:00:01Z", "level": "error", "msg": "disk full after 3 tries"}\n'
        '{"ts": "2026-11-24T12:00:02Z", "level": "info", "msg": "ok"}\n'
    )
    response = client.post(
        "/api/v1/logs?source=api",
        content=body,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"] == 2
    db.expire_all()
    assert db.scalar(select(ErrorGroup.template).where(ErrorGroup.source == "api")) == (
        "disk full after <num> tries"
    )


def test_a_malformed_json_line_is_refused_naming_the_line_and_the_rest_count(
    client: TestClient, db: Session
) -> None:
    secret = token(db, ["intake"])
    body = '{"level": "error", "msg": "fine"}\n{"level": "error", "msg": oops}\n'
    response = client.post(
        "/api/v1/logs?source=api&format=json",
        content=body,
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"] == 1
    (refused,) = response.json()["refused"]
    assert refused["line"] == 2 and "malformed JSON" in refused["reason"]
    assert "column" in refused["reason"]
    db.expire_all()
    item = db.get(InboxItem, response.json()["inbox_id"])
    assert item is not None and item.outcome == "accepted"
    assert "line 2: malformed JSON" in (item.reason or "")
    assert item.body == body
    assert db.scalar(select(ErrorGroup.template).where(ErrorGroup.source == "api")) == "fine"


def test_a_batch_of_only_malformed_json_lines_gets_400_and_stays_in_the_inbox(
    client: TestClient, db: Session
) -> None:
    secret = token(db, ["intake"])
    body = '{"level": "error", "msg": oops}\n[1]\n'
    response = client.post(
        "/api/v1/logs?source=api&format=json",
        content=body,
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 400
    assert "line 1: malformed JSON" in response.json()["detail"]
    assert "line 2: a JSON line must be an object" in response.json()["detail"]
    db.expire_all()
    item = db.get(InboxItem, response.json()["inbox_id"])
    assert item is not None and item.outcome == "rejected" and "line 2" in (item.reason or "")
    assert item.body == body
    assert db.scalar(select(LogCount).where(LogCount.source == "api")) is None


def test_missing_source_unknown_format_and_unreadable_text_are_refused(
    client: TestClient, db: Session
) -> None:
    headers = {"Authorization": f"Bearer {token(db, ['intake'])}"}
    missing = client.post("/api/v1/logs", content=JAVA, headers=headers)
    assert missing.status_code == 400 and "source" in missing.json()["detail"]
    unknown = client.post("/api/v1/logs?source=x&format=cobol", content=JAVA, headers=headers)
    assert unknown.status_code == 400 and "unknown format 'cobol'" in unknown.json()["detail"]
    garbage = client.post("/api/v1/logs?source=x", content="hello\nworld\n", headers=headers)
    assert garbage.status_code == 400 and "cannot tell the format" in garbage.json()["detail"]
    binary = client.post("/api/v1/logs?source=x", content=b"\xff\xfe", headers=headers)
    assert binary.status_code == 400 and "cannot tell the format" in binary.json()["detail"]
    db.expire_all()
    reasons = list(db.scalars(select(InboxItem.reason).where(InboxItem.source == "logs")))
    assert len(reasons) == 4


def test_log_endpoint_needs_the_intake_scope(client: TestClient, db: Session) -> None:
    secret = token(db, ["read"])
    response = client.post(
        "/api/v1/logs?source=x", content=JAVA, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 403
