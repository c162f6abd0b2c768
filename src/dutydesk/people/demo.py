"""Demo people: the admin and a few users of each role."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people.models import Role
from dutydesk.people.service import add_user, find_user

DEMO_USERS: tuple[tuple[str, Role, str], ...] = (
    ("admin", Role.admin, "admin@desk.example"),
    ("ada", Role.approver, "ada@desk.example"),
    ("dirk", Role.approver, "dirk@desk.example"),
    ("olga", Role.operator, "olga@desk.example"),
    ("omar", Role.operator, "omar@desk.example"),
    ("vera", Role.viewer, "vera@desk.example"),
    ("vik", Role.viewer, "vik@desk.example"),
)


@registry.demo_seeder("people")
def seed_people(session: Session, context: registry.DemoContext) -> None:
    """Create the demo users that do not exist yet, all with the demo password."""
    for username, role, email in DEMO_USERS:
        if find_user(session, username) is None:
            add_user(session, username, role.value, email=email, password=context.password)
            context.note(f"user {username} ({role.value})")
