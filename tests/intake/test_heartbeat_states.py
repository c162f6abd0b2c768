"""Heartbeat checks keep Healthchecks' states (new, up, late, down) and raise their alarm by
themselves; a ping body over the limit still counts, cut; every ping answer says the limit."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms._cron import parse_cron
from dutydesk.alarms.models import Alarm
from dutydesk.intake._heartbeat import MAX_RUN_OUTPUT, state_of, sweep
from dutydesk.intake.models import InboxItem, Ping, PingCheck
from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from dutydesk.tickets.models import Ticket
from tests.conftest import clear_caches
from tests.intake.conftest import make_integration

UTC = dt.UTC


def check_of(db: Session, name: str) -> PingCheck:
    db.expire_all()
    check = db.scalar(select(PingCheck).where(PingCheck.integration.has(name=name)))
    assert check is not None
    return check


def tickets(db: Session) -> list[Ticket]:
    db.expire_all()
    return list(db.scalars(select(Ticket)))


def shown(client: TestClient, db: Session, name: str) -> dict[str, object]:
    reader = people.create_token(db, f"reader-{name}", ["read"]).secret
    db.commit()
    answer = client.get(
        f"/api/v1/integrations/{name}", headers={"Authorization": f"Bearer {reader}"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_a_check_goes_new_up_late_down_with_one_ticket_and_up_again_resolves(
    client: TestClient, db: Session
) -> None:
    made = make_integration(
        db,
        "heartbeat",
        "nightly-backup",
        period_seconds=3600,
        grace_seconds=600,
        close_on_resolve=True,
    )
    assert shown(client, db, "nightly-backup")["status"] == "new"
    assert sweep(db, dt.datetime.now(UTC) + dt.timedelta(days=30)) == []  # new never goes down

    assert client.get(made.path or "").status_code == 200
    check = check_of(db, "nightly-backup")
    last = check.last_success_at
    assert last is not None and check.status == "up"
    api = shown(client, db, "nightly-backup")
    assert api["status"] == "up"
    assert dt.datetime.fromisoformat(str(api["next_deadline"])) == last + dt.timedelta(hours=1)

    late_at = last + dt.timedelta(hours=1, minutes=5)
    assert state_of(check, late_at).status == "late"
    assert state_of(check, late_at).deadline == last + dt.timedelta(hours=1, minutes=10)
    assert sweep(db, late_at) == []  # late is shown, it raises nothing
    assert db.scalar(select(Alarm).where(Alarm.state == "firing")) is None
    assert tickets(db) == []

    down_at = last + dt.timedelta(hours=1, minutes=10, seconds=1)
    assert sweep(db, down_at) == ["nightly-backup"]
    assert sweep(db, down_at + dt.timedelta(hours=5)) == []  # down once, not again
    db.commit()
    check = check_of(db, "nightly-backup")
    assert check.status == "down" and state_of(check, down_at).status == "down"
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.state == "firing" and alarm.title == "Heartbeat missed: nightly-backup"
    assert alarm.occurrences == 1
    (ticket,) = tickets(db)
    assert ticket.status == "open" and ticket.title == "Heartbeat missed: nightly-backup"
    assert shown(client, db, "nightly-backup")["status"] == "down"

    assert client.post(made.path or "", content=b"backup done").status_code == 200
    assert check_of(db, "nightly-backup").status == "up"
    db.expire_all()
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.state == "resolved"
    (ticket,) = tickets(db)
    assert ticket.status == "closed"


def test_the_beat_enqueues_the_sweep_and_its_job_makes_an_overdue_check_down_once(
    client: TestClient, db: Session
) -> None:
    made = make_integration(db, "heartbeat", "exporter", period_seconds=3600, grace_seconds=60)
    registry.load_domains()
    registry.due_work["intake.heartbeats"](db)
    assert db.scalar(select(Job).where(Job.kind == "intake.heartbeat_sweep")) is None  # all new
    client.get(made.path or "")
    check = check_of(db, "exporter")
    check.last_success_at = dt.datetime.now(UTC) - dt.timedelta(hours=2)
    db.commit()
    registry.due_work["intake.heartbeats"](db)
    assert db.scalar(select(Job).where(Job.kind == "intake.heartbeat_sweep")) is not None
    job = registry.job_kinds["intake.heartbeat_sweep"]
    assert job(db, {}) == {"down": 1}
    assert job(db, {}) == {"down": 0}
    db.commit()
    assert len(tickets(db)) == 1


@pytest.mark.parametrize("action", ["fail", "1"])
def test_a_fail_or_nonzero_exit_ping_makes_the_check_down_at_once(
    client: TestClient, db: Session, action: str
) -> None:
    made = make_integration(db, "heartbeat", "reindex")
    client.get(made.path or "")
    assert client.post(f"{made.path}/{action}", content=b"disk full").status_code == 200
    check = check_of(db, "reindex")
    assert check.status == "down"
    assert state_of(check, dt.datetime.now(UTC)).status == "down"
    assert shown(client, db, "reindex")["status"] == "down"
    (ticket,) = tickets(db)
    assert ticket.status == "open"
    assert sweep(db, dt.datetime.now(UTC) + dt.timedelta(days=3)) == []  # no second alarm


def test_a_cron_check_in_berlin_is_late_after_the_run_time_on_its_clock_across_dst(
    client: TestClient, db: Session
) -> None:
    make_integration(
        db,
        "heartbeat",
        "berlin-job",
        schedule="30 3 * * *",
        tz="Europe/Berlin",
        grace_seconds=600,
    )
    check = check_of(db, "berlin-job")
    # Saturday 28 March 2026 03:31 CET; the clocks go forward on Sunday at 02:00.
    check.last_success_at = dt.datetime(2026, 3, 28, 2, 31, tzinfo=UTC)
    check.status = "up"
    db.commit()
    # Sunday's 03:30 is CEST (UTC+2): 01:30 UTC, not the 02:30 UTC of the day before.
    expected = dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    before = state_of(check, expected - dt.timedelta(minutes=1))
    assert (before.status, before.deadline) == ("up", expected)
    assert state_of(check, expected + dt.timedelta(minutes=5)).status == "late"
    assert sweep(db, expected + dt.timedelta(minutes=9)) == []
    assert sweep(db, expected + dt.timedelta(minutes=10)) == ["berlin-job"]
    api = shown(client, db, "berlin-job")
    assert (api["schedule"], api["tz"], api["status"]) == ("30 3 * * *", "Europe/Berlin", "down")


def test_cron_next_run_follows_the_zone_offset() -> None:
    daily = parse_cron("0 9 * * *")
    new_york = dt.timezone(dt.timedelta(hours=-5))
    after = dt.datetime(2026, 12, 7, 13, 0, tzinfo=UTC)  # 08:00 in New York
    assert daily.next_after(after, new_york) == dt.datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert daily.next_after(after) == dt.datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def test_a_bad_schedule_or_time_zone_is_refused_by_name(client: TestClient, db: Session) -> None:
    admin = people.create_token(db, "admin", ["admin"]).secret
    db.commit()
    headers = {"Authorization": f"Bearer {admin}"}
    for extra, named in (({"schedule": "61 * * * *"}, "minute"), ({"tz": "Mars/Base"}, "Mars")):
        answer = client.post(
            "/api/v1/integrations",
            json={"name": "cron", "kind": "heartbeat", **extra},
            headers=headers,
        )
        assert 400 <= answer.status_code < 500 and named in answer.text


def test_a_ping_body_over_the_inbox_limit_counts_and_is_cut_with_a_note(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_INBOX_MAX_BYTES", "2048")
    clear_caches()
    made = make_integration(db, "heartbeat", "big-output")
    body = b"".join(b"line %05d\n" % n for n in range(1000))  # 11 000 bytes
    answer = client.post(f"{made.path}/0", content=body)
    assert answer.status_code == 200 and answer.text == "OK"
    assert answer.headers["Ping-Body-Limit"] == "2048"
    assert check_of(db, "big-output").status == "up"
    (ping,) = db.scalars(select(Ping))
    assert ping.body_cut_from == len(body)
    assert ping.body.encode() == body[:2048]
    item = db.scalars(select(InboxItem).order_by(InboxItem.id.desc())).first()
    assert item is not None and item.outcome == "accepted" and item.truncated
    assert "ping body of 11000 bytes cut to its first 2048" in (item.reason or "")


def test_a_ping_body_over_100_kb_keeps_its_first_100_kb(client: TestClient, db: Session) -> None:
    made = make_integration(db, "heartbeat", "chatty")
    body = b"x" * MAX_RUN_OUTPUT + b"the end"
    answer = client.post(made.path or "", content=body)
    assert answer.headers["Ping-Body-Limit"] == str(MAX_RUN_OUTPUT) == "100000"
    (ping,) = db.scalars(select(Ping))
    assert (len(ping.body), ping.body_cut_from) == (MAX_RUN_OUTPUT, len(body))
    assert "the end" not in ping.body


def test_every_ping_answer_carries_the_body_limit(client: TestClient, db: Session) -> None:
    made = make_integration(db, "heartbeat", "any")
    other = make_integration(db, "generic", "not-a-beat")
    answers = [
        client.get(made.path or ""),
        client.head(made.path or ""),
        client.post(f"{made.path}/start"),
        client.post(f"{made.path}/log", content=b"half way"),
        client.post(f"{made.path}/0"),
        client.post(f"{made.path}/2"),
        client.get(f"{made.path}/fail"),
        client.get(f"{made.path}/sideways"),
        client.get("/ping/0b0e8f5e-0000-4000-8000-000000000000"),
        client.get(f"/ping/{other.token}"),
    ]
    assert [a.status_code for a in answers] == [200] * 7 + [400, 401, 404]
    assert {a.headers.get("Ping-Body-Limit") for a in answers} == {str(MAX_RUN_OUTPUT)}


def test_the_console_shows_each_heartbeat_state_and_its_next_deadline(
    client: TestClient, db: Session
) -> None:
    from tests.conftest import make_user, sign_in

    make_integration(db, "heartbeat", "nightly", period_seconds=3600, grace_seconds=600)
    make_integration(db, "heartbeat", "hourly-cron", schedule="5 * * * *", tz="Europe/Berlin")
    fresh = make_integration(db, "heartbeat", "fresh")
    nightly = check_of(db, "nightly")
    nightly.status = "up"
    nightly.last_success_at = dt.datetime.now(UTC) - dt.timedelta(minutes=65)
    db.commit()
    client.get(fresh.path or "")
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/integrations").text
    row = page[page.index("<td>nightly</td>") :].split("</tr>")[0]
    assert "beat-late" in row and "down after" in row
    row = page[page.index("<td>hourly-cron</td>") :].split("</tr>")[0]
    assert "beat-new" in row and "5 * * * *" in row and "Europe/Berlin" in row
    row = page[page.index("<td>fresh</td>") :].split("</tr>")[0]
    assert "beat-up" in row and "late after" in row
