"""Deliveries: a real SMTP server and a local HTTP receiver get the notices in their formats;
failures are retried with backoff and end as dead letters; secrets are never shown back."""

from __future__ import annotations

import datetime as dt
from email.message import Message

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.duty import service as duty
from dutydesk.notify import escalation
from dutydesk.notify import service as notify
from dutydesk.notify.models import Channel, Delivery
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import TicketEvent
from tests.notify.conftest import T0, Receiver, Team


def deliver_all(db: Session, factory: sessionmaker[Session], now: dt.datetime) -> list[str]:
    """Send every due delivery as a worker would; the states they ended in."""
    db.commit()
    return [notify.deliver(factory, i, now=now) for i in notify.due_deliveries(db, now=now)]


def critical_ticket(db: Session, title: str = "Database down on db-1") -> tickets.Ticket:
    ticket = tickets.create_ticket(db, title=title, severity="critical", actor="test").ticket
    assert ticket is not None
    return ticket


def rotation_policy(db: Session) -> None:
    escalation.create_policy(
        db, name="critical", steps=[{"target": "rotation", "name": "primary", "wait_minutes": 5}]
    )


def test_critical_ticket_mails_whoever_is_on_duty_with_the_key_in_the_subject(
    db: Session, factory: sessionmaker[Session], team: Team, mail_server: list[Message]
) -> None:
    rotation_policy(db)
    ticket = critical_ticket(db)
    escalation.run_escalations(db, now=T0)
    assert deliver_all(db, factory, T0) == ["sent"]
    [mail] = mail_server
    assert mail["X-Rcpt"] == "ana@desk.example"
    assert mail["Subject"].startswith(f"[{ticket.key}] Database down")
    db.expire_all()
    reasons = [
        e.detail.get("reason") for e in db.scalars(select(TicketEvent)) if e.kind == "notified"
    ]
    assert "critical: first notification" in reasons and "first notification" in reasons


def test_with_an_override_in_force_the_mail_goes_to_the_stand_in(
    db: Session, factory: sessionmaker[Session], team: Team, mail_server: list[Message]
) -> None:
    rotation_policy(db)
    duty.add_override(
        db,
        team.rotation,
        username="ben",
        starts_at=T0 - dt.timedelta(hours=1),
        ends_at=T0 + dt.timedelta(hours=1),
        reason="swap",
        actor="ana",
        now=T0,
    )
    ticket = critical_ticket(db)
    escalation.run_escalations(db, now=T0)
    deliver_all(db, factory, T0)
    recipients = {m["X-Rcpt"]: m["Subject"] for m in mail_server}
    assert recipients["ben@desk.example"].startswith(f"[{ticket.key}]")
    assert "lea@desk.example" in recipients  # the lead heard about the override
    assert "ana@desk.example" not in recipients


def test_slack_discord_and_generic_webhook_bodies_arrive_in_their_formats(
    db: Session, factory: sessionmaker[Session], team: Team, receiver: Receiver
) -> None:
    for name, kind, url in [
        ("ops-slack", "slack", f"{receiver.url}/slack"),
        ("ops-discord", "discord", f"{receiver.url}/discord"),
        ("oncall", None, f"json://{receiver.url.removeprefix('http://')}/hook"),
    ]:
        notify.create_channel(db, name=name, url=url, kind=kind)
    escalation.create_policy(
        db,
        name="everywhere",
        steps=[
            {"target": "channel", "name": "ops-slack", "wait_minutes": 0},
            {"target": "channel", "name": "ops-discord", "wait_minutes": 0},
            {"target": "channel", "name": "oncall", "wait_minutes": 0},
        ],
    )
    ticket = critical_ticket(db)
    for _ in range(3):
        escalation.run_escalations(db, now=T0)
    assert deliver_all(db, factory, T0) == ["sent"] * 3
    [slack] = receiver.bodies("/slack")
    assert slack["text"].startswith(f"*[{ticket.key}] Database down")
    [discord] = receiver.bodies("/discord")
    assert discord["embeds"][0]["title"] == f"[{ticket.key}] Database down on db-1"
    [hook] = receiver.bodies("/hook")
    assert hook["event"]["type"] == "escalation"
    assert hook["alert_group_id"] == ticket.key
    assert hook["alert_group"]["state"] == "firing"
    assert hook["alert_group"]["title"] == "Database down on db-1"
    assert {"user", "integration", "notified_users", "responses", "webhook"} <= set(hook)


