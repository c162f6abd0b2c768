"""Intake's background work: IMAP polling (when DUTYDESK_IMAP_URL is set), heartbeat checks
going down past their deadline, and pruning old rate counters. Thin wrappers: the message
handling is `intake.mail`, shared with SMTP."""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import write_phase
from dutydesk.intake import service
from dutydesk.intake.mail import receive_message
from dutydesk.jobs import service as jobs
from dutydesk.settings import get_settings
from dutydesk.web.metrics import count_mail

log = logging.getLogger(__name__)
RATE_COUNTS_KEPT = dt.timedelta(days=2)
MESSAGES_PER_POLL = 200
# Seconds an IMAP server may take to answer before the poll gives up (the next one retries).
IMAP_TIMEOUT_SECONDS = 60


class Mailbox(Protocol):
    """The part of `imaplib.IMAP4` the poll uses."""

    def search(self, charset: str | None, *criteria: str) -> tuple[str, list[Any]]: ...
    def fetch(self, message_set: str, message_parts: str) -> tuple[str, list[Any]]: ...
    def store(self, message_set: str, command: str, flags: str) -> tuple[str, list[Any]]: ...


@contextmanager
def open_mailbox(url: str) -> Iterator[Mailbox]:
    """Log in to the mailbox named by an `imaps://` or `imap://` URL and select its folder."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ValueError("DUTYDESK_IMAP_URL must look like imaps://USER:PASSWORD@HOST/FOLDER")
    secure = parts.scheme == "imaps"
    port = parts.port or (993 if secure else 143)
    client = (
        imaplib.IMAP4_SSL(parts.hostname, port, timeout=IMAP_TIMEOUT_SECONDS)
        if secure
        else imaplib.IMAP4(parts.hostname, port, timeout=IMAP_TIMEOUT_SECONDS)
    )
    try:
        client.login(unquote(parts.username or ""), unquote(parts.password or ""))
        folder = unquote(parts.path.strip("/")) or "INBOX"
        status, answer = client.select(folder)
        if status != "OK":
            said = b" ".join(part for part in answer if isinstance(part, bytes)).decode(
                errors="replace"
            )
            raise imaplib.IMAP4.error(f"cannot open the IMAP folder {folder!r}: {said}")
        yield client
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            log.warning("IMAP logout failed; the connection is dropped")


def mailbox_name(url: str) -> str:
    """The mailbox of an IMAP URL as the mail metrics label it: host/folder, no credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}/{unquote(parts.path.strip('/')) or 'INBOX'}"


def poll_mailbox(session: Session, mailbox: Mailbox, *, limit: int, name: str = "imap") -> int:
    """Take the unseen messages: each into the inbox and on to alarms or tickets; once that is
    committed, mark them seen. Returns how many were taken.

    A failure between the commit and the marking takes the messages again at the next poll
    (a duplicate in the inbox), never loses one.
    """
    _status, found = mailbox.search(None, "UNSEEN")
    numbers = (found[0] or b"").split()[:MESSAGES_PER_POLL] if found else []
    taken_numbers: list[str] = []
    for number in numbers:
        number_text = number.decode() if isinstance(number, bytes) else str(number)
        # PEEK: a plain RFC822 fetch marks the message seen at once, so a poll that failed
        # before its commit would leave it seen and never take it.
        _status, data = mailbox.fetch(number_text, "(BODY.PEEK[])")
        raw = next((part[1] for part in data if isinstance(part, tuple)), None)
        if not isinstance(raw, bytes):
            continue
        reply: str | None = None
        try:
            with session.begin_nested():
                reply = receive_message(
                    session,
                    raw,
                    source="imap",
                    peer=None,
                    mail_from="",
                    recipients=[],
                    limit=limit,
                ).reply
        finally:
            count_mail("imap", name, reply)
        taken_numbers.append(number_text)
    write_phase(session)
    for number_text in taken_numbers:
        mailbox.store(number_text, "+FLAGS", "\\Seen")
    return len(taken_numbers)


