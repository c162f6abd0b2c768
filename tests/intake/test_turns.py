"""Intake's writer turns and how a signal lands by id.

`land_signal` (ids only, no objects loaded for a firing) makes the same rows as
`raise_signal` (the objects), the batch writer writes several requests in one transaction and
falls back to one each when a turn fails, the rate limit holds inside one turn (a lost insert
race included), the inbox row is written once with its outcome, and the open ticket lookup
uses the partial unique index.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.alarms import service as alarms
from dutydesk.alarms.models import Alarm
from dutydesk.alarms.service import Signal, land_signal
from dutydesk.alarms.silences import create_silence
from dutydesk.db import is_sqlite, remembering, transaction, utcnow
from dutydesk.intake import _receive, service
from dutydesk.intake._batch import BatchWriter
from dutydesk.intake._receive import Inbound, Reply
from dutydesk.intake.hooks import _one_alert
from dutydesk.intake.models import InboxItem, Integration
from dutydesk.intake.service import NewToken
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import KEY_PREFIX, Ticket, TicketEvent
from tests.conftest import clear_caches
from tests.intake.conftest import make_integration

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
RaiseSignal = Callable[[Session, Signal], alarms.SignalOutcome]
# The ORM path itself, whatever a test wraps `alarms.raise_signal` with.
orm_raise: RaiseSignal = alarms.raise_signal


# --- helpers -----------------------------------------------------------------------------------


def fire(fingerprint: str, **changes: Any) -> Signal:
    values: dict[str, Any] = {
        "source": "prometheus",
        "fingerprint": fingerprint,
        "title": "Disk full on db-1",
        "severity": "warning",
        "description": "first words",
        "labels": {"instance": "db-1", "team": "storage"},
        "annotations": {"runbook": "r1"},
        "payload": {"value": 91},
        "occurred_at": T0,
    }
    values.update(changes)
    return Signal(**values)


def with_fingerprint(signal: Signal, fingerprint: str) -> Signal:
    """A copy of `signal` for another alarm (its ticket key renamed alike)."""
    values = {name: getattr(signal, name) for name in Signal.__dataclass_fields__}
    values["fingerprint"] = fingerprint
    if signal.ticket_key:
        values["ticket_key"] = f"{fingerprint.split('-')[0]}-{signal.ticket_key}"
    return Signal(**values)


@pytest.fixture
def raised(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`raise_signal` wrapped: the fingerprints it was called for (`land_signal` calls it for
    resolve signals only)."""
    calls: list[str] = []
    original: RaiseSignal = alarms.raise_signal

    def counting(session: Session, signal: Signal) -> alarms.SignalOutcome:
        calls.append(signal.fingerprint)
        return original(session, signal)

    monkeypatch.setattr(alarms, "raise_signal", counting)
    yield calls


def rows_of(db: Session, fingerprint: str) -> dict[str, Any]:
    """What a fingerprint's signals left: its alarm and its tickets (oldest first) with their
    timelines, without ids or the fingerprint itself."""
    db.flush()
    db.expire_all()
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == fingerprint))
    assert alarm is not None
    found = list(
        db.scalars(select(Ticket).where(Ticket.fingerprint == alarm.ticket_key).order_by(Ticket.id))
    )
    ids = [ticket.id for ticket in found]
    ticket_rows = []
    for ticket in found:
        events = db.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
        ticket_rows.append(
            {
                "occurrences": ticket.occurrences,
                "last_seen_at": ticket.last_seen_at,
                "first_seen_at": ticket.first_seen_at,
                "payload": ticket.payload,
                "severity": ticket.severity,
                "status": ticket.status,
                "title": ticket.title,
                "seen_before": ids.index(ticket.seen_before_id) if ticket.seen_before_id else None,
                "events": [(e.kind, e.at, e.actor, detail_of(e.detail, ids)) for e in events],
            }
        )
    return {
        "state": alarm.state,
        "occurrences": alarm.occurrences,
        "title": alarm.title,
        "severity": alarm.severity,
        "description": alarm.description,
        "labels": alarm.labels,
        "annotations": alarm.annotations,
        "first_fired_at": alarm.first_fired_at,
        "last_fired_at": alarm.last_fired_at,
        "resolved_at": alarm.resolved_at,
        "ticket": ids.index(alarm.ticket_id) if alarm.ticket_id in ids else alarm.ticket_id,
        "tickets": ticket_rows,
    }


