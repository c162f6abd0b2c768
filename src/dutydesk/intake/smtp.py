"""`dutydesk smtp`: the e-mail intake listener (aiosmtpd), loopback by default.

Every message is kept in the inbox, then becomes an alarm or a note on a ticket (see
`intake.mail`); the SMTP reply says which, or why not.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import session_factory, transaction
from dutydesk.intake.mail import receive_message
from dutydesk.settings import Settings
from dutydesk.web.metrics import count_mail

log = logging.getLogger(__name__)


class IntakeHandler:
    """aiosmtpd handler: each message's DATA goes to the inbox and then to alarms or tickets."""

    def __init__(self, factory: sessionmaker[Session], limit: int, name: str = "smtp") -> None:
        self.factory = factory
        self.limit = limit
        self.name = name  # the listener's address, as the mail metrics label it
        # SQLite has one writer; one message at a time per process is plenty for mail.
        self.lock = threading.Lock()

    def _handle(self, raw: bytes, peer: str | None, mail_from: str, rcpt: list[str]) -> str:
        reply: str | None = None
        try:
            with self.lock, transaction(self.factory, immediate=True, actor="smtp") as session:
                result = receive_message(
                    session,
                    raw,
                    source="smtp",
                    peer=peer,
                    mail_from=mail_from,
                    recipients=rcpt,
                    limit=self.limit,
                )
            reply = result.reply
        finally:
            count_mail("smtp", self.name, reply)
        log.info("mail from %s kept as inbox item %s: %s", mail_from, result.item_id, result.reply)
        return result.reply

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        """Take one message."""
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        return await asyncio.get_running_loop().run_in_executor(
            None,
            self._handle,
            raw,
            peer,
            str(envelope.mail_from or ""),
            [str(r) for r in envelope.rcpt_tos],
        )


def listener(
    settings: Settings, factory: sessionmaker[Session] | None = None, *, port: int | None = None
) -> Controller:
    """An SMTP listener on the configured (or given) address; call `.start()` and `.stop()`."""
    port = settings.smtp_port if port is None else port
    handler = IntakeHandler(
        factory or session_factory(), settings.inbox_max_bytes, f"{settings.smtp_host}:{port}"
    )
    # Messages up to 4x the inbox limit reach the handler (kept truncated, answered 552);
    # aiosmtpd refuses anything larger before it is read.
    return Controller(
        handler,
        hostname=settings.smtp_host,
        port=port,
        data_size_limit=settings.inbox_max_bytes * 4,
    )


def run_smtp(settings: Settings) -> None:
    """Serve SMTP until SIGTERM or Ctrl-C (blocks)."""
    controller = listener(settings)
    controller.start()
    log.info("SMTP intake listening on %s:%s", settings.smtp_host, settings.smtp_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    log.info("SMTP intake stopped")
