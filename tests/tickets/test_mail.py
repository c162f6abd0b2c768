"""Reply by e-mail: the ticket key from the subject, the new text only, the sender's user."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.tickets import service
from dutydesk.tickets.mail import ReplyRejected, note_from_reply, parse_reply, strip_quoted
from tests.tickets.conftest import alarm

GMAIL_REPLY = """Restarted the worker, errors are gone.

Will watch it tonight.

On Tue, Nov 24, 2026 at 9:14 AM dutydesk <desk@desk.example> wrote:
> [DD-7] Disk usage above 90% on db-1
> Filesystem is 93% full.
"""

OUTLOOK_REPLY = """Cleaned the WAL archives.

________________________________
From: dutydesk <desk@desk.example>
Sent: Tuesday, November 24, 2026 9:14 AM
Subject: [DD-7] Disk usage
"""


def mail(subject: str, body: str, sender: str = "Olga <OLGA@desk.example>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "desk@desk.example"
    message["Subject"] = subject
    message.set_content(body)
    return message


def test_strip_quoted_keeps_only_the_new_text() -> None:
    assert (
        strip_quoted(GMAIL_REPLY)
        == "Restarted the worker, errors are gone.\n\nWill watch it tonight."
    )
    assert strip_quoted(OUTLOOK_REPLY) == "Cleaned the WAL archives."
    assert strip_quoted("Done.\n\n-- \nOlga\nOps team\n") == "Done."
    assert strip_quoted("Done.\n\nSent from my iPhone\n") == "Done."
    assert strip_quoted("Fixed.\n-----Original Message-----\nold") == "Fixed."
    assert strip_quoted("Yes.\n> quoted\nAnd more.") == "Yes.\nAnd more."
    wrapped = "Ok.\n\nOn Tue, Nov 24, 2026 at 9:14 AM dutydesk <desk@desk.example>\nwrote:\n> x"
    assert strip_quoted(wrapped) == "Ok."


def test_parse_reply_reads_key_sender_and_body() -> None:
    reply = parse_reply(mail("Re: [DD-7] Disk usage above 90% on db-1", GMAIL_REPLY))
    assert reply.key == "DD-7"
    assert reply.sender == "olga@desk.example"
    assert reply.body.startswith("Restarted the worker")


def test_parse_reply_takes_raw_bytes_and_html_only_mail() -> None:
    message = EmailMessage()
    message["From"] = "olga@desk.example"
    message["Subject"] = "RE: dd-12 heartbeat"
    message.set_content(
        "<html><body><p>Fixed the <b>cron</b> entry.</p><script>x()</script>"
        "<blockquote>old mail</blockquote></body></html>",
        subtype="html",
    )
    reply = parse_reply(message.as_bytes())
    assert reply.key == "DD-12"
    assert reply.body == "Fixed the cron entry."


@pytest.mark.parametrize(
    ("subject", "body", "problem"),
    [
        ("Re: your ticket", "hello", "no ticket key"),
        ("Re: [DD-7] x", "> only quoted text\n", "no new text"),
    ],
)
def test_parse_reply_refuses_what_it_cannot_use(subject: str, body: str, problem: str) -> None:
    with pytest.raises(ReplyRejected, match=problem):
        parse_reply(mail(subject, body))


def test_reply_becomes_a_note_from_the_matching_user(db: Session, olga: User) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    note = note_from_reply(db, mail(f"Re: [{ticket.key}] Disk usage", GMAIL_REPLY))
    assert note.author == "olga"
    assert note.body == "Restarted the worker, errors are gone.\n\nWill watch it tonight."
    assert [event.kind for event in service.timeline(db, ticket)][-1] == "note"


def test_reply_from_an_unknown_address_or_a_viewer_or_to_no_ticket_is_refused(
    db: Session, olga: User, vera: User
) -> None:
    ticket = service.open_or_update_ticket(db, alarm()).ticket
    assert ticket is not None
    subject = f"Re: [{ticket.key}] Disk usage"
    with pytest.raises(ReplyRejected, match="no active user has the address"):
        note_from_reply(db, mail(subject, "hi", sender="stranger@else.example"))
    with pytest.raises(ReplyRejected, match="viewer and cannot add notes"):
        note_from_reply(db, mail(subject, "hi", sender="vera@desk.example"))
    with pytest.raises(ReplyRejected, match="no ticket DD-999999"):
        note_from_reply(db, mail("Re: [DD-999999] gone", "hi"))
