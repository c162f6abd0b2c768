"""Diagnosing a service: the checklist's lines with verdicts and evidence, a real PostgreSQL
lock wait in the database line, unreachable sources as unknown, the note on the ticket, and
`dutydesk diagnose run` on the demo service."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from dutydesk import migrations, registry
from dutydesk.cli import app
from dutydesk.db import build_engine, transaction, utcnow
from dutydesk.diagnose import checks, service, services
from dutydesk.diagnose._service_models import Diagnosis
from dutydesk.diagnose.checks import Verdict
from dutydesk.diagnose.demo import seed_diagnose
from dutydesk.runbooks.dbchange._crypto import decrypt_password
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import TicketNote
from tests.conftest import POSTGRES_URL, fresh_database_url, fresh_postgres_database
from tests.diagnose.conftest import event, make_project


def line(lines: list[checks.Line], key: str) -> checks.Line:
    return next(item for item in lines if item.key == key)


def texts(found: checks.Line) -> str:
    return "\n".join(item.text for item in found.evidence)


@pytest.fixture
def throwaway_postgres() -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("needs DUTYDESK_TEST_POSTGRES_URL")
    url = fresh_postgres_database("dd_diagnose_locks_" + re.sub(r"\W", "", str(time.time_ns())))
    yield url
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_lock_wait_made_on_a_real_postgresql_fails_the_database_line(
    db: Session, throwaway_postgres: str
) -> None:
    plain = throwaway_postgres.replace("postgresql+psycopg", "postgresql")
    made = services.create_service(
        db,
        {"name": "shop", "databases": [{"name": "main", "url": plain}], "checklist": ["database"]},
        actor="test",
    )
    holder = psycopg.connect(plain)
    holder.execute("CREATE TABLE stock (id int PRIMARY KEY, amount int)")
    holder.execute("INSERT INTO stock VALUES (1, 5)")
    holder.commit()
    holder.execute("UPDATE stock SET amount = 4 WHERE id = 1")  # holds the row lock
    holder_pid = holder.info.backend_pid
    waiter = psycopg.connect(plain)
    waiter_pid = waiter.info.backend_pid
    blocked = threading.Thread(
        target=lambda: waiter.execute("UPDATE stock SET amount = 3 WHERE id = 1")
    )
    blocked.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            found = line(checks.run_checklist(db, made), "database")
            if found.verdict is Verdict.failing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        holder.rollback()
        blocked.join(10)
        waiter.rollback()
        holder.close()
        waiter.close()
    assert found.verdict is Verdict.failing, texts(found)
    evidence = texts(found)
    assert f"main: lock wait: pid {waiter_pid} blocked by pid {holder_pid}" in evidence
    assert "UPDATE stock SET amount = 3" in evidence
    assert re.search(r"main: connections \d+ of \d+ \(.*active", evidence)
    assert "main: no replication" in evidence


def test_unreachable_sources_say_unknown_and_why_and_the_run_goes_on(db: Session) -> None:
    made = services.create_service(
        db,
        {
            "name": "shop",
            "hosts": ["shop-vm1"],
            "databases": [{"name": "main", "url": "postgresql://app:s3cret@127.0.0.1:1/shop"}],
            "supervisors": [{"server": "shop-primary", "processes": ["web:web"]}],
        },
        actor="test",
    )
    lines = checks.run_checklist(db, made)
    assert [item.key for item in lines] == list(services.DEFAULT_CHECKLIST)
    database = line(lines, "database")
    assert database.verdict is Verdict.unknown
    assert "main: cannot connect to postgresql://app@127.0.0.1:1/shop" in texts(database)
    assert "Connection refused" in texts(database)
    assert "s3cret" not in texts(database)
    instances = line(lines, "instances")
    assert instances.verdict is Verdict.unknown
    assert "shop-primary" in texts(instances)
    host = line(lines, "host_load")
    assert host.verdict is Verdict.unknown and "shop-vm1" in texts(host)
    assert line(lines, "exceptions").verdict is Verdict.unknown
    assert line(lines, "changes").verdict is Verdict.ok


def test_the_database_password_is_kept_encrypted_apart_from_the_description(db: Session) -> None:
    made = services.create_service(
        db,
        {"name": "shop", "databases": [{"name": "main", "url": "postgresql://app:s3cret@db/shop"}]},
        actor="test",
    )
    assert "s3cret" not in str(made.config)
    assert made.config["databases"] == [
        {"name": "main", "url": "postgresql://db/shop", "user": "app"}
    ]
    assert made.db_passwords["main"] != "s3cret"
    assert decrypt_password(made.db_passwords["main"]) == "s3cret"
    (login,) = services.database_logins(made)
    assert login.login.password == "s3cret" and login.login.url.username == "app"


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ({"name": "Shop!"}, "name must be"),
        ({"name": "shop", "checklist": ["vibes"]}, "unknown checklist lines: vibes"),
        ({"name": "shop", "databases": [{"url": "mysql+pymysql://db/x"}]}, "only PostgreSQL"),
        ({"name": "shop", "colour": "red"}, "unknown keys: colour"),
        ({"name": "shop", "hosts": "vm1"}, "hosts must be a list"),
    ],
)
def test_a_bad_description_is_refused_naming_what_is_wrong(
    db: Session, description: dict[str, object], message: str
) -> None:
    with pytest.raises(service.DiagnoseError, match=message):
        services.create_service(db, description, actor="test")


def test_exceptions_new_since_the_last_release_and_recent_changes_show_with_links(
    db: Session,
) -> None:
    project = make_project(db, "shop-web")
    service.take_event(db, project, event(release="shop@1"), service.Landed())
    service.take_event(db, project, event(release="shop@2"), service.Landed())
    service.take_event(
        db,
        project,
        event("KeyError", "sku", "raise KeyError(sku)", release="shop@2"),
        service.Landed(),
    )
    made = services.create_service(
        db, {"name": "shop", "projects": ["shop-web", "gone"]}, actor="test"
    )
    found = line(checks.run_checklist(db, made), "exceptions")
    assert found.verdict is Verdict.unusual
    assert "no exception project named gone" in texts(found)
    assert "shop-web: 2 group(s) seen in 24 h, 1 new since release shop@2" in texts(found)
    fresh = [item for item in found.evidence if item.text.startswith("NEW since last release")]
    assert len(fresh) == 1 and "KeyError" in fresh[0].text
    assert fresh[0].link is not None and re.fullmatch(r"/exceptions/\d+", fresh[0].link)


def test_a_diagnosis_for_a_ticket_is_kept_as_its_note(db: Session) -> None:
    made = services.create_service(
        db, {"name": "shop", "checklist": ["alarms", "changes"]}, actor="test"
    )
    ticket = tickets.create_ticket(db, title="shop is slow", actor="test").ticket
    assert ticket is not None
    kept, lines = checks.diagnose(
        db, made, actor="ann", ticket_key=str(ticket.id), now=utcnow() + dt.timedelta(seconds=1)
    )
    assert kept.ticket_id == ticket.id and [item["key"] for item in kept.lines] == [
        "alarms",
        "changes",
    ]
    note = db.scalars(select(TicketNote).where(TicketNote.ticket_id == ticket.id)).one()
    assert note.author == "ann" and note.body.startswith("**Diagnosis of shop**")
    assert "- **OK** Releases and change requests in the last 24 hours" in note.body
    assert [item.verdict for item in checks.lines_of(kept)] == [item.verdict for item in lines]


def test_a_diagnosis_is_kept_when_another_process_wrote_while_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a transaction that read while another connection wrote cannot write: the
    checklist's reads and the diagnosis's writes are two transactions."""
    url = fresh_database_url("sqlite", tmp_path, "ops")
    migrations.upgrade(url)
    engine = build_engine(url)
    factory = sessionmaker(bind=engine)
    with factory() as session:
        services.create_service(session, {"name": "shop", "checklist": ["changes"]}, actor="t")
        ticket = tickets.create_ticket(session, title="shop is slow", actor="t").ticket
        assert ticket is not None
        session.commit()
        key = ticket.key
    checklist = checks.run_checklist

    def run_while_another_writes(*args: Any, **kwargs: Any) -> list[checks.Line]:
        found = checklist(*args, **kwargs)
        with factory() as other:  # another writer, done before the diagnosis is written
            tickets.create_ticket(other, title="another alarm", actor="t")
            other.commit()
        return found

    monkeypatch.setattr(checks, "run_checklist", run_while_another_writes)
    try:
        with factory() as session:
            shop = services.get_service(session, "shop")
            kept, _ = checks.diagnose(session, shop, actor="ann", ticket_key=key)
            session.commit()
            kept_id = kept.id
        with factory() as session:
            note = session.scalars(select(TicketNote)).one()
            assert note.author == "ann" and note.body.startswith("**Diagnosis of shop**")
            assert session.get(Diagnosis, kept_id) is not None
    finally:
        engine.dispose()


