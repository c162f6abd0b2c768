"""Diagnosis in the console and the API: the ticket page's Diagnose button keeps the result as
the ticket's note and a page; who may run and read diagnoses."""

from __future__ import annotations

import pytest
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
    assert "<option selected>shop</option>" in page.text, "the service the title names"
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


def test_the_diagnose_form_offers_the_services_and_chooses_the_one_the_alert_names(
    client: TestClient, db: Session
) -> None:
    for name in ("shop", "export", "search"):
        services.create_service(db, {"name": name, "checklist": ["changes"]}, actor="test")
    labelled = tickets.open_or_update_ticket(
        db,
        tickets.Alarm(
            source="alertmanager",
            fingerprint="fp-errors",
            title="High error rate on the shop's search page",
            description="",
            severity="high",
            payload={"labels": {"alertname": "Errors", "service": "search"}},
        ),
    ).ticket
    unnamed = tickets.create_ticket(db, title="Disk full on db-1", actor="test").ticket
    assert labelled is not None and unnamed is not None
    db.commit()
    sign_in(client, db, make_user(db, Role.operator))
    page = client.get(f"/tickets/{labelled.key}").text
    # The label wins over the title, which names two services.
    assert "<option selected>search</option>" in page
    assert "<option>export</option>" in page and "<option>shop</option>" in page
    assert "Choose a service" not in page
    page = client.get(f"/tickets/{unnamed.key}").text
    assert '<option value="">Choose a service</option>' in page
    assert "selected" not in page.split('id="diagnose"')[1].split("</form>")[0]


def test_without_services_the_ticket_page_says_so_and_links_admins_to_describe_one(
    client: TestClient, db: Session
) -> None:
    ticket = tickets.create_ticket(db, title="shop is down", actor="test").ticket
    assert ticket is not None
    db.commit()
    sign_in(client, db, make_user(db, Role.operator))
    page = client.get(f"/tickets/{ticket.key}").text
    assert 'action="/diagnose"' not in page
    assert "No service is described for diagnosis yet." in page
    sign_in(client, db, make_user(db, Role.admin, "ada"))
    page = client.get(f"/tickets/{ticket.key}").text
    assert '<a href="/diagnose/services/new">describe one</a>' in page


@pytest.mark.parametrize(
    ("title", "labels", "guess", "by_title"),
    [
        ("shop is down", {}, "shop", "shop"),
        ("SHOP is down", {}, "shop", "shop"),
        ("shopping cart slow", {}, None, None),  # a whole word only
        ("shop-api is down", {}, None, None),  # a name with a hyphen is another service's
        ("errors", {"job": "export"}, "export", None),
        ("errors", {"instance": 9100}, None, None),
        ("shop is down", {"service": "export"}, "export", "shop"),  # the label first
    ],
)
def test_the_service_a_ticket_names(
    title: str, labels: dict[str, object], guess: str | None, by_title: str | None
) -> None:
    names = ["export", "shop"]
    assert services.guess_service(names, title, "alertmanager", {"labels": labels}) == guess
    assert services.guess_service(names, title, "manual", None) == by_title


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


SHOP = {
    "name": "shop",
    "hosts": ["shop-vm1"],
    "databases": [{"name": "main", "url": "postgresql://app:s3cret@db1:5432/shop"}],
    "log_sources": ["/var/log/shop/*.log"],
    "projects": ["shop-web"],
    "pipelines": ["shop-ci"],
    "supervisors": [{"server": "shop-primary", "processes": ["shop:web"]}],
    "checklist": ["database", "instances"],
}


def audited(db: Session) -> list[tuple[str, str]]:
    from dutydesk.audit.models import AuditEvent

    db.expire_all()
    rows = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "diagnose_services")
        .order_by(AuditEvent.id)
    ).all()
    assert all("s3cret" not in str(row.before) + str(row.after) for row in rows)
    return [(row.action, row.actor) for row in rows]


def test_admins_add_edit_and_remove_services_through_the_api(
    client: TestClient, db: Session
) -> None:
    # A service holds database logins the desk connects with: admins only, as scrape targets.
    assert client.post("/api/v1/diagnose/services", json=SHOP).status_code == 401
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.viewer))
    assert client.post("/api/v1/diagnose/services", json=SHOP).status_code == 403
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.operator))
    assert client.post("/api/v1/diagnose/services", json=SHOP).status_code == 403
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.admin))
    made = client.post("/api/v1/diagnose/services", json=SHOP)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "shop" and "s3cret" not in made.text
    assert body["config"]["databases"] == [
        {"name": "main", "url": "postgresql://db1:5432/shop", "user": "app"}
    ]
    assert body["config"]["supervisors"] == [{"server": "shop-primary", "processes": ["shop:web"]}]
    assert body["config"]["checklist"] == ["database", "instances"]
    assert client.post("/api/v1/diagnose/services", json=SHOP).status_code == 409
    assert client.get("/api/v1/diagnose/services/shop").json() == body
    assert client.get(f"/api/v1/diagnose/services/{body['id']}").json() == body

    # An edit: a database URL without its password keeps the stored one.
    edited = {
        **SHOP,
        "name": "shop-eu",
        "databases": [{"name": "main", "url": "postgresql://app@db2:5432/shop"}],
        "checklist": None,
    }
    changed = client.put("/api/v1/diagnose/services/shop", json=edited)
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "shop-eu"
    assert changed.json()["config"]["checklist"] == list(services.DEFAULT_CHECKLIST)
    (login,) = services.database_logins(services.get_service(db, "shop-eu"))
    assert str(login.login.url.host) == "db2" and login.login.password == "s3cret"
    assert client.put("/api/v1/diagnose/services/shop", json=edited).status_code == 404
    client.post("/api/v1/diagnose/services", json={"name": "other"})
    taken = client.put("/api/v1/diagnose/services/other", json={"name": "shop-eu"})
    assert taken.status_code == 409 and "exists already" in taken.json()["detail"]

    ran = client.post("/api/v1/diagnose/services/shop-eu/run")
    assert ran.status_code == 201
    assert client.delete("/api/v1/diagnose/services/shop-eu").status_code == 204
    assert client.get("/api/v1/diagnose/services/shop-eu").status_code == 404
    assert client.get(f"/api/v1/diagnoses/{ran.json()['id']}").status_code == 404
    assert client.delete("/api/v1/diagnose/services/shop-eu").status_code == 404
    assert audited(db) == [
        ("create", "admin-user"),
        ("update", "admin-user"),
        ("create", "admin-user"),
        ("delete", "admin-user"),
    ]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "Shop!"}, "name must be"),
        ({"name": "shop", "checklist": ["vibes"]}, "unknown checklist lines: vibes"),
        ({"name": "shop", "databases": [{"url": "mysql+pymysql://db/x"}]}, "only PostgreSQL"),
        ({"name": "shop", "colour": "red"}, "colour"),
        ({"name": "shop", "hosts": "vm1"}, "hosts"),
        ({"name": "shop", "supervisors": [{"processes": ["web:web"]}]}, "server"),
        ({"hosts": []}, "name"),
    ],
)
def test_a_wrong_service_gets_422_naming_the_field(
    client: TestClient, db: Session, body: dict[str, object], named: str
) -> None:
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, Role.admin))
    refused = client.post("/api/v1/diagnose/services", json=body)
    assert refused.status_code == 422, refused.text
    assert named in refused.text


