"""A real SMTP server (aiosmtpd) on loopback that the desk's outgoing mail settings point at."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import clear_caches


class MailInbox:
    """What the SMTP server received, each message with its envelope recipients in `X-Rcpt`."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        message["X-Rcpt"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailInbox]:
    """Start the server and point DUTYDESK_MAIL_* at it until the block ends."""
    inbox = MailInbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("DUTYDESK_MAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("DUTYDESK_MAIL_PORT", str(port))
    monkeypatch.setenv("DUTYDESK_MAIL_STARTTLS", "false")
    clear_caches()
    try:
        yield inbox
    finally:
        controller.stop()
