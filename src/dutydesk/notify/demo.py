"""Demo notifications: e-mail channels, a policy for critical tickets, and the downtime
contact list. Under `dutydesk up --demo` all mail goes to the demo's local catcher
(`notify.democatcher`), so every notice is delivered and none leaves the machine."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.notify import escalation, service
from dutydesk.notify.models import Channel, ContactList, EscalationPolicy

DEMO_CHANNELS = (
    ("ops-mail", "mailto:ops@desk.example", "email"),
    ("data-team-mail", "mailto:data-team@desk.example", "email"),
)


@registry.demo_seeder("notify")
def seed_notify(session: Session, context: registry.DemoContext) -> None:
    """Channels, a critical-ticket policy and a contact list, each once."""
    for name, url, kind in DEMO_CHANNELS:
        if session.scalar(select(Channel.id).where(Channel.name == name)) is None:
            service.create_channel(session, name=name, url=url, kind=kind, team="ops")
            context.note(f"channel {name}")
    if session.scalar(select(ContactList.id).where(ContactList.name == "downtime")) is None:
        service.create_contact_list(
            session, name="downtime", members=["vera", "vik", "study-users@lab.example"]
        )
        context.note("contact list downtime")
    if session.scalar(select(EscalationPolicy.id)) is None:
        escalation.create_policy(
            session,
            name="critical tickets",
            steps=[
                {"target": "rotation", "name": "ops", "wait_minutes": 15},
                {"target": "channel", "name": "ops-mail", "wait_minutes": 15},
                {"target": "user", "name": "ada", "wait_minutes": 30},
            ],
            repeat=2,
        )
        context.note("escalation policy 'critical tickets'")
