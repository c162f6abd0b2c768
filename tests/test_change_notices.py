"""Change notices: a high-risk change is mailed at once to the change-notice list (a real SMTP
server), a low-risk one only in the daily digest, sent once; secrets never appear."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.audit import notices
from dutydesk.audit.models import AuditEvent, ChangeDigest, ChangeNotice
from dutydesk.db import build_engine, transaction, utcnow
from dutydesk.intake import service as intake
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.notify import service as notify
from dutydesk.notify.jobs import deliver_due_job
from dutydesk.notify.models import Delivery
from dutydesk.people import service as people
from dutydesk.people.models import Role, User
from tests.conftest import clear_caches, fresh_database_url, make_user, sign_in
from tests.notify.conftest import mail_server  # noqa: F401 - the real SMTP server fixture

LIST_ADDRESS = "changes@desk.example"


@pytest.fixture
def notice_list(monkeypatch: pytest.MonkeyPatch, mail_server: list[Message]) -> str:  # noqa: F811
    """Change notices go to the contact list 'change-watchers' (made by each test)."""
    monkeypatch.setenv("DUTYDESK_CHANGE_NOTICE_LIST", "change-watchers")
    monkeypatch.setenv("DUTYDESK_MAIL_FROM", "desk@desk.example")
    clear_caches()
    return "change-watchers"


def make_list(db: Session) -> None:
    notify.create_contact_list(db, name="change-watchers", members=[LIST_ADDRESS])
    db.commit()


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def everything_said(inbox: list[Message]) -> str:
    return "\n".join(f"{m['Subject']}\n{body(m)}" for m in inbox)


def test_a_role_change_sends_a_change_notice_with_the_diff_to_the_lists_address(
    notice_list: str,
    mail_server: list[Message],  # noqa: F811
    db: Session,
    factory: sessionmaker[Session],
    client: TestClient,
) -> None:
    make_list(db)
    admin = make_user(db, Role.admin, "root")
    ana = make_user(db, Role.operator, "ana")
    csrf = sign_in(client, db, admin)
    last_job = db.scalar(select(func.max(Job.id))) or 0

    answer = client.post(
        f"/users/{ana.id}", data={"role": "approver", "active": "true", "csrf_token": csrf}
    )
    assert answer.status_code == 303

    # The request's commit queued the job that tells the list; a worker runs it.
    job = db.scalars(select(Job).where(Job.id > last_job)).one()
    assert job.kind == "audit.change_notices"
    assert jobs.execute(job.id, "worker-1", factory) == "succeeded"
    role_mails = [m for m in mail_server if "role" in str(m["Subject"])]
    assert len(role_mails) == 1
    mail = role_mails[0]
    assert mail["To"] == LIST_ADDRESS
    assert mail["Subject"] == f"[dutydesk change] root changed users {ana.id} (ana): role"
    text = body(mail)
    assert "role: operator → approver" in text
    assert "Who: root" in text
    assert "Risk: high" in text
    assert "/change-notices" in text
    # The users made for the test are high-risk changes too; no notice shows a password hash.
    hashes = db.scalars(select(User.password_hash)).all()
    assert all(h not in everything_said(mail_server) for h in hashes)
    assert "argon2" not in everything_said(mail_server)

    # Neither the job run again nor the tick sends it twice.
    sent = len(mail_server)
    jobs.tick(factory)
    db.expire_all()
    for again in db.scalars(select(Job).where(Job.state == "queued")).all():
        jobs.execute(again.id, "worker-2", factory)
    assert len(mail_server) == sent

    listed = client.get("/api/v1/change-notices", params={"object_type": "users"}).json()
    role_row = next(row for row in listed if row["summary"].endswith(": role"))
    assert (role_row["risk"], role_row["told"], role_row["status"]) == (
        "high",
        "at_once",
        "sent at once",
    )
    assert {"field": "role", "before": "operator", "after": "approver", "hidden": ""} in (
        role_row["changes"]
    )


def test_a_change_that_is_rolled_back_queues_no_job_and_is_never_told(
    notice_list: str,
    mail_server: list[Message],  # noqa: F811
    db: Session,
    factory: sessionmaker[Session],
) -> None:
    make_list(db)
    ana = make_user(db, Role.operator, "ana")
    notices.record_notices(db)
    deliver_due_job(db, {})
    db.commit()
    before = len(mail_server)
    last_job = db.scalar(select(func.max(Job.id))) or 0

    ana.role = Role.admin.value
    db.flush()
    db.rollback()

    assert db.scalars(select(Job).where(Job.id > last_job)).all() == []
    assert notices.record_notices(db) == {"at_once": 0, "digest": 0, "none": 0}
    deliver_due_job(db, {})
    assert len(mail_server) == before


def test_a_cosmetic_change_goes_only_into_the_daily_digest_which_is_sent_once(
    notice_list: str,
    mail_server: list[Message],  # noqa: F811
    db: Session,
    factory: sessionmaker[Session],
) -> None:
    make_list(db)
    notify.create_contact_list(db, name="downtime", members=["users@study.example"])
    db.commit()
    jobs.tick(factory)  # records both lists' creation (low risk) and sends what is due
    deliver_due_job(db, {})
    assert mail_server == []  # nothing at once
    db.expire_all()
    waiting = db.scalars(select(ChangeNotice).where(ChangeNotice.risk == "low")).all()
    assert {n.told for n in waiting} == {"digest"} and len(waiting) == 2
    assert all(n.digest_day is None for n in waiting)

    # Tomorrow the tick sends today's digest. A tick that crashes while building it leaves
    # no trace; ticks that run again send nothing twice.
    tomorrow = utcnow() + dt.timedelta(days=1)
    today = utcnow().date()
    with pytest.raises(RuntimeError), db.begin_nested():
        assert notices.send_digest(db, now=tomorrow) is not None
        raise RuntimeError("the tick died before committing")
    assert db.get(ChangeDigest, today) is None
    digest = notices.send_digest(db, now=tomorrow)
    db.commit()
    assert digest is not None and digest.changes == 2
    assert notices.send_digest(db, now=tomorrow) is None
    assert notices.send_digest(db, now=tomorrow + dt.timedelta(hours=3)) is None
    db.commit()
    deliver_due_job(db, {})
    deliver_due_job(db, {})

    assert len(mail_server) == 1
    mail = mail_server[0]
    assert mail["To"] == LIST_ADDRESS
    assert mail["Subject"] == f"[dutydesk changes] digest of {today.isoformat()}: 2 change(s)"
    assert "created contact_lists" in body(mail) and "(downtime)" in body(mail)
    db.expire_all()
    statuses = {
        notices.status_of(n, notices.delivery_states(db, [f"change-digest:{today}"]))
        for n in db.scalars(select(ChangeNotice)).all()
    }
    assert statuses == {f"in digest of {today.isoformat()}"}


def test_secrets_never_appear_in_a_notice_the_digest_or_the_api(
    notice_list: str,
    mail_server: list[Message],  # noqa: F811
    db: Session,
    factory: sessionmaker[Session],
    client: TestClient,
) -> None:
    make_list(db)
    viewer = make_user(db, Role.viewer, "vic")
    made = intake.create_integration(
        db, name="ci", kind="github", actor="test", signing_secret="hook-signing-secret-42"
    )
    rotated = intake.rotate_token(db, made.integration)
    token = people.create_token(db, "robot", ["read"])
    notify.create_channel(
        db, name="ops-chat", url="https://hooks.slack.com/services/T000/B000/chat-secret-77"
    )
    db.commit()
    jobs.tick(factory)
    deliver_due_job(db, {})
    jobs.tick(factory)
    notices.send_digest(db, now=utcnow() + dt.timedelta(days=1))
    db.commit()
    deliver_due_job(db, {})

    said = everything_said(mail_server)
    assert "changed integrations" in said and "token_hash: changed (secret, not shown)" in said
    sign_in(client, db, viewer)
    api = client.get("/api/v1/change-notices", params={"limit": 500}).text
    page = client.get("/change-notices").text
    secrets = [
        "hook-signing-secret-42",
        made.token,
        rotated.token,
        people.sha256(made.token),
        people.sha256(rotated.token),
        token.secret,
        people.sha256(token.secret),
        "chat-secret-77",
        *db.scalars(select(User.password_hash)),
    ]
    for secret in secrets:
        assert secret not in said
        assert secret not in api
        assert secret not in page


def test_the_risk_table_rates_permissions_and_rules_high_and_the_rest_low() -> None:
    for table in ("users", "api_tokens", "signoff_rules", "alarm_rules", "silences"):
        assert notices.risk_of(table) is notices.Risk.high
    for table in ("integrations", "notify_channels", "escalation_policies", "db_change_targets"):
        assert notices.risk_of(table) is notices.Risk.high
    for table in ("contact_lists", "export_schedules", "log_sources", "rotations"):
        assert notices.risk_of(table) is notices.Risk.low


def test_without_a_list_changes_are_listed_as_not_sent(
    db: Session, factory: sessionmaker[Session], client: TestClient
) -> None:
    viewer = make_user(db, Role.viewer, "vic")
    jobs.tick(factory)
    assert db.scalars(select(Job).where(Job.kind == "audit.change_notices")).all() == []
    sign_in(client, db, viewer)
    rows = client.get("/api/v1/change-notices").json()
    assert [(r["summary"], r["told"], r["status"]) for r in rows] == [
        (
            f"test created users {viewer.id} (vic)",
            "none",
            "not sent: DUTYDESK_CHANGE_NOTICE_LIST is empty",
        )
    ]


def test_viewers_and_read_tokens_may_read_change_notices_others_may_not(
    db: Session, factory: sessionmaker[Session], client: TestClient
) -> None:
    viewer = make_user(db, Role.viewer, "vic")
    read = people.create_token(db, "reader", ["read"]).secret
    intake_only = people.create_token(db, "hook", ["intake"]).secret
    db.commit()
    jobs.tick(factory)

    assert client.get("/api/v1/change-notices").status_code == 401
    page = client.get("/change-notices")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    bearer = {"Authorization": f"Bearer {read}"}
    assert client.get("/api/v1/change-notices", headers=bearer).status_code == 200
    refused = client.get(
        "/api/v1/change-notices", headers={"Authorization": f"Bearer {intake_only}"}
    )
    assert refused.status_code == 403

    sign_in(client, db, viewer)
    page = client.get("/change-notices", params={"risk": "high"})
    assert page.status_code == 200 and "created users" in page.text
    assert "created api_tokens" in page.text
    assert client.get("/change-notices", params={"risk": "low"}).text.count("<tr data-risk") == 0
    assert client.get("/api/v1/change-notices", params={"risk": "medium"}).status_code == 422
    assert client.get("/api/v1/change-notices", params={"since": "yesterday"}).status_code == 422
    both = client.get("/api/v1/change-notices", params={"actor": "test"}).json()
    assert {r["object_type"] for r in both} == {"users", "api_tokens"}
    later = (utcnow() + dt.timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/change-notices", params={"since": later}).json() == []
    paged = client.get("/api/v1/change-notices", params={"limit": 1, "offset": 1}).json()
    assert len(paged) == 1 and paged[0]["id"] == both[1]["id"]


def test_recording_twice_records_each_change_once(db: Session) -> None:
    make_user(db, Role.operator, "ana")
    first = notices.record_notices(db)
    assert first["none"] == 1
    assert notices.record_notices(db) == {"at_once": 0, "digest": 0, "none": 0}
    audit_ids = db.scalars(select(AuditEvent.id)).all()
    assert len(db.scalars(select(ChangeNotice)).all()) == len(audit_ids)


def test_a_committed_change_whose_job_never_ran_is_still_told_by_the_next_tick(
    notice_list: str,
    mail_server: list[Message],  # noqa: F811
    db: Session,
    factory: sessionmaker[Session],
) -> None:
    make_list(db)
    token = people.create_token(db, "deploy-bot", ["write"])
    db.commit()
    # The job queued by that commit is lost (its worker died with it, say); beat ticks on.
    db.execute(delete(Job))
    db.commit()

    jobs.tick(factory)
    deliver = db.scalars(select(Job).where(Job.kind == "notify.deliver_due")).one()
    assert jobs.execute(deliver.id, "worker-1", factory) == "succeeded"

    assert [m["Subject"] for m in mail_server] == [
        f"[dutydesk change] test created api_tokens {token.token.id} (deploy-bot)"
    ]
    assert 'scopes: ["write"]' in body(mail_server[0])
    assert "token_hash: set (secret, not shown)" in body(mail_server[0])


def test_ticks_on_the_next_day_send_the_digest_once(
    notice_list: str,
    mail_server: list[Message],  # noqa: F811
    db: Session,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_list(db)
    jobs.tick(factory)
    assert db.scalars(select(ChangeNotice.told)).all() == ["digest"]

    tomorrow = utcnow() + dt.timedelta(days=1)
    monkeypatch.setattr(notices, "utcnow", lambda: tomorrow)  # the clock moves to tomorrow
    jobs.tick(factory)
    jobs.tick(factory)
    db.expire_all()
    for job in db.scalars(select(Job).where(Job.kind == "notify.deliver_due")).all():
        jobs.execute(job.id, "worker-1", factory)
        jobs.execute(job.id, "worker-2", factory)

    assert [m["Subject"] for m in mail_server] == [
        f"[dutydesk changes] digest of {(tomorrow - dt.timedelta(days=1)).date()}: 1 change(s)"
    ]
    assert len(db.scalars(select(ChangeDigest)).all()) == 1


def test_the_filter_form_as_a_browser_sends_it_is_accepted(
    db: Session, factory: sessionmaker[Session], client: TestClient
) -> None:
    viewer = make_user(db, Role.viewer, "vic")
    jobs.tick(factory)
    sign_in(client, db, viewer)
    blank = {"risk": "", "object_type": "", "actor": "", "since": "", "until": ""}
    assert "created users" in client.get("/change-notices", params=blank).text
    today = utcnow().strftime("%Y-%m-%d")
    chosen = {**blank, "risk": "high", "since": f"{today} 00:00", "actor": "test"}
    page = client.get("/change-notices", params=chosen)
    assert page.status_code == 200 and "created users" in page.text
    bad = client.get("/change-notices", params={**blank, "since": "last week"})
    assert bad.status_code == 422 and "since" in bad.text


def test_two_recorders_at_once_tell_each_change_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers (their own connections, committing for real) record the same changes and
    build the same digest at the same moment: one notice per change, one digest, no delivery
    twice."""
    monkeypatch.setenv("DUTYDESK_CHANGE_NOTICE_LIST", "change-watchers")
    clear_caches()
    url = fresh_database_url(backend, tmp_path, "notices_race")
    migrations.upgrade(url)
    engine = build_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        with transaction(factory, actor="test") as session:
            notify.create_contact_list(session, name="change-watchers", members=[LIST_ADDRESS])
            for name in ("ana", "ben", "cy"):
                people.add_user(session, name, "operator", email=None, password="x" * 12)
        tomorrow = utcnow() + dt.timedelta(days=1)
        start = threading.Barrier(2)

        def record() -> None:
            start.wait()
            with transaction(factory, immediate=True, actor="worker") as session:
                notices.record_notices(session)
            with transaction(factory, immediate=True, actor="worker") as session:
                notices.send_digest(session, now=tomorrow)

        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(record), pool.submit(record)]:
                done.result()

        with factory() as session:
            changes = session.scalars(select(AuditEvent.id)).all()
            told = session.scalars(select(ChangeNotice.audit_event_id)).all()
            assert sorted(told) == sorted(changes) and len(changes) == 4
            subjects = session.scalars(select(Delivery.subject).order_by(Delivery.subject)).all()
            assert subjects == sorted(
                [
                    *(
                        f"audit:{n.audit_event_id}"
                        for n in session.scalars(
                            select(ChangeNotice).where(ChangeNotice.risk == "high")
                        )
                    ),
                    f"change-digest:{utcnow().date().isoformat()}",
                ]
            )
            assert len(session.scalars(select(ChangeDigest)).all()) == 1
    finally:
        engine.dispose()
