"""IMAP polling end to end against a real IMAP4rev1 server: pymap's in-memory backend, run as a
subprocess on a free loopback port (plain IMAP, no TLS). Alarm mail is put into the mailbox
over IMAP (APPEND as the mailbox's user), the desk's own job polls it, and the server is asked
afterwards which messages are still unseen."""

from __future__ import annotations

import imaplib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.intake import jobs
from dutydesk.intake.models import InboxItem
from tests.conftest import clear_caches
from tests.intake.conftest import make_integration

PYMAP = Path(sys.executable).with_name("pymap")
HOST = "127.0.0.1"
USER = "desk-alerts"
# Characters that must be percent-encoded in the URL, to check the desk decodes them.
PASSWORD = "s3cret/p@ss:w%rd"
STARTUP_SECONDS = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ImapServer:
    """A running pymap with one user whose INBOX starts empty."""

    port: int
    log: Path

    def url(self, password: str = PASSWORD) -> str:
        """The desk's DUTYDESK_IMAP_URL for the user's INBOX."""
        return f"imap://{quote(USER, safe='')}:{quote(password, safe='')}@{HOST}:{self.port}/INBOX"

    @contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in client of the user, INBOX selected."""
        client = imaplib.IMAP4(HOST, self.port, timeout=10)
        try:
            client.login(USER, PASSWORD)
            status, _ = client.select("INBOX")
            assert status == "OK"
            yield client
        finally:
            client.logout()

    def append(self, *messages: bytes) -> None:
        with self.client() as client:
            for message in messages:
                status, answer = client.append("INBOX", None, None, message)
                assert status == "OK", answer

    def numbers(self, criterion: str) -> list[bytes]:
        """Message numbers in INBOX matching an IMAP SEARCH criterion (e.g. UNSEEN)."""
        with self.client() as client:
            status, found = client.search(None, criterion)
            assert status == "OK", found
            return (found[0] or b"").split()


@pytest.fixture
def imap_server(tmp_path: Path) -> Iterator[ImapServer]:
    """pymap's dict backend on a free loopback port; always stopped (killed if it lingers)."""
    port = free_port()
    log = tmp_path / "pymap.log"
    command = [
        str(PYMAP),
        *("--no-service", "admin", "--no-service", "managesieve", "--no-service", "swim"),
        *("--host", HOST, "--port", str(port), "--no-tls"),
        *("dict", "--demo-user", USER, "--demo-password", PASSWORD),
    ]
    # FQDN spares pymap a reverse DNS look-up for its greeting.
    env = {**os.environ, "FQDN": "localhost"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"pymap exited with {process.returncode}: {log.read_text()}")
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"pymap did not listen on {port} in time: {log.read_text()}")
                time.sleep(0.05)
        yield ImapServer(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def desk_polls(imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch) -> ImapServer:
    """The desk configured, as in production, to poll the server's INBOX."""
    monkeypatch.setenv("DUTYDESK_IMAP_URL", imap_server.url())
    clear_caches()
    return imap_server


def mail(subject: str, number: int) -> bytes:
    return (
        "From: cron@db-1.example\r\nTo: alerts@desk.example\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{number}@db-1.example>\r\n"
        "Date: Tue, 24 Nov 2026 02:00:00 +0000\r\n\r\n"
        f"job {number} exited with status 2\r\n"
    ).encode()


def poll(db: Session) -> int:
    """One run of the desk's IMAP poll job (open_mailbox + poll_mailbox)."""
    result: dict[str, Any] = jobs.imap_poll(db, {})
    return int(result["taken"])


def test_poll_takes_unseen_mail_into_one_alarm_and_marks_it_seen(
    db: Session, desk_polls: ImapServer
) -> None:
    make_integration(db, "email", "alerts")
    desk_polls.append(*(mail(f"Backup failed (job {n})", n) for n in (1, 2, 3)))
    assert desk_polls.numbers("UNSEEN") == [b"1", b"2", b"3"]

    assert poll(db) == 3
    db.expire_all()
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [item.source for item in items] == ["imap"] * 3
    assert [item.headers["subject"] for item in items] == [
        f"Backup failed (job {n})" for n in (1, 2, 3)
    ]
    assert [item.outcome for item in items] == ["accepted"] * 3
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.occurrences == 3
    assert alarm.labels["subject_group"] == "backup failed (job <n>)"
    assert {item.alarm_ids[0] for item in items} == {alarm.id}
    assert desk_polls.numbers("UNSEEN") == []
    assert desk_polls.numbers("SEEN") == [b"1", b"2", b"3"]

    assert poll(db) == 0
    db.expire_all()
    assert len(list(db.scalars(select(InboxItem)))) == 3

    desk_polls.append(mail("Backup failed (job 4)", 4))
    assert desk_polls.numbers("UNSEEN") == [b"4"]
    assert poll(db) == 1
    db.expire_all()
    assert len(list(db.scalars(select(InboxItem)))) == 4
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.occurrences == 4
    assert desk_polls.numbers("UNSEEN") == []


def test_wrong_password_fails_the_poll_naming_the_login_failure(
    db: Session, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_integration(db, "email", "alerts")
    imap_server.append(mail("Backup failed (job 1)", 1))
    monkeypatch.setenv("DUTYDESK_IMAP_URL", imap_server.url(password="not-the-password"))
    clear_caches()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED") as failure:
        poll(db)
    assert "not-the-password" not in str(failure.value)
    db.expire_all()
    assert list(db.scalars(select(InboxItem))) == []
    assert imap_server.numbers("UNSEEN") == [b"1"]


def test_a_folder_that_does_not_exist_is_named_in_the_error(
    db: Session, imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_integration(db, "email", "alerts")
    monkeypatch.setenv("DUTYDESK_IMAP_URL", imap_server.url().removesuffix("/INBOX") + "/Alarms")
    clear_caches()
    with pytest.raises(imaplib.IMAP4.error, match="cannot open the IMAP folder 'Alarms'"):
        poll(db)


def test_a_poll_that_fails_part_way_leaves_the_untaken_messages_unseen(
    db: Session, desk_polls: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_integration(db, "email", "alerts")
    desk_polls.append(
        mail("Backup failed (job 1)", 1), mail("Disk full on db-1", 2), mail("Load high", 3)
    )
    receive = jobs.receive_message

    def failing_on_disk_full(session: Session, raw: bytes, **options: Any) -> Any:
        if b"Disk full" in raw:
            raise RuntimeError("database went away")
        return receive(session, raw, **options)

    monkeypatch.setattr(jobs, "receive_message", failing_on_disk_full)
    with pytest.raises(RuntimeError, match="database went away"):
        poll(db)
    db.rollback()  # as the job runner does with a failed job
    assert list(db.scalars(select(InboxItem))) == []
    # Nothing was kept, so the docstring's promise ("never loses one") needs all three unseen.
    assert desk_polls.numbers("UNSEEN") == [b"1", b"2", b"3"]


def test_a_bad_message_does_not_fail_the_poll_of_the_others(
    db: Session, desk_polls: ImapServer
) -> None:
    make_integration(db, "email", "alerts")
    undecodable = (
        b"From: cron@db-1.example\r\nTo: alerts@desk.example\r\n"
        b"Subject: Backup \xff failed\r\nContent-Type: text/plain; charset=x-no-such\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\npg_dump \xfe exited\r\n"
    )
    desk_polls.append(mail("Load high", 1), undecodable, mail("Disk full", 3))

    assert poll(db) == 3
    db.expire_all()
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [item.outcome for item in items] == ["accepted"] * 3
    alarms = {alarm.title: alarm for alarm in db.scalars(select(Alarm))}
    assert set(alarms) == {"Load high", "Backup \ufffd failed", "Disk full"}
    assert alarms["Backup \ufffd failed"].description == "pg_dump \ufffd exited\r\n"
    assert desk_polls.numbers("UNSEEN") == []
