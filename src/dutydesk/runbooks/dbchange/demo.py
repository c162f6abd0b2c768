"""Demo database change: a small SQLite reporting database as a target, and Olga's script to
close stale requests, dry-run and waiting for a second person's signoff."""

from __future__ import annotations

import sqlite3

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people.service import find_user
from dutydesk.runbooks.dbchange import service
from dutydesk.runbooks.dbchange.models import DbChangeTarget
from dutydesk.settings import get_settings

TARGET = "demo-reporting"
SCRIPT = """-- tasks/20261207_close_stale_requests/close_stale_requests.sql
-- Requests stuck in 'processing' for more than a week are closed; ones never started are dropped.
UPDATE export_requests SET status = 'closed', note = 'closed by change; see tracker'
 WHERE status = 'processing' AND day < 20;
DELETE FROM export_requests WHERE status = 'queued' AND day < 3;
"""


def _reporting_database() -> str:
    """A SQLite file of 200 export requests in the home (made once), as a target URL."""
    path = get_settings().ensure_home() / "demo-reporting.sqlite"
    if not path.exists():
        connection = sqlite3.connect(path)
        try:
            connection.execute(
                "CREATE TABLE export_requests (id integer PRIMARY KEY, day integer NOT NULL, "
                "status text NOT NULL, note text)"
            )
            statuses = ("done", "processing", "queued", "done")
            connection.executemany(
                "INSERT INTO export_requests (id, day, status) VALUES (?, ?, ?)",
                [(i, i % 30, statuses[i % 4]) for i in range(1, 201)],
            )
            connection.commit()
        finally:
            connection.close()
    return f"sqlite:///{path}"


@registry.demo_seeder("runbooks.dbchange")
def seed_dbchange(session: Session, context: registry.DemoContext) -> None:
    """The demo target and one script with its dry run, pending signoff (once)."""
    if session.scalar(select(DbChangeTarget.id).where(DbChangeTarget.name == TARGET)):
        return
    author = find_user(session, "olga")
    if author is None:
        return
    target = service.save_target(
        session,
        name=TARGET,
        url=_reporting_database(),
        statement_timeout_ms=10_000,
        lock_timeout_ms=2_000,
        actor="demo",
    )
    change = service.new_change(
        session,
        target=target,
        script=SCRIPT,
        author=author,
        title="Close stale export requests",
        source="tasks/20261207_close_stale_requests/close_stale_requests.sql",
    )
    service.dry_run(session, change, author)
    context.note(f"database change #{change.id} on {TARGET}, dry-run, waiting for a signoff")
