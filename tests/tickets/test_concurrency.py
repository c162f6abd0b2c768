"""50 parallel alarms with one fingerprint leave exactly one open ticket with 50 occurrences,
on a real SQLite file and on PostgreSQL: separate connections racing, no shared test session.

Once through the service with 50 threads, once as 50 parallel HTTP requests to a real server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.db import build_engine, session_factory, transaction
from dutydesk.people import service as people
from dutydesk.settings import get_settings
from dutydesk.tickets import _search, service
from dutydesk.tickets._query import TicketFilters
from dutydesk.tickets.models import EventKind, Ticket, TicketEvent
from tests.browser_support import free_port
from tests.conftest import fresh_database_url
from tests.tickets.conftest import alarm

PARALLEL = 50


@pytest.fixture
def real_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own, migrated, with a pool big enough for every thread at once."""
    url = fresh_database_url(backend, tmp_path, "ticket_race")
    migrations.upgrade(url)
    engine = build_engine(url, pool_size=PARALLEL, max_overflow=10)
    yield engine
    engine.dispose()


def the_tickets(factory: sessionmaker[Session]) -> list[tuple[str, int, int]]:
    """(status, occurrences, occurrence events + 1) of every ticket."""
    with factory() as session:
        rows = []
        for ticket in session.scalars(select(Ticket)):
            events = session.scalar(
                select(func.count()).where(
                    TicketEvent.ticket_id == ticket.id,
                    TicketEvent.kind.in_([EventKind.opened, EventKind.occurrence]),
                )
            )
            rows.append((ticket.status, ticket.occurrences, int(events or 0)))
        return rows


def test_fifty_parallel_alarms_with_one_fingerprint_make_one_ticket(real_engine: Engine) -> None:
    factory = session_factory(real_engine)
    start = threading.Barrier(PARALLEL)
    new: list[bool] = []

    def send(_number: int) -> None:
        start.wait()
        with transaction(factory, immediate=True, actor="race") as session:
            outcome = service.open_or_update_ticket(session, alarm("one-fingerprint"))
        new.append(outcome.is_new)

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(send, range(PARALLEL)))

    assert the_tickets(factory) == [("open", PARALLEL, PARALLEL)]
    assert new.count(True) == 1
    with factory() as session:
        hits = _search.search(session, "disk usage", TicketFilters())
        assert len(hits) == 1, "the index holds one document for the one ticket"


def test_fifty_parallel_http_requests_with_one_fingerprint_make_one_ticket(
    real_engine: Engine,
) -> None:
    from dutydesk.web.app import create_app

    factory = session_factory(real_engine)
    with transaction(factory) as session:
        secret = people.create_token(session, "race", ["write"]).secret
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(get_settings(), factory), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        start = threading.Barrier(PARALLEL)

        def post(_number: int) -> int:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                start.wait()
                answer = client.post(
                    "/api/v1/tickets",
                    json={"title": "Disk full", "severity": "high", "fingerprint": "one"},
                    headers={"Authorization": f"Bearer {secret}"},
                )
                assert answer.status_code in (200, 201), answer.text
                assert (answer.status_code == 201) == answer.json()["is_new"]
                return int(answer.json()["occurrences"])

        with ThreadPoolExecutor(PARALLEL) as pool:
            counts = sorted(pool.map(post, range(PARALLEL)))
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert counts == list(range(1, PARALLEL + 1)), "each request saw its own occurrence"
    assert the_tickets(factory) == [("open", PARALLEL, PARALLEL)]
