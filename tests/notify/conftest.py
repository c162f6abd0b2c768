"""Fixtures of the notification tests: a real SMTP server (aiosmtpd) and a local HTTP
receiver on loopback, people, a rotation and a clock the tests control."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.orm import Session

from dutydesk.duty import service as duty
from dutydesk.duty.models import Rotation
from dutydesk.people.models import User
from tests.mail_support import smtp_server
from tests.tickets.conftest import add_person

# A Wednesday; the rotation below hands off on Mondays at 09:00 Berlin time (08:00 UTC).
T0 = dt.datetime(2026, 11, 4, 12, 0, tzinfo=dt.UTC)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mail_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Message]]:
    """A real SMTP server on loopback that the desk's outgoing mail settings point at."""
    with smtp_server(monkeypatch) as inbox:
        yield inbox.messages


@dataclass
class Receiver:
    """A local HTTP server that records every POST and answers with the statuses queued."""

    url: str
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies posted to `path`."""
        return [body for at, body in self.requests if at == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port, answering 200 unless told otherwise."""
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status < 400 else b"try again")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Team:
    """Three people with e-mail addresses and a weekly rotation of ana and ben led by lea."""

    ana: User
    ben: User
    lea: User
    rotation: Rotation


@pytest.fixture
def team(db: Session) -> Team:
    """ana and ben take turns on 'primary'; lea leads it."""
    ana = add_person(db, "ana", "operator", "ana@desk.example")
    ben = add_person(db, "ben", "operator", "ben@desk.example")
    lea = add_person(db, "lea", "operator", "lea@desk.example")
    rotation = duty.create_rotation(
        db,
        name="primary",
        members=["ana", "ben"],
        time_zone="Europe/Berlin",
        handoff_weekday="monday",
        handoff_time="09:00",
        lead="lea",
        now=T0,
    )
    db.commit()
    return Team(ana, ben, lea, rotation)