def test_an_admin_token_adds_a_service_and_a_write_token_may_not(
    client: TestClient, db: Session
) -> None:
    from dutydesk.people import service as people

    reader = people.create_token(db, "reader", ["write"]).secret
    writer = people.create_token(db, "deployer", ["admin"]).secret
    db.commit()
    url = "/api/v1/diagnose/services"
    denied = client.post(url, json=SHOP, headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    made = client.post(url, json=SHOP, headers={"Authorization": f"Bearer {writer}"})
    assert made.status_code == 201, made.text
    assert audited(db) == [("create", "(token deployer)")]


def test_admins_add_edit_and_remove_services_in_the_console(
    client: TestClient, db: Session
) -> None:
    anonymous = client.get("/diagnose/services")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    viewer_csrf = sign_in(client, db, make_user(db, Role.viewer))
    listed = client.get("/diagnose/services")
    assert listed.status_code == 200 and "No services yet." in listed.text
    assert "Add a service" not in listed.text
    assert client.get("/diagnose/services/new").status_code == 403
    form = {
        "name": "shop",
        "hosts": "shop-vm1\n",
        "databases": "main postgresql://app:s3cret@db1:5432/shop",
        "log_sources": "/var/log/shop/*.log",
        "projects": "shop-web",
        "pipelines": "shop-ci",
        "supervisors": "shop-primary shop:web shop:worker\nshop-failover shop:web",
        "checklist": "database, instances logs",
    }
    denied = client.post("/diagnose/services", data={**form, "csrf_token": viewer_csrf})
    assert denied.status_code == 403

    operator_csrf = sign_in(client, db, make_user(db, Role.operator))
    assert "Add a service" not in client.get("/diagnose/services").text
    denied = client.post("/diagnose/services", data={**form, "csrf_token": operator_csrf})
    assert denied.status_code == 403
    csrf = sign_in(client, db, make_user(db, Role.admin))
    assert "Add a service" in client.get("/diagnose/services").text
    assert 'name="csrf_token"' in client.get("/diagnose/services/new").text
    assert client.post("/diagnose/services", data=form).status_code in (400, 403)
    made = client.post("/diagnose/services", data={**form, "csrf_token": csrf})
    assert made.status_code == 303, made.text
    found = services.get_service(db, "shop")
    assert found.config["supervisors"] == [
        {"server": "shop-primary", "processes": ["shop:web", "shop:worker"]},
        {"server": "shop-failover", "processes": ["shop:web"]},
    ]
    assert found.config["checklist"] == ["database", "instances", "logs"]
    page = client.get("/diagnose/services")
    assert "shop-primary" in page.text and "postgresql://app@db1:5432/shop" in page.text
    assert "s3cret" not in page.text

    edit = client.get(f"/diagnose/services/{found.id}/edit")
    assert edit.status_code == 200 and "s3cret" not in edit.text
    assert "main postgresql://app@db1:5432/shop" in edit.text
    wrong = client.post(
        f"/diagnose/services/{found.id}",
        data={**form, "databases": "postgresql://app@db1/shop", "csrf_token": csrf},
    )
    assert wrong.status_code == 400 and "databases, line 1: write NAME URL" in wrong.text
    saved = client.post(
        f"/diagnose/services/{found.id}",
        data={
            **form,
            "databases": "main postgresql://app@db1:5432/shop",
            "checklist": "",
            "csrf_token": csrf,
        },
    )
    assert saved.status_code == 303
    db.expire_all()
    again = services.get_service(db, "shop")
    assert again.config["checklist"] == list(services.DEFAULT_CHECKLIST)
    assert services.database_logins(again)[0].login.password == "s3cret"
    duplicate = client.post("/diagnose/services", data={**form, "csrf_token": csrf})
    assert duplicate.status_code == 400 and "exists already" in duplicate.text

    removed = client.post(f"/diagnose/services/{found.id}/delete", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert "No services yet." in client.get("/diagnose/services").text
    assert [action for action, _ in audited(db)] == ["create", "update", "delete"]
