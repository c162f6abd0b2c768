"""The desk's own processes record that they are alive; the overview reads those rows.

Each of web, worker, beat, smtp and the backup daemon runs a thread that writes its row
(role, host, pid) every DUTYDESK_PROCESS_HEARTBEAT_SECONDS. A role whose newest row is older
than 1.5 times that is shown red: a process that died, hangs at start-up or lost the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import retry_when_locked, transaction, utcnow
from dutydesk.metrics.models import ProcessHeartbeat
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)
ROLES = ("web", "worker", "beat", "smtp", "backupd")
# A row this much older than its interval is late: the process is taken as missing.
LATE_FACTOR = 1.5
# Rows of processes silent this long are deleted (a restarted process gets a new pid).
FORGET_AFTER = dt.timedelta(days=1)


def beat(session: Session, role: str, *, host: str | None = None, pid: int | None = None) -> None:
    """Record that the process `role` on `host` with `pid` (default: this one) is alive now."""
    host = host or socket.gethostname()
    pid = pid or os.getpid()
    row = session.scalar(
        select(ProcessHeartbeat).where(
            ProcessHeartbeat.role == role,
            ProcessHeartbeat.host == host,
            ProcessHeartbeat.pid == pid,
        )
    )
    now = utcnow()
    if row is None:
        session.add(ProcessHeartbeat(role=role, host=host, pid=pid, started_at=now, beat_at=now))
    else:
        row.beat_at = now


def start(role: str, factory: sessionmaker[Session] | None = None) -> threading.Thread:
    """Start this process's heartbeat thread for `role` (a daemon: it ends with the process)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat_until, args=(role, factory, stop), name=f"heartbeat-{role}", daemon=True
    )
    thread.start()
    return thread


def _beat_until(role: str, factory: sessionmaker[Session] | None, stop: threading.Event) -> None:
    interval = get_settings().process_heartbeat_seconds
    while True:
        try:
            retry_when_locked(lambda: _beat_in(role, factory), what=f"the {role} heartbeat")
        except SQLAlchemyError as error:
            # The overview shows the process late until the database answers again.
            log.warning("could not record the %s heartbeat: %s", role, error)
        if stop.wait(interval):
            return


def _beat_in(role: str, factory: sessionmaker[Session] | None) -> None:
    with transaction(factory, actor=f"heartbeat:{role}") as session:
        beat(session, role)


@dataclass(frozen=True)
class ProcessState:
    """One role's liveness as the overview shows it."""

    role: str
    last_at: dt.datetime | None
    alive: bool
    instances: int

    @property
    def summary(self) -> str:
        """A few words: `alive, 2 processes` or `no heartbeat for 42 s` or `never seen`."""
        if self.last_at is None:
            return "no heartbeat recorded"
        if self.alive:
            return f"alive ({self.instances} process{'es' if self.instances != 1 else ''})"
        return "missing: no heartbeat since " + self.last_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def states(session: Session, *, now: dt.datetime | None = None) -> list[ProcessState]:
    """Every role's newest heartbeat and whether it is recent enough to count as alive."""
    now = now or utcnow()
    late = dt.timedelta(seconds=get_settings().process_heartbeat_seconds * LATE_FACTOR)
    rows = session.execute(select(ProcessHeartbeat.role, ProcessHeartbeat.beat_at))
    newest: dict[str, dt.datetime] = {}
    alive_count: dict[str, int] = {}
    for role, beat_at in rows:
        if role not in newest or beat_at > newest[role]:
            newest[role] = beat_at
        if now - beat_at <= late:
            alive_count[role] = alive_count.get(role, 0) + 1
    return [
        ProcessState(role, newest.get(role), alive_count.get(role, 0) > 0, alive_count.get(role, 0))
        for role in ROLES
    ]


def forget_old(session: Session, *, now: dt.datetime | None = None) -> int:
    """Delete the rows of processes silent for a day; returns how many."""
    cutoff = (now or utcnow()) - FORGET_AFTER
    result = session.execute(delete(ProcessHeartbeat).where(ProcessHeartbeat.beat_at < cutoff))
    return int(getattr(result, "rowcount", 0))
