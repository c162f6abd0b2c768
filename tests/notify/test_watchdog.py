"""Watch the watcher: the self-check finds critical tickets nobody was told about, shows it on
the overview and pings the outside heartbeat URL (with `/fail` when failing)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.notify import watchdog
from dutydesk.tickets import service as tickets
from tests.conftest import clear_caches, make_user, sign_in
from tests.notify.conftest import Receiver


def test_self_check_fails_for_an_unnoticed_critical_ticket_and_pings_fail(
    db: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_WATCHDOG_URL", f"{receiver.url}/hb/abc")
    clear_caches()
    ticket = tickets.create_ticket(db, title="down", severity="critical", actor="t").ticket
    assert ticket is not None
    soon = ticket.first_seen_at + dt.timedelta(minutes=1)
    late = ticket.first_seen_at + dt.timedelta(minutes=6)
    assert watchdog.check(db, now=soon).ok  # still within DUTYDESK_WATCHDOG_MINUTES
    failing = watchdog.check(db, now=late)
    assert failing.unnoticed == [ticket.key]
    watchdog.ping(failing)
    tickets.record_notification(
        db, ticket, channel="email", recipient="ana", reason="first notification", actor="notify"
    )
    passing = watchdog.check(db, now=late)
    assert passing.ok
    watchdog.ping(passing)
    assert [path for path, _ in receiver.requests] == ["/hb/abc/fail", "/hb/abc"]


def test_overview_shows_the_self_check(client: TestClient, db: Session) -> None:
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/")
    assert 'id="self-check"' in page.text and "got a notice or escalation step in time" in page.text