def detail_of(detail: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    """An event's detail with the ticket it names "seen before" told by its place."""
    if "seen_before" in detail:
        seen = int(str(detail["seen_before"]).removeprefix(KEY_PREFIX))
        return {**detail, "seen_before": ids.index(seen)}
    return detail


def land_both(
    db: Session, signal: Signal, suffix: str = ""
) -> tuple[alarms.Landed, alarms.SignalOutcome]:
    """Land `signal` on fingerprint "short" with `land_signal` and a copy on "orm" with
    `raise_signal`."""
    landed = land_signal(db, with_fingerprint(signal, f"short{suffix}"))
    outcome = orm_raise(db, with_fingerprint(signal, f"orm{suffix}"))
    assert landed.told == (outcome.ticket is not None)
    assert landed.is_new == outcome.is_new
    return landed, outcome


def assert_same_rows(db: Session, suffix: str = "") -> dict[str, Any]:
    short, orm = rows_of(db, f"short{suffix}"), rows_of(db, f"orm{suffix}")
    assert short == orm
    return short


# --- 1. by id or with objects, the same rows ---------------------------------------------------


def test_repeats_land_the_same_both_ways_without_loading_objects(
    db: Session, raised: list[str]
) -> None:
    later = T0 + dt.timedelta(minutes=10)
    sequence = [
        fire("x"),
        # title (with odd spacing), severity raised to critical, payload changed
        fire("x", title="  Disk   full on db-1 (95%) ", severity="critical", payload={"v": 95}),
        # severity lowered, labels and annotations changed, no description (kept), later
        fire(
            "x",
            severity="info",
            description="",
            labels={"instance": "db-1", "team": "dba"},
            annotations={"runbook": "r2"},
            occurred_at=later,
        ),
        # earlier than the last firing; an empty payload lands the labels instead
        fire(
            "x",
            severity="low",
            description="second words",
            labels={"instance": "db-1", "team": "dba"},
            annotations={"runbook": "r2"},
            payload={},
            occurred_at=T0 + dt.timedelta(minutes=2),
        ),
        # the same again: nothing but one more occurrence
        fire(
            "x",
            severity="low",
            description="second words",
            labels={"instance": "db-1", "team": "dba"},
            annotations={"runbook": "r2"},
            payload={},
            occurred_at=T0 + dt.timedelta(minutes=2),
        ),
    ]
    first_ticket: int | None = None
    for number, signal in enumerate(sequence):
        landed, _ = land_both(db, signal)
        assert landed.told and landed.is_new == (number == 0)
        first_ticket = first_ticket or landed.ticket_id
        assert landed.ticket_id == first_ticket
        assert_same_rows(db)
    # No firing went through `raise_signal` by way of `land_signal`.
    assert raised == []
    rows = assert_same_rows(db)
    assert rows["occurrences"] == 5 and rows["state"] == "firing"
    assert rows["title"] == "Disk full on db-1"  # the third firing took the first title back
    assert rows["severity"] == "info" and rows["description"] == "second words"
    assert rows["labels"] == {"instance": "db-1", "team": "dba"}
    assert rows["last_fired_at"] == later and rows["resolved_at"] is None
    (ticket,) = rows["tickets"]
    assert ticket["occurrences"] == 5 and ticket["last_seen_at"] == later
    # The ticket keeps the worst severity it saw, and the latest payload given.
    assert ticket["severity"] == "critical" and ticket["status"] == "open"
    assert ticket["payload"] == {"labels": {"instance": "db-1", "team": "dba"}}
    assert [event[0] for event in ticket["events"]] == ["opened"] + ["occurrence"] * 4


def test_land_signal_answers_by_id_through_a_firing_life(db: Session) -> None:
    first = land_signal(db, fire("fp"))
    assert first.is_new and first.told and first.ticket_id is not None
    again = land_signal(db, fire("fp", occurred_at=T0 + dt.timedelta(minutes=1)))
    assert again == alarms.Landed(first.alarm_id, first.ticket_id, is_new=False, told=True)
    resolving = fire("fp", resolved=True, occurred_at=T0 + dt.timedelta(minutes=2))
    assert land_signal(db, resolving) == alarms.Landed(
        first.alarm_id, first.ticket_id, is_new=False, told=True
    )
    assert land_signal(db, resolving).told is False  # a repeated resolve tells nobody
    refired = land_signal(db, fire("fp", occurred_at=T0 + dt.timedelta(minutes=3)))
    assert refired == alarms.Landed(first.alarm_id, first.ticket_id, is_new=False, told=True)
    rows = rows_of(db, "fp")
    assert rows["state"] == "firing" and rows["occurrences"] == 3
    assert rows["resolved_at"] is None and rows["tickets"][0]["occurrences"] == 3
    # No alarm or ticket was loaded into the session for the firings.
    db.expunge_all()
    land_signal(db, fire("fp", occurred_at=T0 + dt.timedelta(minutes=4)))
    assert not any(isinstance(item, (Alarm, Ticket)) for item in db.identity_map.values())


# --- 2. resolves, re-firings, closed tickets, silences -----------------------------------------


def test_a_resolved_signal_lands_as_raise_signal_would(db: Session, raised: list[str]) -> None:
    land_both(db, fire("x"))
    raised.clear()
    landed, _ = land_both(db, fire("x", resolved=True, occurred_at=T0 + dt.timedelta(hours=1)))
    assert raised == ["short"] and landed.told
    rows = assert_same_rows(db)
    assert rows["state"] == "resolved" and rows["resolved_at"] == T0 + dt.timedelta(hours=1)
    assert [event[0] for event in rows["tickets"][0]["events"]] == [
        "opened",
        "resolved_signal",
    ]


def test_firing_a_resolved_alarm_again_lands_as_raise_signal_would(
    db: Session, raised: list[str]
) -> None:
    land_both(db, fire("x"))
    land_both(db, fire("x", resolved=True, occurred_at=T0 + dt.timedelta(hours=1)))
    raised.clear()
    landed, _ = land_both(db, fire("x", occurred_at=T0 + dt.timedelta(hours=2)))
    assert raised == [] and landed.told and not landed.is_new
    rows = assert_same_rows(db)
    assert rows["state"] == "firing" and rows["resolved_at"] is None
    assert rows["occurrences"] == 2 and rows["tickets"][0]["occurrences"] == 2


def test_a_closed_ticket_makes_a_new_one_seen_before(db: Session, raised: list[str]) -> None:
    land_both(db, fire("x"))
    for fingerprint in ("short", "orm"):
        ticket = db.scalar(select(Ticket).where(Ticket.fingerprint == fingerprint))
        assert ticket is not None
        tickets.close_ticket(db, ticket, resolution="fixed", actor="test", at=T0)
    raised.clear()
    landed, outcome = land_both(db, fire("x", occurred_at=T0 + dt.timedelta(minutes=5)))
    assert raised == []
    assert landed.is_new and landed.told and outcome.ticket is not None
    rows = assert_same_rows(db)
    old, new = rows["tickets"]
    assert old["status"] == "closed" and old["occurrences"] == 1
    assert new["status"] == "open" and new["occurrences"] == 1 and new["seen_before"] == 0
    assert new["events"][0][0] == "opened"
    assert new["events"][0][3]["seen_before"] == 0  # names the old ticket
    assert rows["ticket"] == 1 and rows["occurrences"] == 2


def test_a_silenced_repeat_is_not_told_to_the_ticket(db: Session, raised: list[str]) -> None:
    land_both(db, fire("x"))
    # Matches the repeat's new severity, not the alarm's current one.
    create_silence(
        db,
        starts_at=T0,
        ends_at=T0 + dt.timedelta(hours=2),
        reason="maintenance of db-1",
        actor="test",
        matchers={"team": "storage", "severity": "critical"},
    )
    raised.clear()
    landed, outcome = land_both(
        db, fire("x", severity="critical", occurred_at=T0 + dt.timedelta(minutes=5))
    )
    assert raised == []
    assert not landed.told and outcome.ticket is None
    assert landed.ticket_id is not None  # the alarm's ticket, not told
    rows = assert_same_rows(db)
    assert rows["occurrences"] == 2 and rows["severity"] == "critical"
    (ticket,) = rows["tickets"]
    assert ticket["occurrences"] == 1 and ticket["severity"] == "warning"
    assert [event[0] for event in ticket["events"]] == ["opened"]
    # Out of the silence's labels the ticket is told again.
    land_both(db, fire("x", severity="high", occurred_at=T0 + dt.timedelta(minutes=6)))
    rows = assert_same_rows(db)
    assert rows["occurrences"] == 3 and rows["tickets"][0]["occurrences"] == 2


def test_a_silenced_first_firing_lands_as_raise_signal_would(db: Session) -> None:
    create_silence(
        db,
        starts_at=T0,
        ends_at=T0 + dt.timedelta(hours=2),
        reason="maintenance of db-1",
        actor="test",
        matchers={"instance": "db-1"},
    )
    landed, outcome = land_both(db, fire("x"))
    assert not landed.told and landed.ticket_id is None and outcome.ticket is None
    rows = assert_same_rows(db)
    assert rows["state"] == "firing" and rows["occurrences"] == 1 and rows["tickets"] == []
    landed, _ = land_both(db, fire("x", occurred_at=T0 + dt.timedelta(minutes=1)))
    assert not landed.told
    assert assert_same_rows(db)["occurrences"] == 2


def test_alarms_sharing_a_ticket_land_as_raise_signal_would(db: Session) -> None:
    def one(alarm: str, **changes: Any) -> Signal:
        return fire(alarm, ticket_key="group", **changes)

    minutes = iter(range(1, 100))
    steps: list[tuple[str, dict[str, Any]]] = [
        ("-a", {}),
        ("-b", {"severity": "high"}),  # lands on the open ticket of the group
        ("-a", {"severity": "critical"}),
        ("-a", {"resolved": True}),  # b still fires: the ticket is not told
        ("-b", {"resolved": True}),  # the last one: the ticket is told
        ("-b", {}),
    ]
    landed = set()
    for alarm, changes in steps:
        at = T0 + dt.timedelta(minutes=next(minutes))
        land_both(db, one(alarm, occurred_at=at, **changes), suffix=alarm)
        landed.add(alarm)
        for each in landed:
            assert_same_rows(db, each)
    rows = assert_same_rows(db, "-b")
    (ticket,) = rows["tickets"]
    assert ticket["occurrences"] == 4 and ticket["severity"] == "critical"
    assert [event[0] for event in ticket["events"]] == [
        "opened",
        "occurrence",
        "occurrence",
        "resolved_signal",
        "occurrence",
    ]


# --- request plumbing --------------------------------------------------------------------------


def generic_work(made: NewToken, alert: dict[str, Any]) -> Callable[[Session], Reply]:
    """What the generic endpoint hands the writer for one request."""
    body = json.dumps(alert).encode()
    return functools.partial(
        _receive._handle,
        source="generic",
        kinds=("generic",),
        token=made.token,
        path=made.path or "",
        inbound=Inbound(
            body=body, headers={"content-type": "application/json"}, method="POST", client="t"
        ),
        size=len(body),
        oversized=False,
        handler=_one_alert,
    )


def alone_of(
    factory: sessionmaker[Session], work: Callable[[Session], Reply], calls: list[str], name: str
) -> Callable[[], Reply]:
    def alone() -> Reply:
        calls.append(name)
        with transaction(factory, immediate=True, actor="intake") as session:
            return work(session)

    return alone


def run_together(
    writer: BatchWriter,
    requests: list[tuple[Callable[[Session], Reply], Callable[[], Reply]]],
    monkeypatch: pytest.MonkeyPatch,
) -> list[Reply]:
    """Submit all requests before the writer's thread starts, so one turn sees them all."""

    async def submit() -> list[Reply]:
        with monkeypatch.context() as held:
            held.setattr(writer, "_ensure_thread", lambda: None)
            waiting = [asyncio.ensure_future(writer.run(work, alone)) for work, alone in requests]
            await asyncio.sleep(0)  # every request is queued now
            assert writer._queue.qsize() == len(requests)
        writer._ensure_thread()
        return list(await asyncio.wait_for(asyncio.gather(*waiting), timeout=30))

    return asyncio.run(submit())


def alarm_of(db: Session, reply: Reply) -> Alarm:
    alarm = db.get(Alarm, reply.content["alert_id"])
    assert alarm is not None
    return alarm


# --- 3. turns ----------------------------------------------------------------------------------


def test_requests_submitted_together_are_written_in_one_turn(
    factory: sessionmaker[Session],
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    raised: list[str],
) -> None:
    made = make_integration(db, "generic")
    writer = BatchWriter(factory, "intake")
    alerts = [
        {"title": "disk", "dedup_key": "disk", "severity": "warning"},
        {"title": "disk", "dedup_key": "disk", "severity": "critical"},
        {"title": "cpu", "dedup_key": "cpu"},
        {"title": "disk", "dedup_key": "disk"},
        {"title": "disk", "dedup_key": "disk", "status": "resolved"},
        {"title": "disk", "dedup_key": "disk"},
    ]
    alone_calls: list[str] = []
    requests = []
    for number, alert in enumerate(alerts):
        work = generic_work(made, alert)
        requests.append((work, alone_of(factory, work, alone_calls, str(number))))
    replies = run_together(writer, requests, monkeypatch)
    assert (writer.turns, writer.written) == (1, 6) and alone_calls == []
    # The two plain repeats of "disk" took the short path inside the turn (at most its first
    # firing, its resolve and its firing again went the ORM way).
    assert len([fingerprint for fingerprint in raised if fingerprint.endswith(":disk")]) <= 3
    assert [reply.status for reply in replies] == [202] * 6
    assert [reply.content["is_new"] for reply in replies] == [True, False, True] + [False] * 3
    disk, cpu = replies[0].content, replies[2].content
    assert {r.content["alert_id"] for i, r in enumerate(replies) if i != 2} == {disk["alert_id"]}
    assert cpu["alert_id"] != disk["alert_id"] and cpu["ticket_id"] != disk["ticket_id"]
    assert all(r.content["ticket_id"] == disk["ticket_id"] for i, r in enumerate(replies) if i != 2)
    db.expire_all()
    alarm = alarm_of(db, replies[0])
    # fired, again, again (short path), resolved, fired again
    assert (alarm.state, alarm.occurrences, alarm.severity) == ("firing", 4, "warning")
    ticket = db.get(Ticket, disk["ticket_id"])
    assert ticket is not None
    assert (ticket.occurrences, ticket.severity, ticket.status) == (4, "critical", "open")
    kinds = list(
        db.scalars(
            select(TicketEvent.kind)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(TicketEvent.id)
        )
    )
    assert kinds == ["opened", "occurrence", "occurrence", "resolved_signal", "occurrence"]
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [item.id for item in items] == [reply.content["inbox_id"] for reply in replies]
    assert [item.alarm_ids for item in items] == [[r.content["alert_id"]] for r in replies]
    assert {item.outcome for item in items} == {"accepted"}


def test_a_failing_request_costs_the_others_nothing_and_leaves_nothing_half_written(
    factory: sessionmaker[Session], db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_integration(db, "generic", rate_limit=100)
    writer = BatchWriter(factory, "intake")
    alone_calls: list[str] = []
    good = [generic_work(made, {"title": f"alert {n}", "dedup_key": f"k{n}"}) for n in range(4)]
    bad_landing = generic_work(made, {"title": "bad", "dedup_key": "bad"})

    def bad(session: Session) -> Reply:
        bad_landing(session)  # writes its alarm, ticket and inbox row, then fails
        raise RuntimeError("boom")

    def bad_alone() -> Reply:
        alone_calls.append("bad")
        return Reply(500, {"detail": "kept as failed"})

    requests = [
        (work, alone_of(factory, work, alone_calls, f"good{n}")) for n, work in enumerate(good)
    ]
    requests.insert(2, (bad, bad_alone))
    replies = run_together(writer, requests, monkeypatch)
    assert (writer.turns, writer.written) == (1, 5)
    assert sorted(alone_calls) == ["bad", "good0", "good1", "good2", "good3"]
    assert replies[2].status == 500 and replies[2].content == {"detail": "kept as failed"}
    kept = [reply for n, reply in enumerate(replies) if n != 2]
    assert [reply.status for reply in kept] == [202] * 4
    db.expire_all()
    for number, reply in enumerate(kept):
        assert reply.content["is_new"] is True
        alarm = alarm_of(db, reply)
        assert alarm.fingerprint == f"{made.integration.name}:k{number}"
        assert alarm.occurrences == 1 and alarm.ticket_id == reply.content["ticket_id"]
        item = db.get(InboxItem, reply.content["inbox_id"])
        assert item is not None and item.outcome == "accepted"
    # Nothing of the failed turn stayed: one alarm, ticket and inbox row per good request,
    # none of the bad one, and the rate limit counted the good requests once each.
    assert db.scalar(select(func.count()).select_from(Alarm)) == 4
    assert db.scalar(select(func.count()).select_from(Ticket)) == 4
    assert db.scalar(select(func.count()).select_from(InboxItem)) == 4
    assert db.scalar(select(Alarm).where(Alarm.fingerprint.endswith(":bad"))) is None
    assert service.rate_counts(db, made.integration, since=utcnow() - dt.timedelta(minutes=2)) == (
        4,
        0,
    )


def test_the_writer_thread_serves_turns_one_after_another(
    factory: sessionmaker[Session], db: Session
) -> None:
    made = make_integration(db, "generic")
    writer = BatchWriter(factory, "intake")

    async def one_by_one() -> list[Reply]:
        replies = []
        for _ in range(3):
            work = generic_work(made, {"title": "t", "dedup_key": "same"})
            replies.append(await asyncio.wait_for(writer.run(work, lambda: Reply(599, {})), 30))
        return replies

    replies = asyncio.run(one_by_one())
    assert (writer.turns, writer.written) == (3, 3)
    assert [reply.content["is_new"] for reply in replies] == [True, False, False]
    db.expire_all()
    assert alarm_of(db, replies[0]).occurrences == 3


# --- 4. the rate limit inside one turn ---------------------------------------------------------


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """Intake's clock held in the middle of the current minute."""
    held: dt.datetime = utcnow().replace(second=30, microsecond=0)
    monkeypatch.setattr(_receive, "utcnow", lambda: held)
    return held


def one_turn(
    factory: sessionmaker[Session], works: list[Callable[[Session], Reply]]
) -> list[Reply]:
    with transaction(factory, immediate=True, actor="intake") as session:
        remembering(session)
        return [work(session) for work in works]


def test_a_turn_keeps_to_the_rate_limit_and_counts_it_on_commit(
    factory: sessionmaker[Session], db: Session, now: dt.datetime
) -> None:
    made = make_integration(db, "generic", rate_limit=5)
    work = generic_work(made, {"title": "t", "dedup_key": "same"})
    replies = one_turn(factory, [work] * 8)
    assert [reply.status for reply in replies] == [202] * 5 + [429] * 3
    assert all("rate limit of 5 requests" in reply.content["detail"] for reply in replies[5:])
    db.expire_all()
    assert service.rate_counts(db, made.integration, since=now) == (5, 3)
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert [(item.outcome, item.status_code) for item in items] == [("accepted", 202)] * 5 + [
        ("rejected", 429)
    ] * 3
    assert alarm_of(db, replies[0]).occurrences == 5
    # A second turn in the same minute finds the limit reached.
    again = one_turn(factory, [work] * 3)
    assert [reply.status for reply in again] == [429] * 3
    db.expire_all()
    assert service.rate_counts(db, made.integration, since=now) == (5, 6)
    assert alarm_of(db, replies[0]).occurrences == 5


def test_turns_count_against_the_same_limit_until_it_is_reached(
    factory: sessionmaker[Session], db: Session, now: dt.datetime
) -> None:
    made = make_integration(db, "generic", rate_limit=5)
    work = generic_work(made, {"title": "t", "dedup_key": "same"})
    assert [reply.status for reply in one_turn(factory, [work] * 3)] == [202] * 3
    assert [reply.status for reply in one_turn(factory, [work] * 3)] == [202, 202, 429]
    db.expire_all()
    assert service.rate_counts(db, made.integration, since=now) == (5, 1)


def test_a_rolled_back_turn_counts_nothing(
    factory: sessionmaker[Session], db: Session, now: dt.datetime
) -> None:
    made = make_integration(db, "generic", rate_limit=5)
    work = generic_work(made, {"title": "t", "dedup_key": "same"})

    def failing(session: Session) -> Reply:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        one_turn(factory, [work] * 4 + [failing])
    db.expire_all()
    assert service.rate_counts(db, made.integration, since=now) == (0, 0)
    assert [reply.status for reply in one_turn(factory, [work] * 6)] == [202] * 5 + [429]


def test_a_lost_insert_race_inside_a_turn_keeps_the_slots_counted(
    factory: sessionmaker[Session], db: Session, now: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_integration(db, "generic", rate_limit=100)
    tickets.open_or_update_ticket(db, tickets.Alarm(source="x", fingerprint="raced", title="r"))
    db.commit()
    looked: list[str] = []
    original = tickets._add_occurrence_if_open

    def late(session: Session, alarm: tickets.Alarm, fingerprint: str, at: dt.datetime) -> Any:
        # The first look misses the ticket, as if another writer opened it just after: the
        # insert then loses to the unique index, its savepoint rolls back and the retry
        # finds the ticket.
        looked.append(fingerprint)
        return None if len(looked) == 1 else original(session, alarm, fingerprint, at)

    with transaction(factory, immediate=True, actor="intake") as session:
        remembering(session)
        integration = session.get(Integration, made.integration.id)
        assert integration is not None
        taken = [service.take_rate_slot(session, integration, now) for _ in range(3)]
        with monkeypatch.context() as racing:
            racing.setattr(tickets, "_add_occurrence_if_open", late)
            tickets.open_or_update_ticket(
                session, tickets.Alarm(source="x", fingerprint="raced", title="r")
            )
        taken += [service.take_rate_slot(session, integration, now) for _ in range(2)]
    assert taken == [True] * 5 and len(looked) == 2
    db.expire_all()
    raced = db.scalar(select(Ticket).where(Ticket.fingerprint == "raced"))
    assert raced is not None and raced.occurrences == 2
    assert service.rate_counts(db, made.integration, since=now) == (5, 0)


# --- 5. the inbox row, written once with its outcome -------------------------------------------


def test_the_inbox_row_is_written_once_with_its_outcome(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_integration(db, "generic")
    accepted = client.post(made.path or "", json={"title": "disk", "labels": {"host": "db-1"}})
    assert accepted.status_code == 202, accepted.text
    unknown = client.post("/hooks/generic/not-a-real-token-123", json={"title": "x"})
    assert unknown.status_code == 401
    monkeypatch.setenv("DUTYDESK_INBOX_MAX_BYTES", "2048")
    clear_caches()
    big = json.dumps({"title": "big", "message": "x" * 5000}).encode()
    oversized = client.post(
        made.path or "", content=big, headers={"content-type": "application/json"}
    )
    assert oversized.status_code == 413
    db.expire_all()
    items = list(db.scalars(select(InboxItem).order_by(InboxItem.id)))
    assert len(items) == 3  # one row a request, none left "received"
    answers = [accepted.json(), unknown.json(), oversized.json()]
    assert [item.id for item in items] == [answer["inbox_id"] for answer in answers]
    first, second, third = items
    content = accepted.json()
    assert (first.outcome, first.status_code, first.reason) == ("accepted", 202, None)
    assert first.alarm_ids == [content["alert_id"]] and first.ticket_ids == [content["ticket_id"]]
    assert first.integration_id == made.integration.id and json.loads(first.body)["title"] == "disk"
    assert first.source == "generic" and made.token not in first.path
    assert (second.outcome, second.status_code) == ("rejected", 401)
    assert second.reason == "unknown or disabled integration token"
    assert second.integration_id is None and second.alarm_ids == [] == second.ticket_ids
    assert (third.outcome, third.status_code) == ("rejected", 413)
    assert "over the limit of 2048" in (third.reason or "") and third.truncated
    assert third.body_bytes == len(big) and third.integration_id == made.integration.id
    assert db.scalar(select(func.count()).select_from(Alarm)) == 1


# --- 6. the open ticket lookup uses the partial unique index -----------------------------------


@contextlib.contextmanager
def statements(connection: Connection) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_rest: Any) -> None:
        seen.append((sql, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


def plan(connection: Connection, sql: str, parameters: Any) -> str:
    rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters).all()
    return " | ".join(str(row[-1]) for row in rows)


def test_the_open_ticket_lookups_use_the_partial_unique_index(db: Session) -> None:
    if not is_sqlite(db.get_bind()):
        pytest.skip("SQLite's query plan")
    connection = db.connection()
    compiled = tickets._OPEN_TICKET.compile(dialect=connection.dialect)
    values = compiled.construct_params({"fingerprint": "fp"})
    positional = tuple(values[name] for name in compiled.positiontup or ())
    assert "uq_tickets_open_fingerprint" in plan(connection, str(compiled), positional)
    # The statements as they run: a firing's lookup and a resolve's.
    land_signal(db, fire("fp"))
    with statements(connection) as seen:
        tickets._add_occurrence_if_open(
            db, tickets.Alarm(source="prometheus", fingerprint="fp", title="t"), "fp", T0
        )
        tickets._open_for(db, "fp")
    lookups = [(sql, p) for sql, p in seen if sql.lstrip().upper().startswith("SELECT")]
    assert len(lookups) == 2 and all("FROM tickets" in sql for sql, _ in lookups)
    for sql, parameters in lookups:
        assert "uq_tickets_open_fingerprint" in plan(connection, sql, parameters), sql


def test_a_caller_gone_with_its_event_loop_does_not_stop_the_writer(
    factory: sessionmaker[Session],
) -> None:
    writer = BatchWriter(factory, "intake")
    release = threading.Event()

    def slow(session: Session) -> str:
        release.wait(10)
        return "late"

    async def give_up() -> None:
        waiting = asyncio.ensure_future(writer.run(slow, lambda: "alone"))
        await asyncio.sleep(0.05)
        waiting.cancel()  # the caller stops waiting, and its loop closes below

    asyncio.run(give_up())
    release.set()

    async def ask() -> str:
        return await asyncio.wait_for(writer.run(lambda session: "answered", lambda: "-"), 10)

    assert asyncio.run(ask()) == "answered"
    assert writer.written == 2


def test_a_request_whose_handling_crashes_is_kept_as_failed(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_integration(db, "generic")

    def broken(session: Session, signal: Signal) -> alarms.Landed:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("dutydesk.intake.hooks.land_signal", broken)
    answer = client.post(made.path or "", json={"title": "disk", "dedup_key": "d1"})
    assert answer.status_code == 500
    assert "kept in the inbox" in answer.json()["detail"]
    db.expire_all()
    (item,) = db.scalars(select(InboxItem))
    assert (item.outcome, item.status_code) == ("failed", 500)
    assert item.reason == "internal error: RuntimeError: the disk is full"
    assert json.loads(item.body)["dedup_key"] == "d1" and made.token not in item.path
    assert db.scalar(select(func.count()).select_from(Alarm)) == 0
