"""A real desk (the app under uvicorn) in a thread on a free loopback port, for senders that
run as their own processes (Alertmanager, swaks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.db import build_engine
from dutydesk.settings import get_settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving_desk(
    tmp: Path, records_factory: sessionmaker[Session] | None = None
) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """Serve the app on a fresh migrated SQLite database (and the given record store, else the
    settings'); yields its base URL and sessions."""
    from dutydesk.web.app import create_app

    url = f"sqlite:///{tmp / 'desk.sqlite'}"
    migrations.upgrade(url)
    engine = build_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    port = free_port()
    app = create_app(get_settings(), factory, records_factory=records_factory)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield base, factory
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
