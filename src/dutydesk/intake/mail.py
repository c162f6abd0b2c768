"""E-mail intake, shared by the SMTP listener and IMAP polling: the raw message into the
inbox, then either a reply to a ticket (subject with `DD-<n>`) or an alarm from the subject.

An alarm mail is grouped by its subject with numbers, dates, times, hex and UUID-like
identifiers masked, so "Backup failed at 02:00 (job 4711)" and "... 03:00 (job 4712)" are one
alarm. A subject starting with RESOLVED (or `[OK]`) resolves it. The subjects of Alertmanager's
and Grafana's mail templates (`[FIRING:n] X` / `[RESOLVED] X`) and of Nagios and Icinga
(`** PROBLEM Service Alert: host/svc is CRITICAL **` / `** RECOVERY ... is OK **`, Icinga 2's
`[PROBLEM] svc on host is CRITICAL!`) are read by their convention instead: the part that names
the problem groups, unmasked, so the pair lands on one alarm and the second resolves it.
HTML-only mail is kept as readable text; attachments are listed by name, size and type.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.service import Signal
from dutydesk.db import utcnow
from dutydesk.intake import service
from dutydesk.intake._html import html_to_text
from dutydesk.intake._parse import digest
from dutydesk.intake._payload import storable
from dutydesk.intake._receive import land
from dutydesk.intake.models import InboxItem, Integration, Kind, Outcome
from dutydesk.tickets.mail import SUBJECT_KEY, ReplyRejected, note_from_reply

MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
        ),
        "<date>",
    ),
    (re.compile(r"\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b"), "<date>"),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:[.,]\d+)*"), "<n>"),
)
RESOLVED_PREFIX = re.compile(r"^\s*(?:\[(?:resolved|ok)\]|resolved\b:?)\s*", re.IGNORECASE)
# Alertmanager's and Grafana's default mail subject: `[FIRING:3] NodeDown eu1` / `[RESOLVED] ...`.
GROUP_SUBJECT = re.compile(r"^\[(?P<status>FIRING(?::\s*\d+)?|RESOLVED)\]\s*(?P<name>.+)$", re.I)
NAGIOS_TYPES = (
    "PROBLEM|RECOVERY|ACKNOWLEDGEMENT|CUSTOM|FLAPPINGSTART|FLAPPINGSTOP|FLAPPINGEND|"
    "FLAPPINGDISABLED|DOWNTIMESTART|DOWNTIMEEND|DOWNTIMECANCELLED|DOWNTIMEREMOVED"
)
# Nagios (and Icinga 1): `** PROBLEM Service Alert: web-1/HTTP is CRITICAL **`,
# `** RECOVERY Host Alert: web-1 is UP **`.
NAGIOS_SUBJECT = re.compile(
    rf"^\*\*\s*(?P<type>{NAGIOS_TYPES})\s+(?P<name>(?:Service|Host) Alert:\s*.+?)"
    r"\s+is\s+(?P<state>\w+)\s*\*\*$",
    re.I,
)
# Icinga 2's mail scripts: `[PROBLEM] HTTP on web-1 is CRITICAL!`, `[RECOVERY] Host web-1 is UP!`.
ICINGA_SUBJECT = re.compile(
    rf"^\[(?P<type>{NAGIOS_TYPES})\]\s+(?P<name>.+?)\s+is\s+(?P<state>\w+)!$", re.I
)
MAX_BODY = 20_000
MAX_ATTACHMENTS_LISTED = 50


@dataclass(frozen=True)
class SubjectReading:
    """What an alarm mail's subject says: the title, what groups it, whether it resolves, and
    whether it raises anything at all (a Nagios acknowledgement or downtime notice does not)."""

    title: str
    group: str
    resolved: bool
    raises: bool = True


def read_subject(subject: str) -> SubjectReading:
    """The subject read by its sender's convention, else grouped with identifiers masked."""
    subject = " ".join(subject.split())
    found = GROUP_SUBJECT.match(subject)
    if found:
        name = found["name"].strip()
        resolved = found["status"].upper() == "RESOLVED"
        return SubjectReading(name, f"alert group\x1f{name.lower()}", resolved)
    found = NAGIOS_SUBJECT.match(subject) or ICINGA_SUBJECT.match(subject)
    if found:
        kind, state, name = found["type"].upper(), found["state"].upper(), found["name"].strip()
        title = f"{name} is {state}"
        # \x1f never stays in a masked subject (it is whitespace), so no plain subject's
        # group is one of these.
        group = f"nagios\x1f{name.lower()}"
        if kind not in ("PROBLEM", "RECOVERY"):
            return SubjectReading(f"{kind} {title}", group, resolved=False, raises=False)
        return SubjectReading(title, group, resolved=kind == "RECOVERY")
    resolved = bool(RESOLVED_PREFIX.match(subject))
    title = RESOLVED_PREFIX.sub("", subject).strip() or "(no subject)"
    return SubjectReading(title, mask_subject(title), resolved)


