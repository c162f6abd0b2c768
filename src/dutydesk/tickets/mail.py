"""Reply by e-mail: a reply to a ticket notice becomes a note from the matching user.

The SMTP listener (`intake.smtp`) hands each message to `note_from_reply`; this module finds the
ticket key in the subject, keeps only the new text of the reply (no quoted mail, no
signature) and finds the user by the sender's address.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.people.models import Role, User
from dutydesk.tickets import service
from dutydesk.tickets.models import KEY_PREFIX, TicketNote

SUBJECT_KEY = re.compile(rf"\b{KEY_PREFIX}(\d{{1,18}})\b", re.IGNORECASE)
# Lines where the quoted earlier mail starts: everything from here on is dropped.
QUOTE_HEADERS = (
    re.compile(r"^\s*On\b.*\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.*\bschrieb.*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Le\b.*\ba écrit\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Forwarded message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*From:\s.+$", re.IGNORECASE),
)
# A "On <date>, <name> wrote:" header some clients wrap over two lines.
WRAPPED_ON = re.compile(r"^\s*On\b.*[^:]\s*$", re.IGNORECASE)
SIGNATURES = (
    re.compile(r"^-- ?$"),
    re.compile(r"^\s*Sent from my \w+", re.IGNORECASE),
    re.compile(r"^\s*Get Outlook for ", re.IGNORECASE),
)


class ReplyRejected(service.TicketError):
    """A mail that cannot become a note; the message says why (for the bounce or the log)."""


@dataclass(frozen=True)
class Reply:
    """What a reply says: which ticket, who sent it, and the new text."""

    key: str
    sender: str
    body: str


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr", "blockquote"):
            self.parts.append("\n")
        if tag == "blockquote":
            self.parts.append("\x00")  # quoted mail starts here

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    return "".join(parser.parts).split("\x00", 1)[0]


def strip_quoted(text: str) -> str:
    """The new part of a reply: without quoted lines, the quoted mail below, or a signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if any(pattern.match(line) for pattern in QUOTE_HEADERS):
            break
        if WRAPPED_ON.match(line) and following.strip().endswith("wrote:"):
            break
        if any(pattern.match(line) for pattern in SIGNATURES):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def parse_reply(message: EmailMessage | bytes) -> Reply:
    """Read a reply: the ticket key from its subject, the sender, and the new text."""
    if isinstance(message, bytes):
        parsed = email.message_from_bytes(message, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        message = parsed
    subject = str(message.get("Subject", ""))
    found = SUBJECT_KEY.search(subject)
    if found is None:
        raise ReplyRejected(f"no ticket key ({KEY_PREFIX}<n>) in the subject {subject[:200]!r}")
    sender = parseaddr(str(message.get("From", "")))[1].strip().lower()
    if "@" not in sender:
        raise ReplyRejected("the mail has no sender address")
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        raise ReplyRejected("the mail has no text")
    assert isinstance(part, EmailMessage)
    try:
        content = part.get_content()
    except LookupError as error:  # a charset Python does not know
        raise ReplyRejected(f"the mail's text cannot be read: {error}") from None
    if not isinstance(content, str):
        raise ReplyRejected("the mail has no text")
    if part.get_content_subtype() == "html":
        content = _html_to_text(content)
    # NUL, which PostgreSQL cannot store, is kept as U+FFFD (as intake keeps it everywhere).
    body = strip_quoted(content.replace("\x00", "\ufffd"))
    if not body:
        raise ReplyRejected("the reply has no new text above the quoted mail")
    return Reply(key=f"{KEY_PREFIX}{int(found.group(1))}", sender=sender, body=body)


def note_from_reply(session: Session, message: EmailMessage | bytes) -> TicketNote:
    """Add a reply's new text as a note by the user whose address sent it."""
    reply = parse_reply(message)
    user = session.scalar(
        select(User).where(func.lower(User.email) == reply.sender, User.active.is_(True))
    )
    if user is None:
        raise ReplyRejected(f"no active user has the address {reply.sender!r}")
    if not user.role_enum.includes(Role.operator):
        raise ReplyRejected(f"{user.username} is a {user.role} and cannot add notes")
    try:
        ticket = service.get_ticket(session, reply.key)
    except service.TicketNotFound as error:
        raise ReplyRejected(str(error)) from None
    note = service.add_note(session, ticket, reply.body, author=user.username)
    return note
