"""The demo tickets: a few hundred over two months, notes, sources, links; seeded once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people.demo import seed_people
from dutydesk.tickets import _search
from dutydesk.tickets._query import TicketFilters
from dutydesk.tickets.demo import seed_tickets
from dutydesk.tickets.models import Ticket, TicketLink, TicketNote


def test_demo_seeds_two_months_of_triaged_tickets_once(db: Session) -> None:
    context = registry.DemoContext(password="demo password 1", made=[])
    seed_people(db, context)
    seed_tickets(db, context)
    count = db.scalar(select(func.count()).select_from(Ticket))
    assert count is not None and 200 <= count <= 600
    sources = set(db.scalars(select(Ticket.source).distinct()))
    assert len(sources) >= 4
    assert db.scalar(select(func.count()).select_from(TicketNote))
    assert db.scalar(select(func.count()).select_from(TicketLink))
    statuses = set(db.scalars(select(Ticket.status).distinct()))
    assert statuses == {"open", "acknowledged", "closed"}
    unassigned = db.scalar(
        select(func.count()).where(Ticket.status == "open", Ticket.assignee_id.is_(None))
    )
    assert unassigned, "the next meeting has something to look at"
    # "quokka" appears only in notes: search finds those tickets through their notes.
    assert _search.search(db, "quokka", TicketFilters())
    assert not db.scalar(select(func.count()).where(Ticket.title.contains("quokka")))

    seed_tickets(db, context)
    assert db.scalar(select(func.count()).select_from(Ticket)) == count
