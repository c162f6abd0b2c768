"""The notification pages: channels with masked secrets and "send test", dead letters with
"retry", "notify list"."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.notify import service as notify
from dutydesk.notify.models import Channel, ContactMethod, Delivery, QuietHours
from tests.conftest import make_user, sign_in
from tests.notify.conftest import Team

SECRET_HOOK = "https://hooks.slack.com/services/T0123/B0456/abcdefSECRETxyz"


def signed_in(client: TestClient, db: Session, role: str) -> TestClient:
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, role))
    return client


def test_channel_secrets_are_never_shown_back_and_send_test_queues_a_test_notice(
    client: TestClient, db: Session
) -> None:
    signed_in(client, db, "admin")
    bad = client.post("/notify/channels", data={"name": "x", "url": "nonsense://what"})
    assert bad.status_code == 422 and "invalid apprise URL" in bad.text
    added = client.post(
        "/notify/channels", data={"name": "ops", "url": SECRET_HOOK, "kind": "slack"}
    )
    assert added.status_code == 303
    page = client.get("/notify")
    assert "hooks.slack.com" in page.text and "abcdefSECRETxyz" not in page.text
    channel = db.scalars(select(Channel)).one()
    assert client.post(f"/notify/channels/{channel.id}/test").status_code == 303
    delivery = db.scalars(select(Delivery)).one()
    assert (delivery.reason, delivery.state, delivery.target) == ("test", "pending", "channel:ops")


def test_dead_letters_page_lists_them_and_retry_queues_them_again(
    client: TestClient, db: Session
) -> None:
    channel = notify.create_channel(db, name="ops", url="json://127.0.0.1:9/")
    delivery = notify.send_test(db, channel, actor="t")
    delivery.state, delivery.attempts, delivery.last_error = "dead", 6, "refused"
    db.commit()
    signed_in(client, db, "operator")
    page = client.get("/notify/deliveries?state=dead")
    assert "Dead letters" in page.text and "refused" in page.text
    assert client.post(f"/notify/deliveries/{delivery.id}/retry").status_code == 303
    db.expire_all()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
    assert client.post(f"/notify/deliveries/{delivery.id}/retry").status_code == 409


def test_notify_list_records_a_delivery_per_person_and_address(
    client: TestClient, db: Session, team: Team
) -> None:
    contact_list = notify.create_contact_list(
        db, name="downtime", members=["ana", "users@lab.example"]
    )
    db.commit()
    signed_in(client, db, "operator")
    sent = client.post(
        f"/notify/lists/{contact_list.id}/send",
        data={"subject": "Maintenance Saturday", "message": "Down 8-10."},
    )
    assert sent.status_code == 303
    rows = db.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(d.target, d.address, d.title) for d in rows] == [
        ("user:ana", "mailto:ana@desk.example", "Maintenance Saturday"),
        ("list:downtime", "mailto:users@lab.example", "Maintenance Saturday"),
    ]
    empty = client.post(f"/notify/lists/{contact_list.id}/send", data={"subject": " "})
    assert empty.status_code == 422
    assert db.scalar(select(func.count()).select_from(Delivery)) == 2


def test_admin_adds_a_policy_and_a_list_from_the_forms_and_bad_steps_are_refused(
    client: TestClient, db: Session, team: Team
) -> None:
    signed_in(client, db, "admin")
    bad = client.post("/notify/policies", data={"name": "p", "steps": "rotation primary"})
    assert bad.status_code == 422 and "TARGET NAME WAIT_MINUTES" in bad.text
    unknown = client.post("/notify/policies", data={"name": "p", "steps": "user ghost 5"})
    assert unknown.status_code == 422 and "no active user named &#39;ghost&#39;" in unknown.text
    good = client.post(
        "/notify/policies",
        data={"name": "p", "steps": "rotation primary 5\nuser lea 10", "repeat": "2"},
    )
    assert good.status_code == 303
    assert (
        client.post("/notify/lists", data={"name": "l", "members": "ana x@y.example"}).status_code
        == 303
    )
    page = client.get("/notify")
    assert "rotation primary, wait 5 min" in page.text and "x@y.example" in page.text


def test_a_person_adds_a_contact_method_tests_it_and_sets_quiet_hours(
    client: TestClient, db: Session
) -> None:
    signed_in(client, db, "operator")
    assert (
        client.post(
            "/notify/contact-methods", data={"url": "discord://123/SECRETTOKEN"}
        ).status_code
        == 303
    )
    page = client.get("/notify")
    assert "SECRETTOKEN" not in page.text and "discord://" in page.text
    method = db.scalars(select(ContactMethod)).one()
    assert client.post(f"/notify/contact-methods/{method.id}/test").status_code == 303
    delivery = db.scalars(select(Delivery)).one()
    assert (delivery.reason, delivery.channel) == ("test", f"discord:{method.id}")
    bad = client.post(
        "/notify/quiet-hours", data={"starts": "22:00", "ends": "07:00", "time_zone": "Moon/X"}
    )
    assert bad.status_code == 422
    ok = client.post(
        "/notify/quiet-hours", data={"starts": "22:00", "ends": "07:00", "time_zone": "Europe/Oslo"}
    )
    assert ok.status_code == 303
    assert db.get(QuietHours, method.user_id) is not None
