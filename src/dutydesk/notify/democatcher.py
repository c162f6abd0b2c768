"""The demo's outgoing mail server: a local SMTP catcher that keeps every message as a file.

`dutydesk up --demo` runs it (`python -m dutydesk.notify.democatcher`) and points the desk's
outgoing mail at it (`catcher_environment`), so e-mail notices are delivered without any mail
leaving the machine. Each message is written to `$DUTYDESK_HOME/demo-mail/` as one `.eml`
file (written under a temporary name, then renamed, so a reader never sees half a message);
the console's "Demo mailbox" page reads them back (`caught_mails`).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from dutydesk.settings import Settings, get_settings

log = logging.getLogger(__name__)
FOLDER = "demo-mail"
SHOWN = 200  # the newest messages the page lists


def mailbox_dir(settings: Settings) -> Path:
    """Where the catcher keeps the messages: `$DUTYDESK_HOME/demo-mail`."""
    return settings.home_path / FOLDER


class CatchingHandler:
    """aiosmtpd handler: every message accepted is written to the mailbox folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, _server: SMTP, _session: SmtpSession, envelope: Envelope) -> str:
        """Keep the message; a sort by name is a sort by arrival."""
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.folder / f".{name}.tmp"
        temporary.write_bytes(raw)
        temporary.rename(self.folder / name)
        log.info("caught mail for %s", ", ".join(envelope.rcpt_tos))
        return "250 Message caught by the demo mailbox"


def catcher(settings: Settings) -> Controller:
    """An SMTP server on the outgoing mail address (DUTYDESK_MAIL_HOST:DUTYDESK_MAIL_PORT)."""
    folder = mailbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    return Controller(
        CatchingHandler(folder),
        hostname=settings.mail_host or "127.0.0.1",
        port=settings.mail_port,
        ready_timeout=10.0,
    )


def run_catcher(settings: Settings) -> None:
    """Catch mail until SIGTERM or Ctrl-C (blocks)."""
    controller = catcher(settings)
    controller.start()
    log.info("demo mail catcher on %s:%s", controller.hostname, controller.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    # Stop with `dutydesk up` even when it was killed outright and could not tell us.
    while not stop.wait(1.0) and os.getppid() == parent:
        pass
    controller.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the catcher takes it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def catcher_environment(port: int) -> dict[str, str]:
    """The settings the demo's processes get: outgoing mail to the catcher, the page shown."""
    return {
        "DUTYDESK_MAIL_HOST": "127.0.0.1",
        "DUTYDESK_MAIL_PORT": str(port),
        "DUTYDESK_MAIL_STARTTLS": "false",
        "DUTYDESK_MAIL_USER": "",
        "DUTYDESK_DEMO_MAILBOX": "true",
    }


@dataclass(frozen=True)
class CaughtMail:
    """One caught message as the mailbox page shows it."""

    name: str
    sender: str
    to: str
    subject: str
    date: str
    body: str


def _read(path: Path) -> CaughtMail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = ""
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain", "html"))
        if part is not None:
            body = str(part.get_content())
    return CaughtMail(
        name=path.name,
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        date=str(message.get("Date", "")) or path.name[:15],
        body=body,
    )


def caught_mails(settings: Settings, limit: int = SHOWN) -> list[CaughtMail]:
    """The newest caught messages, newest first."""
    folder = mailbox_dir(settings)
    if not folder.is_dir():
        return []
    paths = sorted(folder.glob("*.eml"), reverse=True)[:limit]
    return [_read(path) for path in paths]


if __name__ == "__main__":
    from dutydesk.logconfig import configure_logging

    configure_logging(get_settings(), "demo-mail")
    os.umask(0o077)  # the messages may name people and tickets: the desk's user only
    run_catcher(get_settings())
