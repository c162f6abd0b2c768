"""The beat tick starts escalations and queues a delivery job; a worker sends the notices."""

from __future__ import annotations

from email.message import Message

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.notify import escalation
from dutydesk.notify.models import Delivery
from dutydesk.tickets import service as tickets
from tests.notify.conftest import Team


def test_tick_escalates_a_critical_ticket_and_the_delivery_job_mails_the_person_on_duty(
    db: Session, factory: sessionmaker[Session], team: Team, mail_server: list[Message]
) -> None:
    escalation.create_policy(
        db, name="critical", steps=[{"target": "rotation", "name": "primary", "wait_minutes": 5}]
    )
    ticket = tickets.create_ticket(db, title="API down", severity="critical", actor="t").ticket
    assert ticket is not None
    db.commit()
    jobs.tick(factory)
    job = db.scalars(select(Job).where(Job.kind == "notify.deliver_due")).one()
    assert jobs.execute(job.id, "worker-1", factory) == "succeeded"
    assert jobs.execute(job.id, "worker-2", factory) == "skipped"
    db.expire_all()
    delivery = db.scalars(select(Delivery)).one()
    assert (delivery.state, delivery.reason) == ("sent", "first notification")
    assert [m["Subject"] for m in mail_server] == [f"[{ticket.key}] API down"]
