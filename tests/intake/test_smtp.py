"""E-mail intake: a real SMTP listener (aiosmtpd) started in the test, fed by smtplib and by
Debian's swaks; subjects grouped with identifiers masked; replies to DD-<n> become notes."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.alarms.models import Alarm
from dutydesk.intake.mail import mask_subject, receive_message
from dutydesk.intake.models import InboxItem
from dutydesk.intake.smtp import listener
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Ticket, TicketNote
from tests.intake.conftest import make_integration
from tests.intake.desk_server import free_port
from tests.tickets.conftest import add_person

SWAKS = shutil.which("swaks")


@pytest.fixture
def smtp_port(factory: sessionmaker[Session]) -> Iterator[int]:
    """An SMTP listener on a free loopback port, writing to the test's database."""
    port = free_port()
    controller = listener(get_settings(), factory, port=port)
    controller.start()
    yield port
    controller.stop()


def send(port: int, subject: str, body: str, sender: str = "cron@db-1.example") -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "alerts@desk.example"
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)


def test_subjects_are_grouped_with_numbers_dates_and_identifiers_masked() -> None:
    one = mask_subject("Backup failed at 2026-11-24 02:00:13 (job 4711, id 3f2a9c1b7d)")
    two = mask_subject("Backup failed at 2026-11-25 03:10:00 (job 4712, id 9e8d7c6b5a)")
    assert one == two == "backup failed at <date> (job <n>, id <hex>)"
    assert mask_subject("Run 0b0e8f5e-1234-4abc-8def-0123456789ab done") == "run <id> done"
    assert mask_subject("Disk 93% on db-1") != mask_subject("Backup failed")


def test_mail_sent_with_smtplib_becomes_an_alarm_grouped_by_masked_subject(
    smtp_port: int, db: Session
) -> None:
    make_integration(db, "email", "alerts")
    send(smtp_port, "Backup failed at 02:00 (job 4711)", "pg_dump exited with 1")
    send(smtp_port, "Backup failed at 03:00 (job 4712)", "pg_dump exited with 1 again")
    db.expire_all()
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.occurrences == 2 and alarm.state == "firing"
    assert alarm.title == "Backup failed at 03:00 (job 4712)"
    assert "again" in alarm.description
    ticket = db.get(Ticket, alarm.ticket_id)
    assert ticket is not None and ticket.occurrences == 2
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [item.source for item in items] == ["smtp", "smtp"]
    assert "Subject: Backup failed at 02:00 (job 4711)" in items[0].body
    send(smtp_port, "RESOLVED: Backup failed at 04:00 (job 4713)", "ok now")
    db.expire_all()
    assert db.get(Alarm, alarm.id).state == "resolved"  # type: ignore[union-attr]


@pytest.mark.skipif(SWAKS is None, reason="Debian's swaks is not installed (apt-get install swaks)")
def test_mail_sent_with_swaks_becomes_an_alarm(smtp_port: int, db: Session) -> None:
    assert SWAKS is not None
    make_integration(db, "email", "alerts")
    done = subprocess.run(
        [
            SWAKS,
            "--server",
            f"127.0.0.1:{smtp_port}",
            "--from",
            "nagios@mon.example",
            "--to",
            "alerts@desk.example",
            "--header",
            "Subject: CRITICAL: load 12.5 on web-3",
            "--body",
            "Load average above threshold",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    db.expire_all()
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.title == "CRITICAL: load 12.5 on web-3"
    assert "Load average above threshold" in alarm.description


def test_reply_with_a_ticket_key_becomes_a_note_from_the_sender(
    smtp_port: int, db: Session
) -> None:
    from dutydesk.tickets import service as tickets

    add_person(db, "olga", "operator", "olga@desk.example")
    ticket = tickets.create_ticket(db, title="Disk full", actor="test").ticket
    assert ticket is not None
    db.commit()
    send(
        smtp_port,
        f"Re: [{ticket.key}] Disk full",
        "Cleaned the WAL archive.\n\nOn Mon, someone wrote:\n> Disk full",
        sender="Olga <olga@desk.example>",
    )
    db.expire_all()
    (note,) = db.scalars(select(TicketNote))
    assert (note.ticket_id, note.author, note.body) == (
        ticket.id,
        "olga",
        "Cleaned the WAL archive.",
    )
    assert db.scalar(select(Alarm)) is None


def test_reply_from_an_unknown_address_is_refused_and_kept(smtp_port: int, db: Session) -> None:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp_port, "Re: DD-99 something", "hello", sender="stranger@else.example")
    assert refused.value.smtp_code == 550
    db.expire_all()
    item = db.scalar(select(InboxItem))
    assert item is not None and item.outcome == "rejected" and "stranger" in (item.reason or "")


def test_oversized_message_is_refused_but_kept_truncated(db: Session) -> None:
    make_integration(db, "email", "alerts")
    raw = b"Subject: huge\r\nFrom: a@b.example\r\n\r\n" + b"x" * 5000
    result = receive_message(
        db,
        raw,
        source="smtp",
        peer="127.0.0.1",
        mail_from="a@b.example",
        recipients=["alerts@desk.example"],
        limit=1024,
    )
    assert result.reply.startswith("552")
    item = db.get(InboxItem, result.item_id)
    assert item is not None and item.truncated and item.status_code == 413
    assert db.scalar(select(Alarm)) is None


def test_mail_without_an_email_integration_is_refused_and_kept(smtp_port: int, db: Session) -> None:
    with pytest.raises(smtplib.SMTPDataError):
        send(smtp_port, "Something broke", "details")
    db.expire_all()
    item = db.scalar(select(InboxItem))
    assert item is not None and item.reason == "no enabled e-mail integration"
