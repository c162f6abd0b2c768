"""Intake's writer: one thread per web process writes the signal requests waiting for it, all
of them in one transaction (up to `MAX_BATCH`), and answers each when that transaction has
committed.

Under a burst this turns a commit per request into a commit per turn, and lets a turn read
what all of its requests need only once (the integration of a token, the silences in force:
`dutydesk.db.session_memo`). When something in a turn fails, the turn is rolled back and
each of its requests is handled again alone, so one bad request costs the others nothing but
time.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import remembering, transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
# Requests written in one transaction at most: enough to keep up with a burst, few enough
# that the first of them is not kept waiting long for the last.
MAX_BATCH = 64


@dataclass
class _Waiting:
    work: Callable[[Session], Any]
    alone: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _answer(waiting: _Waiting, value: Any, error: BaseException | None) -> None:
    try:
        waiting.loop.call_soon_threadsafe(_settle, waiting.future, value, error)
    except RuntimeError:  # its event loop is closed: nobody waits any more
        log.debug("an intake request's caller is gone")


class BatchWriter:
    """Runs `work(session)` for each request in a shared transaction on its own thread."""

    def __init__(
        self, factory: sessionmaker[Session], actor: str, turn_lock: Path | None = None
    ) -> None:
        self._factory = factory
        self._actor = actor
        self._turn_lock = turn_lock
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.turns = 0
        self.written = 0

    async def run(self, work: Callable[[Session], T], alone: Callable[[], T]) -> T:
        """Queue `work` for the next turn and wait for its result.

        `alone` handles the same request in its own transaction: used when the shared one
        fails. The request is written even if its caller stops waiting.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Waiting(work, alone, loop, future))
        self._ensure_thread()
        return await asyncio.shield(future)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="intake-writer", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        lock = os.open(self._turn_lock, os.O_RDWR | os.O_CREAT, 0o600) if self._turn_lock else None
        while True:
            batch = [self._queue.get()]
            if lock is not None:
                # Several web processes on one SQLite file take turns here: a process waiting
                # for this lock wakes the moment it is free, where one waiting on SQLite's own
                # lock sleeps and polls. Requests that come meanwhile join the turn.
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._write(batch)
            except Exception as error:  # the thread must outlive any one turn
                log.exception("an intake turn failed outside its transaction")
                for waiting in batch:
                    _answer(waiting, None, error)
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, batch: list[_Waiting]) -> None:
        results: list[tuple[Any, BaseException | None]]
        try:
            with transaction(self._factory, immediate=True, actor=self._actor) as session:
                remembering(session)
                results = [(waiting.work(session), None) for waiting in batch]
        except Exception:
            log.warning(
                "an intake turn of %d requests failed; handling each alone",
                len(batch),
                exc_info=True,
            )
            results = []
            for waiting in batch:
                try:
                    results.append((waiting.alone(), None))
                except Exception as error:  # `alone` records its own failures; this is a bug
                    log.exception("intake request failed")
                    results.append((None, error))
        self.turns += 1
        self.written += len(batch)
        for waiting, (value, failure) in zip(batch, results, strict=True):
            _answer(waiting, value, failure)


def turn_lock_for(bind: Engine | Connection) -> Path | None:
    """The lock file the writers of an SQLite database file take turns by (None otherwise)."""
    url = bind.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(f"{url.database}.intake-turn")


def writer_of(state: Any, factory: sessionmaker[Session], actor: str) -> BatchWriter:
    """The app's batch writer (made on first use, in the event loop's thread)."""
    writer: BatchWriter | None = getattr(state, "intake_writer", None)
    if writer is None:
        lock = turn_lock_for(factory.kw["bind"])
        writer = state.intake_writer = BatchWriter(factory, actor, lock)
    return writer
