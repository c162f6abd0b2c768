"""The demo users: one of each role and more, all signing in with the demo password."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people import service as people
from dutydesk.people.demo import DEMO_USERS, seed_people
from dutydesk.people.models import User


def test_every_demo_user_signs_in_with_the_demo_password_and_is_made_once(db: Session) -> None:
    context = registry.DemoContext(password="demo password 1", made=[])
    seed_people(db, context)
    seed_people(db, context)
    assert db.scalar(select(func.count()).select_from(User)) == len(DEMO_USERS)
    for username, role, email in DEMO_USERS:
        user = people.authenticate(db, username, "demo password 1")
        assert user is not None, username
        assert (user.role, user.email) == (role.value, email)
        assert people.authenticate(db, username, "demo password 2") is None
