"""IMAP polling: the message handling is the SMTP listener's (tested there with real clients);
here the poll loop runs against a small in-memory mailbox (no IMAP server is easy to run on
this machine), checking that unseen messages reach the inbox and are marked seen after."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.intake.jobs import open_mailbox, poll_mailbox
from dutydesk.intake.models import InboxItem
from tests.intake.conftest import make_integration


class Mailbox:
    """Answers `search`, `fetch` and `store` the way imaplib's IMAP4 does."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.seen: set[int] = set()

    def search(self, charset: str | None, *criteria: str) -> tuple[str, list[Any]]:
        assert criteria == ("UNSEEN",)
        unseen = [str(n).encode() for n in range(1, len(self.messages) + 1) if n not in self.seen]
        return "OK", [b" ".join(unseen)]

    def fetch(self, message_set: str, message_parts: str) -> tuple[str, list[Any]]:
        number = int(message_set)
        return "OK", [(f"{number} (RFC822 {{n}}".encode(), self.messages[number - 1]), b")"]

    def store(self, message_set: str, command: str, flags: str) -> tuple[str, list[Any]]:
        assert (command, flags) == ("+FLAGS", "\\Seen")
        self.seen.add(int(message_set))
        return "OK", []


def mail(subject: str) -> bytes:
    return (
        f"From: cron@db-1.example\r\nTo: alerts@desk.example\r\nSubject: {subject}\r\n\r\n"
        "details\r\n"
    ).encode()


def test_poll_takes_unseen_messages_once_and_marks_them_seen(db: Session) -> None:
    make_integration(db, "email", "alerts")
    mailbox = Mailbox([mail("Backup failed (job 1)"), mail("Backup failed (job 2)")])
    assert poll_mailbox(db, mailbox, limit=1_048_576) == 2
    assert mailbox.seen == {1, 2}
    assert poll_mailbox(db, mailbox, limit=1_048_576) == 0
    db.expire_all()
    assert [item.source for item in db.scalars(select(InboxItem))] == ["imap", "imap"]
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.occurrences == 2


def test_imap_url_must_name_an_imap_server() -> None:
    with pytest.raises(ValueError, match="imaps://"), open_mailbox("https://mail.example/"):
        pass