@registry.due("intake.imap")
def enqueue_imap_poll(session: Session) -> None:
    """When IMAP polling is set up: enqueue a poll every DUTYDESK_IMAP_POLL_SECONDS."""
    settings = get_settings()
    if settings.imap_url and jobs.is_due(
        session, "intake.imap", dt.timedelta(seconds=settings.imap_poll_seconds)
    ):
        jobs.enqueue(session, "intake.imap_poll")


@registry.job_kind("intake.imap_poll")
def imap_poll(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Poll the mailbox once (a message is marked seen only after the inbox has kept it)."""
    settings = get_settings()
    if not settings.imap_url:
        return {"taken": 0}
    with open_mailbox(settings.imap_url) as mailbox:
        taken = poll_mailbox(
            session, mailbox, limit=settings.inbox_max_bytes, name=mailbox_name(settings.imap_url)
        )
        return {"taken": taken}


@registry.due("intake.heartbeats")
def enqueue_heartbeat_sweep(session: Session) -> None:
    """While any heartbeat check is up: at least once a minute (every
    DUTYDESK_RULE_EVAL_SECONDS if shorter), look for checks past their deadline plus grace."""
    from sqlalchemy import select

    from dutydesk.intake.models import PingCheck

    every = dt.timedelta(seconds=min(get_settings().rule_eval_seconds, 60))
    anything = session.scalar(select(PingCheck.id).where(PingCheck.status == "up").limit(1))
    if anything is not None and jobs.is_due(session, "intake.heartbeats", every):
        jobs.enqueue(session, "intake.heartbeat_sweep")


@registry.job_kind("intake.heartbeat_sweep")
def heartbeat_sweep(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Make the checks past their deadline plus grace down and fire their alarms (each once,
    however many workers sweep at the same time)."""
    from dutydesk.intake._heartbeat import sweep

    write_phase(session)
    return {"down": len(sweep(session))}


@registry.due("intake.prune")
def enqueue_prune(session: Session) -> None:
    """Once an hour: forget rate counters older than two days and inbox items older than
    DUTYDESK_INBOX_KEEP_DAYS."""
    if jobs.is_due(session, "intake.prune", dt.timedelta(hours=1)):
        jobs.enqueue(session, "intake.prune")


@registry.job_kind("intake.prune")
def prune(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Delete old rate counters and inbox items."""
    from dutydesk.db import utcnow

    deleted = service.prune_rate_counts(session, older_than=RATE_COUNTS_KEPT)
    keep_days = get_settings().inbox_keep_days
    inbox = 0
    if keep_days:
        inbox = service.prune_inbox(session, before=utcnow() - dt.timedelta(days=keep_days))
    return {"deleted": deleted, "inbox_deleted": inbox}


@registry.due("intake.log_scan")
def enqueue_log_scan(session: Session) -> None:
    """While any log source is enabled: every DUTYDESK_LOG_SCAN_SECONDS, scan for new lines."""
    from sqlalchemy import select

    from dutydesk.intake.models import LogSource

    every = dt.timedelta(seconds=get_settings().log_scan_seconds)
    anything = session.scalar(select(LogSource.id).where(LogSource.enabled.is_(True)).limit(1))
    if anything is not None and jobs.is_due(session, "intake.log_scan", every):
        jobs.enqueue(session, "intake.log_scan")


@registry.job_kind("intake.log_scan")
def log_scan(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Count what is new in every enabled log source (one source failing stops none other)."""
    from dutydesk.db import utcnow
    from dutydesk.intake.log_sources import list_log_sources, scan_source
    from dutydesk.intake.logs import LogInputError

    files = events = failed = 0
    for source in list_log_sources(session):
        if not source.enabled:
            continue
        try:
            with session.begin_nested():
                result = scan_source(session, source, utcnow())
        except (OSError, LogInputError) as error:
            log.warning("scanning log source %s failed: %s", source.name, error)
            source.last_result = {"error": str(error)}
            failed += 1
            continue
        files += result["files"]
        events += result["events"]
    return {"files": files, "events": events, "failed": failed}
