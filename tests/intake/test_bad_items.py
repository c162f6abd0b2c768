"""One bad item never fails its batch: each alert (or line) is judged alone, the good ones land,
a bad one is kept in the inbox with its reason, and no content gets a 5xx. Text neither
database can hold (NUL, lone surrogates, undecodable bytes) is stored as U+FFFD, the same on
SQLite and PostgreSQL, while the inbox keeps the body as it came."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.alarms.models import Alarm
from dutydesk.db import transaction
from dutydesk.intake import logs
from dutydesk.intake.mail import MailResult, receive_message
from dutydesk.intake.models import ErrorGroup, InboxItem, Ping
from dutydesk.people import service as people
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket, TicketNote
from tests.conftest import make_user, sign_in
from tests.intake.conftest import make_integration
from tests.tickets.conftest import add_person

JSON = {"content-type": "application/json"}
HUGE = "7" * 5000  # past Python's 4,300-digit int-str limit
DEEP = "[" * 5000 + "]" * 5000  # past Python's recursion limit


def alert(instance: str, fingerprint: str, **extra: object) -> dict[str, object]:
    """One firing alert of a webhook v4 body."""
    return {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"Disk full on {instance}"},
        "startsAt": "2026-11-24T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
        **extra,
    }


def webhook_text(*alerts: str) -> str:
    """A webhook v4 body around alerts given as JSON text (some not producible by json.dumps)."""
    return (
        '{"version": "4", "status": "firing", "groupKey": "{}:{alertname=\\"DiskFull\\"}", '
        f'"receiver": "desk", "alerts": [{", ".join(alerts)}]}}'
    )


def inbox_item(db: Session, item_id: int) -> InboxItem:
    db.expire_all()
    item = db.get(InboxItem, item_id)
    assert item is not None
    return item


def alarms_by_fingerprint(db: Session) -> dict[str, Alarm]:
    db.expire_all()
    return {alarm.fingerprint: alarm for alarm in db.scalars(select(Alarm))}


def test_bad_alerts_are_refused_alone_and_the_good_ones_land(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager", "am")
    huge = json.dumps(alert("db-3", "f3", annotations={"summary": "x"})).replace(
        '"summary": "x"', f'"summary": "x", "size": {HUGE}'
    )
    deep = json.dumps(alert("db-4", "f4", annotations={"summary": "y"})).replace(
        '"summary": "y"', f'"summary": "y", "trace": {DEEP}'
    )
    body = webhook_text(
        json.dumps(alert("db-1", "f1")),
        huge,
        deep,
        '"not an alert"',
        json.dumps(alert("db-2", "f2")),
    )
    answer = client.post(made.path or "", content=body, headers=JSON)

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["accepted"] == 2
    assert [(r["item"], r.get("fingerprint")) for r in result["refused"]] == [
        ("alerts[1]", "f3"),
        ("alerts[2]", "f4"),
        ("alerts[3]", None),
    ]
    assert "an integer of 5000 digits" in result["refused"][0]["reason"]
    assert "annotations.size" in result["refused"][0]["reason"]
    assert "nesting deeper than 64 levels" in result["refused"][1]["reason"]
    assert "annotations.trace" in result["refused"][1]["reason"]
    assert "must be an object" in result["refused"][2]["reason"]
    assert set(alarms_by_fingerprint(db)) == {"am:f1", "am:f2"}
    (ticket,) = db.scalars(select(Ticket))
    assert result["ticket_ids"] == [ticket.id]

    item = inbox_item(db, result["inbox_id"])
    assert (item.outcome, item.status_code) == ("accepted", 200)
    assert item.body == body, "the refused alerts are kept as they came"
    reason = item.reason or ""
    assert "alerts[1] (fingerprint f3): an integer of 5000 digits" in reason
    assert "alerts[2] (fingerprint f4): nesting deeper than 64 levels" in reason


def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(
    client: TestClient, db: Session, backend: str
) -> None:
    made = make_integration(db, "alertmanager", "am")
    surrogate = json.dumps(alert("db-\ud800", "f1"))  # json.dumps writes the escape \ud800
    nul = json.dumps(alert("db-2", "f\u00002", annotations={"summary": "Disk\u0000 full"}))
    assert "\\ud800" in surrogate and "\\u0000" in nul
    body = webhook_text(surrogate, nul, json.dumps(alert("db-3", "f3")))
    answer = client.post(made.path or "", content=body, headers=JSON)

    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3 and answer.json()["refused"] == []
    assert answer.json()["repaired"] == [
        "alerts[0].annotations.summary",
        "alerts[0].labels.instance",
        "alerts[1].annotations.summary",
        "alerts[1].fingerprint",
    ]
    alarms = alarms_by_fingerprint(db)
    # The same values on SQLite and PostgreSQL (this test runs on each `backend`).
    assert sorted(alarms) == ["am:f1", "am:f3", "am:f\ufffd2"], backend
    assert alarms["am:f1"].title == "Disk full on db-\ufffd"
    assert alarms["am:f1"].labels["instance"] == "db-\ufffd"
    assert alarms["am:f\ufffd2"].title == "Disk\ufffd full"
    item = inbox_item(db, answer.json()["inbox_id"])
    assert item.body == body
    assert "stored as U+FFFD at alerts[0].annotations.summary, alerts[0].labels" in (
        item.reason or ""
    )


def test_a_batch_whose_every_alert_is_bad_gets_422_listing_them(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager")
    body = webhook_text(f'{{"fingerprint": "f1", "labels": {{"n": {HUGE}}}}}', "17")
    answer = client.post(made.path or "", content=body, headers=JSON)
    assert answer.status_code == 422
    assert [r["item"] for r in answer.json()["refused"]] == ["alerts[0]", "alerts[1]"]
    item = inbox_item(db, answer.json()["inbox_id"])
    assert item.outcome == "rejected" and "alerts[0] (fingerprint f1)" in (item.reason or "")
    assert db.scalar(select(Alarm)) is None


def test_a_body_nested_too_deep_to_read_at_all_gets_400_and_is_kept(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager")
    body = '{"alerts": [' + "[" * 5000  # never closed: no part of it can be read
    answer = client.post(made.path or "", content=body, headers=JSON)
    assert answer.status_code == 400
    item = inbox_item(db, answer.json()["inbox_id"])
    assert item.outcome == "rejected" and item.body == body
    assert (item.reason or "").startswith("JSON nested too deeply to read")


def test_generic_and_oncall_alerts_with_bad_values_are_never_a_5xx(
    client: TestClient, db: Session
) -> None:
    generic = make_integration(db, "generic", "apps")
    oncall = make_integration(db, "oncall", "grafana")
    fired = client.post(
        generic.path or "",
        content='{"title": "Queue\\u0000 stuck", "labels": {"svc\\udc80": "w\\ud83d"}}',
        headers=JSON,
    )
    assert fired.status_code == 202, fired.text
    assert fired.json()["repaired"] == ["labels.svc\ufffd", "title"]
    alarm = db.get(Alarm, fired.json()["alert_id"])
    assert alarm is not None
    db.refresh(alarm)
    assert alarm.title == "Queue\ufffd stuck" and alarm.labels == {"svc\ufffd": "w\ufffd"}

    huge = client.post(
        generic.path or "", content=f'{{"title": "t", "count": {HUGE}}}', headers=JSON
    )
    assert huge.status_code == 422
    assert "an integer of 5000 digits, too long to read at count" in huge.json()["detail"]
    deep = client.post(oncall.path or "", content=f'{{"title": "t", "x": {DEEP}}}', headers=JSON)
    assert deep.status_code == 422 and "nesting deeper than 64" in deep.json()["detail"]
    for answer in (huge, deep):
        item = inbox_item(db, answer.json()["inbox_id"])
        assert item.outcome == "rejected" and item.reason == answer.json()["detail"]
    good = client.post(oncall.path or "", json={"title": "Latency", "state": "alerting"})
    assert good.status_code == 202


def test_ci_events_with_bad_values_are_never_a_5xx(client: TestClient, db: Session) -> None:
    made = make_integration(db, "ci")
    failed = client.post(
        made.path or "",
        content='{"pipeline": "night\\u0000ly", "status": "failed", "branch": "m\\udfffain"}',
        headers=JSON,
    )
    assert failed.status_code == 200, failed.text
    (alarm,) = alarms_by_fingerprint(db).values()
    assert alarm.title == "CI failed: night\ufffdly on m\ufffdain"
    deep = client.post(
        made.path or "",
        content=f'{{"pipeline": "p", "status": "failed", "extra": {DEEP}}}',
        headers=JSON,
    )
    assert deep.status_code == 422 and "nesting deeper than 64 levels at extra" in deep.text


def test_ping_bodies_with_nul_and_undecodable_bytes_are_stored(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "heartbeat", "backup")
    output = b"pg_dump: \x00 bad \xff\xfe byte"
    answer = client.post(f"{made.path}/1", params={"rid": "r\x00"}, content=output)
    assert answer.status_code == 200, answer.text
    db.expire_all()
    (ping,) = db.scalars(select(Ping))
    assert ping.body == "pg_dump: \ufffd bad \ufffd\ufffd byte"
    (alarm,) = alarms_by_fingerprint(db).values()
    assert "pg_dump: \ufffd bad" in alarm.description
    item = db.scalar(select(InboxItem))
    assert item is not None and item.outcome == "accepted"
    assert item.body == "pg_dump: \ufffd bad \ufffd\ufffd byte" and item.raw_body == output
    sign_in(client, db, make_user(db, "viewer"))
    shown = client.get(f"/api/v1/inbox/{item.id}").json()
    assert base64.b64decode(shown["raw_body_base64"]) == output
    exact = client.post(made.path or "", content="all good \ufffd".encode())
    assert exact.status_code == 200
    db.expire_all()
    latest = db.scalar(select(InboxItem).order_by(InboxItem.id.desc()).limit(1))
    assert latest is not None and latest.raw_body is None, "its text is the body exactly"


def log_token(db: Session) -> str:
    made = people.create_token(db, "shipper", ["intake"])
    db.commit()
    return made.secret


def test_bad_log_lines_are_refused_alone_and_the_rest_counted(
    client: TestClient, db: Session
) -> None:
    lines = [
        '{"level": "error", "msg": "disk full on db-1"}',
        '{"level": "error", "msg": oops}',
        f'{{"level": "error", "msg": "big", "n": {HUGE}}}',
        f'{{"level": "error", "msg": "deep", "trace": {DEEP}}}',
        '{"level": "error", "msg": "nul\\u0000 and \\ud800 in text"}',
    ]
    body = "\n".join(lines) + "\n"
    answer = client.post(
        "/api/v1/logs?source=api&format=json",
        content=body,
        headers={"Authorization": f"Bearer {log_token(db)}"},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["events"] == 2 and result["refused_count"] == 3
    assert [r["line"] for r in result["refused"]] == [2, 3, 4]
    assert "Exceeds the limit (4300 digits)" in result["refused"][1]["reason"]
    assert "nested too deeply" in result["refused"][2]["reason"]
    db.expire_all()
    templates = set(db.scalars(select(ErrorGroup.template).where(ErrorGroup.source == "api")))
    assert templates == {"disk full on db-<num>", "nul\ufffd and \ufffd in text"}
    item = inbox_item(db, result["inbox_id"])
    assert item.outcome == "accepted" and item.body == body
    assert "refused lines: line 2: malformed JSON" in (item.reason or "")
    assert "line 4: JSON nested too deeply" in (item.reason or "")


def test_log_lines_with_nul_and_undecodable_bytes_are_counted_as_u_fffd(
    client: TestClient, db: Session
) -> None:
    body = (
        b"2026-11-24 12:01:02,123 ERROR [main] org.x.Worker - Timeout \x00 for id 42\n"
        b"2026-11-24 12:01:03,123 ERROR [main] org.x.Worker - Bad byte \xff here\n"
        b"2026-11-24 12:01:04,123 INFO [main] org.x.Worker - fine\n"
    )
    answer = client.post(
        "/api/v1/logs?source=bridge",
        content=body,
        headers={"Authorization": f"Bearer {log_token(db)}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == 3 and answer.json()["repaired_lines"] == [1, 2]
    db.expire_all()
    groups = {g.template: g for g in db.scalars(select(ErrorGroup))}
    assert set(groups) == {"Timeout \ufffd for id <num>", "Bad byte \ufffd here"}
    assert "\ufffd for id 42" in groups["Timeout \ufffd for id <num>"].last_sample
    item = inbox_item(db, answer.json()["inbox_id"])
    assert "stored as U+FFFD on lines 1, 2" in (item.reason or "")


def mailed(factory: sessionmaker[Session], raw: bytes, sender: str) -> MailResult:
    """What the SMTP listener answers for `raw` from `sender` to the alerts address."""
    with transaction(factory, actor="smtp") as session:
        return receive_message(
            session,
            raw,
            source="smtp",
            peer="127.0.0.1",
            mail_from=sender,
            recipients=["alerts@desk.example"],
            limit=1_000_000,
        )


def test_mail_with_nul_and_undecodable_bytes_becomes_an_alarm(
    db: Session, factory: sessionmaker[Session]
) -> None:
    make_integration(db, "email", "alerts")
    raw = (
        b"From: cron@db-1.example\r\nTo: alerts@desk.example\r\n"
        b"Subject: Backup \xff\xfe failed\x00 at 02:00\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"pg_dump \x00 exited \xff with 1\r\n"
    )
    unknown_charset = (
        b"From: cron@db-1.example\r\nTo: alerts@desk.example\r\nSubject: Disk full\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nroot at 99%\r\n"
    )
    replies = []
    for message in (raw, unknown_charset):
        result = mailed(factory, message, "cron@db-1.example")
        replies.append(result.reply)
    assert replies == ["250 OK", "250 OK"]
    db.expire_all()
    alarms = {alarm.title: alarm for alarm in db.scalars(select(Alarm))}
    assert set(alarms) == {"Backup \ufffd\ufffd failed\ufffd at 02:00", "Disk full"}
    assert alarms["Backup \ufffd\ufffd failed\ufffd at 02:00"].description == (
        "pg_dump \ufffd exited \ufffd with 1\r\n"
    )
    assert alarms["Disk full"].description.startswith("root at 99%")
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [item.outcome for item in items] == ["accepted", "accepted"]
    assert items[0].headers["subject"] == "Backup \ufffd\ufffd failed\ufffd at 02:00"


def test_a_reply_with_nul_in_its_text_becomes_a_note(
    db: Session, factory: sessionmaker[Session]
) -> None:
    add_person(db, "olga", "operator", "olga@desk.example")
    ticket = tickets.create_ticket(db, title="Disk full", actor="test").ticket
    assert ticket is not None
    db.commit()
    raw = (
        f"From: Olga <olga@desk.example>\r\nTo: alerts@desk.example\r\n"
        f"Subject: Re: [{ticket.key}] Disk full\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + b"Cleaned \x00 the WAL archive.\r\n"
    result = mailed(factory, raw, "olga@desk.example")
    assert result.reply == "250 OK: noted on the ticket"
    db.expire_all()
    (note,) = db.scalars(select(TicketNote))
    assert note.body == "Cleaned \ufffd the WAL archive."


def test_a_reply_in_an_unknown_charset_is_refused_and_kept(
    db: Session, factory: sessionmaker[Session]
) -> None:
    add_person(db, "olga", "operator", "olga@desk.example")
    ticket = tickets.create_ticket(db, title="Disk full", actor="test").ticket
    assert ticket is not None
    db.commit()
    raw = (
        f"From: olga@desk.example\r\nTo: alerts@desk.example\r\n"
        f"Subject: Re: [{ticket.key}] Disk full\r\n"
        "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nDone.\r\n"
    ).encode()
    result = mailed(factory, raw, "olga@desk.example")
    assert result.reply.startswith("550 ") and "cannot be read" in result.reply
    item = inbox_item(db, result.item_id)
    assert item.outcome == "rejected" and "x-no-such-charset" in (item.reason or "")


def test_a_surrogate_sent_as_utf8_bytes_is_repaired_like_its_escape(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "generic")
    body = b'{"title": "raw \xed\xa0\x80 surrogate"}'  # json reads bytes with surrogatepass
    answer = client.post(made.path or "", content=body, headers=JSON)
    assert answer.status_code == 202, answer.text
    assert answer.json()["repaired"] == ["title"]
    alarm = db.get(Alarm, answer.json()["alert_id"])
    assert alarm is not None and alarm.title == "raw \ufffd surrogate"
    item = inbox_item(db, answer.json()["inbox_id"])
    assert item.raw_body == body and "\ufffd" in item.body


def test_an_archive_file_with_nul_and_undecodable_bytes_is_counted(
    db: Session, tmp_path: Path
) -> None:
    path = tmp_path / "worker.log"
    path.write_bytes(
        b"2026-11-24 12:01:02,123 ERROR [main] org.x.Worker - Lost \x00 row \xff in batch 7\n"
    )
    counted = logs.scan_file(db, "bridge", path, now=dt.datetime(2026, 11, 24, 13, tzinfo=dt.UTC))
    db.flush()
    assert counted["events"] == 1
    (group,) = db.scalars(select(ErrorGroup).where(ErrorGroup.source == "bridge"))
    assert group.template == "Lost \ufffd row \ufffd in batch <num>"


def test_a_mail_nested_past_the_parsers_limit_is_refused_and_kept(
    db: Session, factory: sessionmaker[Session]
) -> None:
    make_integration(db, "email", "alerts")
    raw = b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level - 1, level)
        for level in range(1, 3000)
    )
    result = mailed(factory, raw, "cron@db-1.example")
    assert result.reply == "550 5.6.0 the message's MIME parts are nested too deeply to read"
    item = inbox_item(db, result.item_id)
    assert item.outcome == "rejected" and item.body.encode() == raw
    assert db.scalar(select(Alarm)) is None


def test_github_and_gitlab_events_with_bad_values_are_never_a_5xx(
    client: TestClient, db: Session
) -> None:
    github = make_integration(db, "github", signing_secret="gh-secret")
    run = {"name": "tests", "head_branch": "ma\udc00in", "conclusion": "failure"}
    failure = json.dumps(
        {"action": "completed", "workflow_run": run, "repository": {"full_name": "acme/x"}}
    ).encode()
    digest = hmac.new(b"gh-secret", failure, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "workflow_run"}
    answer = client.post(github.path or "", content=failure, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["repaired"] == ["workflow_run.head_branch"]
    (alarm,) = alarms_by_fingerprint(db).values()
    assert alarm.title == "CI failed: acme/x tests on ma\ufffdin"

    gitlab = make_integration(db, "gitlab", signing_secret="gl-secret")
    deep = (
        f'{{"object_kind": "pipeline", "object_attributes": {{"status": "failed"}}, "x": {DEEP}}}'
    )
    refused = client.post(gitlab.path or "", content=deep, headers={"X-Gitlab-Token": "gl-secret"})
    assert refused.status_code == 422 and "nesting deeper than 64 levels at x" in refused.text
    assert inbox_item(db, refused.json()["inbox_id"]).outcome == "rejected"


def test_an_answer_lists_the_first_hundred_refused_alerts_and_counts_them_all(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "alertmanager")
    body = webhook_text(json.dumps(alert("db-1", "f1")), *(["17"] * 150))
    answer = client.post(made.path or "", content=body, headers=JSON)
    assert answer.status_code == 200
    assert answer.json()["refused_count"] == 150 and len(answer.json()["refused"]) == 100
    assert answer.json()["refused"][-1]["item"] == "alerts[100]"
    reason = inbox_item(db, answer.json()["inbox_id"]).reason or ""
    assert reason.startswith("refused alerts[1]: an alert must be an object, not int")
