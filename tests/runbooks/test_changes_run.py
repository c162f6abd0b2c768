"""Running a change for real: two workers racing on one approved request execute it once (a
SQLite file and PostgreSQL, separate connections), and the signers' notice reaches a real
SMTP server with a link to the request."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.db import build_engine, session_factory, transaction
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.notify import service as notify
from dutydesk.runbooks import ChangeState, get_change, sign_off, submit_change
from dutydesk.runbooks.service import RUN_JOB
from tests.conftest import clear_caches, fresh_database_url
from tests.notify.conftest import mail_server  # noqa: F401 - the real SMTP server fixture
from tests.runbooks.changes_kit import EXECUTED, make_people, new_change


@pytest.fixture
def real_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own, migrated: the racing workers each use their own connection."""
    url = fresh_database_url(backend, tmp_path, "change_race")
    migrations.upgrade(url)
    engine = build_engine(url, pool_size=4)
    yield engine
    engine.dispose()


def test_two_workers_racing_on_one_approved_request_execute_it_once(
    real_engine: Engine,
) -> None:
    factory = session_factory(real_engine)
    with transaction(factory) as session:
        people = make_people(session)
        # The kind sleeps while it runs, so the second worker arrives while the first works.
        change = new_change(session, people.olga, sleep=0.3)
        submit_change(session, change, people.olga)
        sign_off(session, change, people.abe, data_version=1, evidence_hash=change.evidence_hash)
        assert change.state == ChangeState.approved
        # Two jobs for one request, as a re-sent or duplicated run would make.
        args = {"change_id": change.id, "data_version": 1}
        job_ids = [jobs.enqueue(session, RUN_JOB, args, dispatch=False).id for _ in range(2)]
        change_id = change.id
    EXECUTED.clear()
    start = threading.Barrier(2)
    ended: list[str] = []

    def worker(job_id: int, name: str) -> None:
        start.wait()
        ended.append(jobs.execute(job_id, name, factory))

    threads = [
        threading.Thread(target=worker, args=(job_id, f"w{n}")) for n, job_id in enumerate(job_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    executed = list(EXECUTED)
    assert executed == [(change_id, 1)], "the kind's execute ran exactly once"
    assert ended == ["succeeded", "succeeded"]
    with factory() as session:
        assert get_change(session, change_id).state == ChangeState.done
        results = sorted(str(j.result) for j in session.scalars(select(Job)))
        assert any(
            "claimed by another worker" in r or "is running" in r or "is done" in r for r in results
        ), results


def deliver_all(db: Session, factory: sessionmaker[Session]) -> list[str]:
    db.commit()
    now = dt.datetime.now(dt.UTC)
    return [notify.deliver(factory, i, now=now) for i in notify.due_deliveries(db, now=now)]


def test_the_approver_gets_a_mail_with_a_link_when_a_request_is_pending(
    db: Session,
    factory: sessionmaker[Session],
    mail_server: list[Message],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUTYDESK_BASE_URL", "https://desk.example.org")
    clear_caches()
    people = make_people(db)
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    assert set(deliver_all(db, factory)) == {"sent"}
    to_abe = [m for m in mail_server if m["X-Rcpt"] == "abe@desk.example"]
    assert len(to_abe) == 1
    assert "Signoff needed" in to_abe[0]["Subject"]
    text = to_abe[0].as_string()
    assert f"https://desk.example.org/changes/{change.id}" in text
    assert not [m for m in mail_server if m["X-Rcpt"] == "olga@desk.example"]


def test_two_last_signoffs_at_once_approve_the_request(real_engine: Engine) -> None:
    from dutydesk.runbooks import _rules
    from tests.runbooks.changes_kit import KIND

    factory = session_factory(real_engine)
    with transaction(factory) as session:
        people = make_people(session)
        _rules.set_rule(session, kind=KIND, role="approver", count=2)
        change = new_change(session, people.olga)
        submit_change(session, change, people.olga)
        change_id, digest = change.id, change.evidence_hash
    start = threading.Barrier(2)

    def sign(username: str) -> None:
        start.wait()
        with transaction(factory, immediate=True, actor=username) as session:
            from dutydesk.people.service import find_user

            change = get_change(session, change_id)
            sign_off(
                session, change, find_user(session, username), data_version=1, evidence_hash=digest
            )
            time.sleep(0.2)  # hold the transaction open while the other signs

    threads = [threading.Thread(target=sign, args=(name,)) for name in ("abe", "amy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with factory() as session:
        change = get_change(session, change_id)
        assert len(change.active_signoffs) == 2
        assert change.state == ChangeState.approved
