"""Diagnosis in the console and the API: the ticket page's Diagnose button keeps the result as
the ticket's note and a page; who may run and read diagnoses."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.diagnose import services
from dutydesk.people.models import Role
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import TicketNote
from tests.conftest import make_user, sign_in


def make_service(db: Session) -> None:
    services.create_service(
        db,
        {
            "name": "shop",
            "databases": [{"name": "main", "url": "postgresql://app:s3cret@127.0.0.1:1/shop"}],
            "checklist": ["database", "changes"],
        },
        actor="test",
    )
    db.commit()


def test_the_diagnose_button_on_a_ticket_keeps_a_note_and_shows_the_page(
    client: TestClient, db: Session
) -> None:
    make_service(db)
    ticket = tickets.create_ticket(db, title="shop is down", actor="test").ticket
    assert ticket is not None
    db.commit()
    csrf = sign_in(client, db, make_user(db, Role.operator))
    page = client.get(f"/tickets/{ticket.key}")
    assert 'action="/diagnose"' in page.text and ">Diagnose</button>" in page.text
    ran = client.post(
        "/diagnose", data={"service": "shop", "ticket": ticket.key, "csrf_token": csrf}
    )
    assert ran.status_code == 303 and ran.headers["location"].startswith("/diagnoses/")
    shown = client.get(ran.headers["location"])
    assert shown.status_code == 200
    assert "<strong>unknown</strong>" in shown.text and "cannot connect to" in shown.text
    assert "s3cret" not in shown.text
    note = db.scalars(select(TicketNote).where(TicketNote.ticket_id == ticket.id)).one()
    assert "**UNKNOWN** Database" in note.body and "s3cret" not in note.body
    assert client.get(f"/tickets/{ticket.key}").text.count("Diagnosis of shop") == 1
    wrong = client.post("/diagnose", data={"service": "nothing", "csrf_token": csrf})
    assert wrong.status_code == 400 and "no service" in wrong.text
    no_csrf = client.post("/diagnose", data={"service": "shop"})
    assert no_csrf.status_code in (400, 403)


def test_viewers_read_diagnoses_and_only_operators_run_them(
    client: TestClient, db: Session
) -> None:
    make_service(db)
    assert client.get("/api/v1/diagnose/services").status_code == 401
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.viewer))
    listed = client.get("/api/v1/diagnose/services")
    assert listed.status_code == 200 and listed.json()[0]["name"] == "shop"
    assert "s3cret" not in listed.text
    assert client.post("/api/v1/diagnose/services/shop/run").status_code == 403
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.operator))
    ran = client.post("/api/v1/diagnose/services/shop/run")
    assert ran.status_code == 201, ran.text
    body = ran.json()
    assert [line["verdict"] for line in body["lines"]] == ["unknown", "ok"]
    assert client.get(f"/api/v1/diagnoses/{body['id']}").json() == body
    assert client.get("/api/v1/diagnoses/999999").status_code == 404
    assert client.post("/api/v1/diagnose/services/nothing/run").status_code == 404
    missing = client.post("/api/v1/diagnose/services/shop/run", params={"ticket": "DD-999999"})
    assert missing.status_code == 404