def test_receiver_failing_twice_gets_the_notice_once_after_backoff(
    db: Session, factory: sessionmaker[Session], receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    channel = notify.create_channel(db, name="ops", url=f"{receiver.url}/slack", kind="slack")
    delivery = notify.send_test(db, channel, actor="ana", now=T0)
    db.commit()
    assert notify.deliver(factory, delivery.id, now=T0) == "failed"
    assert notify.deliver(factory, delivery.id, now=T0) == "skipped"  # waits its backoff
    assert notify.deliver(factory, delivery.id, now=T0 + dt.timedelta(seconds=30)) == "failed"
    assert notify.deliver(factory, delivery.id, now=T0 + dt.timedelta(seconds=59)) == "skipped"
    assert notify.deliver(factory, delivery.id, now=T0 + dt.timedelta(seconds=90)) == "sent"
    assert notify.deliver(factory, delivery.id, now=T0 + dt.timedelta(hours=1)) == "skipped"
    db.expire_all()
    row = db.get(Delivery, delivery.id)
    assert row is not None and (row.state, row.attempts, row.reason) == ("sent", 3, "test")
    assert len(receiver.requests) == 3
    assert len([b for _, b in receiver.requests if b]) == 3


def test_notice_failing_every_time_becomes_a_dead_letter_that_can_be_retried(
    db: Session,
    factory: sessionmaker[Session],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUTYDESK_NOTIFY_MAX_ATTEMPTS", "2")
    from tests.conftest import clear_caches

    clear_caches()
    receiver.statuses = [503, 503]
    channel = notify.create_channel(db, name="ops", url=f"{receiver.url}/x", kind="discord")
    delivery = notify.send_test(db, channel, actor="ana", now=T0)
    db.commit()
    notify.deliver(factory, delivery.id, now=T0)
    assert notify.deliver(factory, delivery.id, now=T0 + dt.timedelta(hours=1)) == "dead"
    db.expire_all()
    dead = notify.list_deliveries(db, state="dead")
    assert [d.id for d in dead] == [delivery.id]
    assert "answered 503" in (dead[0].last_error or "")
    notify.retry(db, dead[0])
    db.commit()
    assert notify.deliver(factory, delivery.id, now=dt.datetime.now(dt.UTC)) == "sent"


def test_channel_rate_cap_holds_the_rest_for_later(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_NOTIFY_RATE_PER_MINUTE", "2")
    from tests.conftest import clear_caches

    clear_caches()
    channel = notify.create_channel(db, name="ops", url="json://127.0.0.1:9/")
    for n in range(3):
        notify.add_delivery(
            db,
            subject=f"s{n}",
            target="channel:ops",
            channel=channel.name,
            kind=channel.kind,
            address=channel.url,
            reason="test",
            title="t",
            next_attempt_at=T0,
            sent_at=None,
        )
    db.commit()
    assert len(notify.due_deliveries(db, now=T0)) == 2
    first = db.scalars(select(Delivery).order_by(Delivery.id)).first()
    assert first is not None
    first.sent_at = T0
    first.state = "sent"
    db.commit()
    assert len(notify.due_deliveries(db, now=T0)) == 1


@pytest.mark.parametrize(
    ("url", "kind", "message"),
    [
        ("nonsense://what", None, "invalid apprise URL"),
        ("https://", "slack", "has no host"),
        ("ana@", "email", "not an e-mail address"),
        ("slack://a/b/c", "pager", "unknown channel kind"),
    ],
)
def test_bad_channel_urls_are_refused_and_nothing_is_saved(
    db: Session, url: str, kind: str | None, message: str
) -> None:
    with pytest.raises(notify.NotifyError, match=message):
        notify.create_channel(db, name="bad", url=url, kind=kind)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Channel)) == 0


def test_secrets_in_channel_urls_are_masked() -> None:
    slack = notify.mask_url("https://hooks.slack.com/services/T0123/B0456/abcdefSECRETxyz")
    assert "abcdefSECRETxyz" not in slack and slack.startswith("https://hooks.slack.com/")
    assert "hunter2" not in notify.mask_url("mailtos://ana:hunter2@mail.example?to=x@y.z")
    assert "tok3n" not in notify.mask_url("json://127.0.0.1:9/hook?token=tok3n")
    assert "DISCORDTOKEN" not in notify.mask_url("discord://1234567/DISCORDTOKEN")


def test_quiet_hours_hold_non_critical_notices_until_they_end_in_the_users_zone(
    db: Session, team: Team
) -> None:
    notify.set_quiet_hours(db, team.ana, time_zone="Asia/Tokyo", starts="22:00", ends="07:00")
    night = dt.datetime(2026, 11, 4, 14, 0, tzinfo=dt.UTC)  # 23:00 in Tokyo
    [held] = notify.notify_user(
        db, team.ana, subject="s1", reason="test", title="t", body="", now=night
    )
    assert held.next_attempt_at == dt.datetime(2026, 11, 4, 22, 0, tzinfo=dt.UTC)  # 07:00 JST
    [urgent] = notify.notify_user(
        db, team.ana, subject="s2", reason="test", title="t", body="", critical=True, now=night
    )
    assert urgent.next_attempt_at == night
    day = dt.datetime(2026, 11, 4, 3, 0, tzinfo=dt.UTC)  # noon in Tokyo
    [normal] = notify.notify_user(
        db, team.ana, subject="s3", reason="test", title="t", body="", now=day
    )
    assert normal.next_attempt_at == day
    with pytest.raises(notify.NotifyError, match="unknown time zone"):
        notify.set_quiet_hours(db, team.ben, time_zone="Nowhere/X", starts="22:00", ends="07:00")


def test_closing_a_ticket_tells_whoever_was_notified_that_it_is_resolved_once(
    db: Session, factory: sessionmaker[Session], team: Team, mail_server: list[Message]
) -> None:
    rotation_policy(db)
    ticket = critical_ticket(db)
    escalation.run_escalations(db, now=T0)
    deliver_all(db, factory, T0)
    tickets.close_ticket(db, ticket, resolution="disk cleaned", actor="ana")
    for _ in range(2):
        escalation.run_escalations(db, now=T0 + dt.timedelta(minutes=1))
        deliver_all(db, factory, T0 + dt.timedelta(minutes=1))
    assert [m["Subject"] for m in mail_server] == [
        f"[{ticket.key}] Database down on db-1",
        f"[{ticket.key}] resolved: Database down on db-1",
    ]


def test_a_silence_ending_on_a_ticket_tells_whoever_heard_about_it_once(
    db: Session, factory: sessionmaker[Session], team: Team, mail_server: list[Message]
) -> None:
    rotation_policy(db)
    ticket = critical_ticket(db)
    escalation.run_escalations(db, now=T0)
    deliver_all(db, factory, T0)
    tickets.record_notification(
        db,
        ticket,
        channel="silence",
        recipient="desk",
        reason="silence #3 ended: db maintenance (by ana)",
        actor="alarms",
    )
    for _ in range(2):
        escalation.run_escalations(db, now=T0 + dt.timedelta(minutes=1))
        deliver_all(db, factory, T0 + dt.timedelta(minutes=1))
    assert [m["Subject"] for m in mail_server] == [
        f"[{ticket.key}] Database down on db-1",
        f"[{ticket.key}] silence ended: Database down on db-1",
    ]