def test_diagnose_run_on_the_demo_service_prints_a_verdict_per_line_with_evidence() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    with transaction() as session:
        seed_diagnose(session, registry.DemoContext(password="x", made=[]))
    result = runner.invoke(app, ["diagnose", "run", "export"])
    assert result.exit_code == 0, result.output
    verdicts = re.findall(r"^(OK|UNUSUAL|FAILING|UNKNOWN)\s+(.+)$", result.stdout, re.M)
    assert [title for _, title in verdicts] == [
        checks.TITLES[key] for key in services.DEFAULT_CHECKLIST
    ]
    assert "cannot connect to postgresql://127.0.0.1:5432/export_demo" in result.stdout
    assert "no Supervisor" in result.stdout or "export-primary" in result.stdout
    assert "export-worker: 0 group(s) seen in 24 h" in result.stdout
    missing = runner.invoke(app, ["diagnose", "run", "nothing"])
    assert missing.exit_code == 2 and "no service 'nothing'" in missing.stderr


def test_host_load_and_5xx_are_weighed_against_their_weeks_baseline(db: Session) -> None:
    from dutydesk.metrics import service as metrics

    now = utcnow()
    labels = {"instance": "shop-vm1:9100"}
    for hours in range(48, 1, -1):
        at = now - dt.timedelta(hours=hours)
        metrics.record(db, "scrape", at, [metrics.Point("node_load5", 0.5, labels)])
        metrics.record(db, "scrape", at, [metrics.Point("http.5xx", 2.0, {"source": "shop"})])
    metrics.record(
        db,
        "scrape",
        now - dt.timedelta(minutes=1),
        [
            metrics.Point("node_load5", 3.5, labels),
            metrics.Point("http.5xx", 1.0, {"source": "shop"}),
        ],
    )
    made = services.create_service(
        db,
        {"name": "shop", "hosts": ["shop-vm1"], "checklist": ["host_load", "responses"]},
        actor="test",
    )
    host, responses = checks.run_checklist(db, made, now=now)
    assert host.verdict is Verdict.unusual
    assert texts(host) == "node_load5[shop-vm1:9100]: 3.5 now against a baseline of 0.5"
    assert responses.verdict is Verdict.ok
    assert texts(responses) == "http.5xx[shop]: 1 now against a baseline of 2"
