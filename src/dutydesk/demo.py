"""`dutydesk up --demo`: fill the desk with a living demo, once, whatever runs it twice."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from dutydesk import registry
from dutydesk.db import transaction
from dutydesk.people.service import generate_password
from dutydesk.settings import Settings

log = logging.getLogger(__name__)
DEMO_ACTOR = "demo"


def demo_password(settings: Settings) -> str:
    """DUTYDESK_DEMO_PASSWORD, else the one generated on the first demo start (kept in home)."""
    if settings.demo_password:
        return settings.demo_password
    stored = settings.ensure_home() / "demo-password"
    if not stored.exists():
        stored.write_text(generate_password())
        stored.chmod(0o600)
    return stored.read_text().strip()


def seed_demo(
    settings: Settings, factory: sessionmaker[Session] | None = None
) -> registry.DemoContext:
    """Run every domain's demo seeder, each in its own transaction."""
    registry.load_domains()
    context = registry.DemoContext(password=demo_password(settings), made=[])
    for name, seeder in registry.seeders_in_order():
        with transaction(factory, immediate=True, actor=DEMO_ACTOR) as session:
            seeder(session, context)
        log.info("demo seeder %s done", name)
    return context