def mask_subject(subject: str) -> str:
    """The subject with numbers, dates, times, hex and UUID-like identifiers masked."""
    masked = " ".join(subject.split()).lower()
    for pattern, placeholder in MASKS:
        masked = pattern.sub(placeholder, masked)
    return masked


@dataclass(frozen=True)
class MailResult:
    """What the sender is told (an SMTP reply) and the inbox item kept."""

    reply: str
    item_id: int


def _text_of(message: EmailMessage) -> str:
    """The message's plain text, or its HTML made readable text when it has no plain part."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except LookupError:  # a charset Python does not know: read as UTF-8 as far as it goes
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    if not isinstance(content, str):
        return ""
    return html_to_text(content) if part.get_content_subtype() == "html" else content


def attachments_of(message: EmailMessage) -> list[dict[str, Any]]:
    """Name, size in bytes and type of each attachment (a part with a file name, or marked
    as an attachment), in the message's order."""
    found: list[dict[str, Any]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name is None and part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        found.append(
            {
                "name": storable(str(name or "(no name)"))[:300],
                "size": len(payload) if isinstance(payload, bytes) else 0,
                "type": part.get_content_type(),
            }
        )
    return found


def _described(text: str, attachments: list[dict[str, Any]]) -> str:
    """The alarm's description: the mail's text, then its attachments listed."""
    if not attachments:
        return text
    listed = [f"- {item['name']} ({item['size']} bytes, {item['type']})" for item in attachments]
    more = len(attachments) - MAX_ATTACHMENTS_LISTED
    lines = [
        "Attachments:",
        *listed[:MAX_ATTACHMENTS_LISTED],
        *([f"- and {more} more"] * (more > 0)),
    ]
    return f"{text.rstrip()}\n\n" + "\n".join(lines) if text.strip() else "\n".join(lines)


def _integration_for(session: Session, recipients: list[str]) -> Integration | None:
    """The e-mail integration named by a recipient's local part, else the oldest enabled one."""
    names = [parseaddr(r)[1].split("@", 1)[0].lower() for r in recipients]
    found = session.scalar(
        select(Integration).where(
            Integration.kind == Kind.email.value,
            Integration.enabled.is_(True),
            Integration.name.in_(names),
        )
    )
    if found is not None:
        return found
    return session.scalar(
        select(Integration)
        .where(Integration.kind == Kind.email.value, Integration.enabled.is_(True))
        .order_by(Integration.id)
        .limit(1)
    )


def receive_message(
    session: Session,
    raw: bytes,
    *,
    source: str,
    peer: str | None,
    mail_from: str,
    recipients: list[str],
    limit: int,
) -> MailResult:
    """Keep the message in the inbox, then make it a ticket note or an alarm."""
    oversized = len(raw) > limit
    kept = raw[: service.OVERSIZED_SAMPLE_BYTES] if oversized else raw
    message: EmailMessage | None
    try:
        parsed = email.message_from_bytes(kept, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        message = parsed
    except RecursionError:  # MIME parts nested past what Python's parser reads
        message = None
    # Header bytes that are not UTF-8 come back as lone surrogates: stored as U+FFFD.
    subject = storable(str(message.get("Subject", "") or "")) if message is not None else ""
    item = service.record(
        session,
        source=source,
        method="MAIL",
        path=f"to {', '.join(recipients)}"[:300],
        client=peer,
        headers={
            "from": str(message.get("From", mail_from) if message else mail_from)[:500],
            "to": str(message.get("To", "") if message else "")[:500],
            "subject": subject[:500],
            "message-id": str(message.get("Message-ID", "") if message else "")[:500],
            "envelope-from": mail_from[:500],
        },
        body=kept,
        body_bytes=len(raw),
        truncated=oversized,
    )
    session.flush()
    if oversized:
        service.settle(
            item,
            Outcome.rejected,
            status_code=413,
            reason=f"message of {len(raw)} bytes is over the limit of {limit}",
        )
        return MailResult("552 5.3.4 Message too big for the desk's inbox", item.id)
    if message is None:
        reason = "the message's MIME parts are nested too deeply to read"
        service.settle(item, Outcome.rejected, status_code=422, reason=reason)
        return MailResult(f"550 5.6.0 {reason}", item.id)
    if SUBJECT_KEY.search(subject):
        return _reply(session, item, message)
    return _alarm(session, item, message, subject, recipients)


def _reply(session: Session, item: InboxItem, message: EmailMessage) -> MailResult:
    try:
        with session.begin_nested():
            note = note_from_reply(session, message)
    except ReplyRejected as error:
        service.settle(item, Outcome.rejected, status_code=422, reason=f"reply: {error}")
        return MailResult(f"550 5.7.1 {str(error)[:200]}", item.id)
    service.settle(
        item, Outcome.accepted, status_code=200, reason="reply noted", ticket_ids=[note.ticket_id]
    )
    return MailResult("250 OK: noted on the ticket", item.id)


def _alarm(
    session: Session, item: InboxItem, message: EmailMessage, subject: str, recipients: list[str]
) -> MailResult:
    integration = _integration_for(session, recipients)
    if integration is None:
        service.settle(
            item, Outcome.rejected, status_code=404, reason="no enabled e-mail integration"
        )
        return MailResult("550 5.1.1 No e-mail integration takes this mail", item.id)
    item.integration_id = integration.id
    if not service.take_rate_slot(session, integration, utcnow()):
        service.settle(item, Outcome.rejected, status_code=429, reason="rate limit reached")
        return MailResult("451 4.7.1 Rate limit reached, try again later", item.id)
    reading = read_subject(subject)
    if not reading.raises:
        reason = f"{reading.title}: a notice, recorded without an alarm"
        service.settle(item, Outcome.accepted, status_code=200, reason=reason)
        return MailResult("250 OK: recorded", item.id)
    sender = storable(parseaddr(str(message.get("From", "")))[1])
    attachments = attachments_of(message)
    labels = {"from": sender, "subject_group": reading.group.replace("\x1f", " ")[:200]}
    payload: dict[str, Any] = {"labels": labels}
    if attachments:
        payload["attachments"] = attachments[:MAX_ATTACHMENTS_LISTED]
    signal = Signal(
        source=integration.name,
        integration_id=integration.id,
        fingerprint=f"{integration.name}:{digest(reading.group)}",
        title=reading.title,
        severity=integration.default_severity,
        description=_described(storable(_text_of(message)[:MAX_BODY]), attachments),
        labels=labels,
        resolved=reading.resolved,
        close_on_resolve=integration.close_on_resolve,
        payload=payload,
    )
    landed = land(session, [signal])
    service.settle(
        item,
        Outcome.accepted,
        status_code=200,
        alarm_ids=landed.alarm_ids,
        ticket_ids=landed.ticket_ids,
    )
    return MailResult("250 OK", item.id)
