"""The demo duty and notification set-up: seeded once, e-mail channels (the demo's mail goes
to its local catcher)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.duty.demo import seed_duty
from dutydesk.duty.models import DutyOverride, Rotation
from dutydesk.duty.service import who_is_on_duty
from dutydesk.notify.demo import seed_notify
from dutydesk.notify.models import Channel, ContactList, Delivery, EscalationPolicy
from dutydesk.people.demo import seed_people


def test_demo_seeds_a_rotation_with_an_override_a_policy_channels_and_a_list_once(
    db: Session,
) -> None:
    context = registry.DemoContext(password="demo password 1", made=[])
    for _ in range(2):
        seed_people(db, context)
        seed_duty(db, context)
        seed_notify(db, context)
    rotation = db.scalars(select(Rotation)).one()
    assert who_is_on_duty(rotation) is not None
    assert db.scalar(select(func.count()).select_from(DutyOverride)) == 1
    assert db.scalar(select(func.count()).select_from(Channel)) == 2
    assert db.scalar(select(func.count()).select_from(EscalationPolicy)) == 1
    assert db.scalar(select(func.count()).select_from(ContactList)) == 1
    lead_notice = db.scalars(select(Delivery)).one()
    assert (lead_notice.target, lead_notice.reason) == ("user:ada", "override created")
    for channel in db.scalars(select(Channel)):
        assert (channel.kind, channel.url.startswith("mailto:")) == ("email", True)
