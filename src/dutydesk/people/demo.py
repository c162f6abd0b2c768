"""Demo people: the admin and a few users of each role."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people.models import Role, User
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
    # They share one password, so they share its hash: an argon2 hash takes most of a second
    # on a small machine, and the first demo start should not spend seconds on seven of them.
    shared_hash: str | None = None
    for username, role, email in DEMO_USERS:
        if find_user(session, username) is not None:
            continue
        if shared_hash is None:
            user = add_user(session, username, role.value, email=email, password=context.password)
            shared_hash = user.password_hash
        else:
            session.add(
                User(username=username, role=role.value, email=email, password_hash=shared_hash)
            )
            session.flush()
        context.note(f"user {username} ({role.value})")
