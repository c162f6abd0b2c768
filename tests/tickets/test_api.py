"""The tickets API: the promised routes and JSON fields, roles, and bad input answered with a
4xx that names the problem."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.people import service as people
from dutydesk.people.models import User
from tests.tickets.conftest import add_person

SUMMARY_FIELDS = {"key", "title", "status", "severity", "fingerprint", "occurrences", "assignee"}


def create(client: TestClient, **body: object) -> dict[str, object]:
    answer = client.post("/api/v1/tickets", json={"title": "Disk full on db-1", **body})
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, object] = answer.json()
    return result


def test_create_returns_the_ticket_with_its_key(operator_client: TestClient) -> None:
    answer = operator_client.post(
        "/api/v1/tickets",
        json={
            "title": "Disk full on db-1",
            "description": "93%",
            "severity": "critical",
            "fingerprint": "disk-db-1",
        },
    )
    assert answer.status_code == 201, answer.text
    ticket = answer.json()
    assert ticket["key"].startswith("DD-")
    assert set(ticket) >= SUMMARY_FIELDS
    assert ticket["is_new"] is True
    assert (ticket["status"], ticket["severity"], ticket["fingerprint"]) == (
        "open",
        "critical",
        "disk-db-1",
    )
    assert ticket["occurrences"] == 1 and ticket["assignee"] is None
    repeated = operator_client.post(
        "/api/v1/tickets", json={"title": "Disk full on db-1", "fingerprint": "disk-db-1"}
    )
    assert repeated.status_code == 200, "an occurrence on an open ticket creates nothing"
    again = create(operator_client, fingerprint="disk-db-1")
    assert again["key"] == ticket["key"] and again["occurrences"] == 3
    assert again["is_new"] is False
    only_title = create(operator_client)
    assert only_title["fingerprint"] is None and only_title["severity"] == "warning"


def test_list_filters_and_searches(operator_client: TestClient) -> None:
    disk = create(operator_client, severity="critical", fingerprint="a")
    lag = create(operator_client, title="Replication lag", severity="info", fingerprint="b")
    operator_client.post(f"/api/v1/tickets/{lag['key']}/assign", json={"user": "me"})
    every = operator_client.get("/api/v1/tickets").json()
    assert [row["key"] for row in every] == [lag["key"], disk["key"]]
    assert set(every[0]) >= SUMMARY_FIELDS
    assert every[0]["assignee"] == "olga"

    def keys(query: str) -> list[str]:
        answer = operator_client.get(f"/api/v1/tickets?{query}")
        assert answer.status_code == 200, answer.text
        return [row["key"] for row in answer.json()]

    assert keys("severity=critical") == [disk["key"]]
    assert keys("assignee=olga") == [lag["key"]]
    assert keys("assignee=me") == [lag["key"]]
    assert keys("assignee=none") == [disk["key"]]
    assert keys("status=open&assignee=&severity=&q=") == [lag["key"], disk["key"]]
    assert keys("status=closed") == []
    assert keys("status=any") == keys("status=all") == [lag["key"], disk["key"]]
    assert keys("q=replication") == [lag["key"]]
    assert keys("q=replication&severity=critical") == []
    found = operator_client.get("/api/v1/tickets?q=lag").json()[0]
    assert "<mark>lag</mark>" in found["title_html"]


def test_get_one_ticket_with_notes_links_and_timeline(operator_client: TestClient) -> None:
    key = create(operator_client, fingerprint="x")["key"]
    note = operator_client.post(f"/api/v1/tickets/{key}/notes", json={"text": "Looked *here*"})
    assert note.status_code == 201, note.text
    ack = operator_client.post(f"/api/v1/tickets/{key}/acknowledge")
    assert ack.json()["status"] == "acknowledged"
    closed = operator_client.post(
        f"/api/v1/tickets/{key}/close",
        json={"resolution": "cleaned", "link": {"url": "https://tracker.example/browse/OPS-7"}},
    )
    assert closed.status_code == 200, closed.text
    ticket = operator_client.get(f"/api/v1/tickets/{key}").json()
    assert ticket["status"] == "closed" and ticket["resolution"] == "cleaned"
    assert ticket["closed_by"] == "olga"
    assert [n["body"] for n in ticket["notes"]] == ["Looked *here*"]
    assert [(link["key"], link["url"]) for link in ticket["links"]] == [
        ("OPS-7", "https://tracker.example/browse/OPS-7")
    ]
    assert [event["kind"] for event in ticket["timeline"]] == [
        "opened",
        "note",
        "acknowledged",
        "link",
        "closed",
    ]
    reopened = operator_client.post(f"/api/v1/tickets/{key}/reopen")
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"


def test_close_accepts_a_link_as_a_plain_url(operator_client: TestClient) -> None:
    key = create(operator_client)["key"]
    answer = operator_client.post(
        f"/api/v1/tickets/{key}/close",
        json={"resolution": "", "link": "https://github.com/org/repo/issues/12"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["links"][0]["key"] == "12"


def test_bad_input_gets_a_4xx_naming_the_problem(operator_client: TestClient) -> None:
    key = create(operator_client)["key"]
    cases = [
        ("get", "/api/v1/tickets/DD-999999", None, 404, "no ticket DD-999999"),
        ("post", "/api/v1/tickets/DD-999999/notes", {"text": "x"}, 404, "no ticket DD-999999"),
        ("post", "/api/v1/tickets/PROJ-1/acknowledge", None, 404, "ticket keys look like"),
        ("post", f"/api/v1/tickets/{key}/notes", {"text": "   "}, 422, "note text is empty"),
        ("post", f"/api/v1/tickets/{key}/assign", {"user": "ghost"}, 422, "unknown user 'ghost'"),
        (
            "post",
            f"/api/v1/tickets/{key}/close",
            {"resolution": "x", "link": {"url": "javascript:alert(1)"}},
            422,
            "is not an http(s) address",
        ),
        (
            "post",
            f"/api/v1/tickets/{key}/close",
            {"resolution": "x", "link": "not a url"},
            422,
            "is not an http(s) address",
        ),
        ("post", "/api/v1/tickets", {"title": "x", "severity": "dire"}, 422, "unknown severity"),
        ("post", "/api/v1/tickets", {"title": "  "}, 422, "title is empty"),
        ("get", "/api/v1/tickets?status=pending", None, 422, "unknown status 'pending'"),
        ("get", "/api/v1/tickets?since=yesterday", None, 422, "is not a date"),
    ]
    for method, url, body, status, problem in cases:
        answer = operator_client.request(method.upper(), url, json=body)
        assert answer.status_code == status, (url, answer.text)
        assert problem in str(answer.json()["detail"]), (url, answer.text)
    # The ticket is still open: nothing above changed it.
    assert operator_client.get(f"/api/v1/tickets/{key}").json()["status"] == "open"


def test_unknown_fields_and_missing_text_are_refused(operator_client: TestClient) -> None:
    key = create(operator_client)["key"]
    answer = operator_client.post(f"/api/v1/tickets/{key}/notes", json={})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "body.text"
    answer = operator_client.post("/api/v1/tickets", json={"title": "x", "colour": "red"})
    assert answer.status_code == 422


def test_closing_twice_is_a_conflict(operator_client: TestClient) -> None:
    key = create(operator_client)["key"]
    assert operator_client.post(f"/api/v1/tickets/{key}/close", json={}).status_code == 200
    again = operator_client.post(f"/api/v1/tickets/{key}/close", json={})
    assert again.status_code == 409 and "already closed" in again.json()["detail"]


def test_viewers_read_but_cannot_change_tickets(
    operator_client: TestClient, db: Session, vera: User
) -> None:
    key = create(operator_client)["key"]
    token = people.create_token(db, "vera's", ["read"], username="vera")
    db.commit()
    headers = {"Authorization": f"Bearer {token.secret}"}
    operator_client.cookies.clear()
    assert operator_client.get("/api/v1/tickets", headers=headers).status_code == 200
    assert operator_client.get(f"/api/v1/tickets/{key}", headers=headers).status_code == 200
    for path, body in [
        ("/api/v1/tickets", {"title": "x"}),
        (f"/api/v1/tickets/{key}/notes", {"text": "x"}),
        (f"/api/v1/tickets/{key}/assign", {"user": "olga"}),
        (f"/api/v1/tickets/{key}/acknowledge", None),
        (f"/api/v1/tickets/{key}/close", {"resolution": "x"}),
        (f"/api/v1/tickets/{key}/reopen", None),
    ]:
        assert operator_client.post(path, json=body, headers=headers).status_code == 403, path


def test_service_token_with_write_scope_triages_but_has_no_me(
    client: TestClient, db: Session, olga: User
) -> None:
    token = people.create_token(db, "robot", ["write"])
    db.commit()
    client.headers["Authorization"] = f"Bearer {token.secret}"
    key = create(client)["key"]
    assert client.post(f"/api/v1/tickets/{key}/assign", json={"user": "olga"}).status_code == 200
    me = client.post(f"/api/v1/tickets/{key}/assign", json={"user": "me"})
    assert me.status_code == 422 and "'me' needs a signed-in user" in me.json()["detail"]
    note = client.post(f"/api/v1/tickets/{key}/notes", json={"text": "from CI"}).json()
    assert note["notes"][0]["author"] == "(token robot)"


def test_stats_endpoint_gives_weekly_numbers(operator_client: TestClient, db: Session) -> None:
    add_person(db, "omar", "operator")
    key = create(operator_client, fingerprint="noisy")["key"]
    create(operator_client, fingerprint="noisy")
    operator_client.post(f"/api/v1/tickets/{key}/acknowledge")
    operator_client.post(f"/api/v1/tickets/{key}/close", json={"resolution": "ok"})
    answer = operator_client.get("/api/v1/tickets/stats?weeks=3")
    assert answer.status_code == 200, answer.text
    numbers = answer.json()
    assert len(numbers["weeks"]) == 3
    this_week = numbers["weeks"][0]
    assert this_week["opened"] == 1 and this_week["closed"] == 1
    assert this_week["time_to_acknowledge"]["count"] == 1
    assert this_week["noisiest"][0] == {
        "fingerprint": "noisy",
        "title": "Disk full on db-1",
        "alarms": 2,
    }
    assert numbers["stale_days"] == 14
    assert operator_client.get("/api/v1/tickets/stats?weeks=0").status_code == 422


def test_nul_in_a_note_or_a_new_ticket_is_kept_as_a_replacement_character(
    operator_client: TestClient,
) -> None:
    """PostgreSQL cannot store NUL: it is kept as U+FFFD, as mail and intake keep it, and the
    request is answered, never with a server error."""
    made = operator_client.post(
        "/api/v1/tickets", json={"title": "a\x00b", "description": "c\x00", "fingerprint": "f\x00"}
    )
    assert made.status_code == 201, made.text
    ticket = made.json()
    assert (ticket["title"], ticket["fingerprint"]) == ("a\ufffdb", "f\ufffd")
    note = operator_client.post(f"/api/v1/tickets/{ticket['key']}/notes", json={"text": "\x00x"})
    assert note.status_code == 201, note.text
    notes = operator_client.get(f"/api/v1/tickets/{ticket['key']}").json()["notes"]
    assert [n["body"] for n in notes] == ["\ufffdx"]


def test_a_ticket_that_took_an_occurrence_answers_200_as_described(
    operator_client: TestClient,
) -> None:
    create(operator_client, fingerprint="twice")
    again = operator_client.post("/api/v1/tickets", json={"title": "t", "fingerprint": "twice"})
    assert again.status_code == 200 and again.json()["is_new"] is False
    described = operator_client.get("/api/v1/openapi.json").json()
    assert {"200", "201"} <= set(described["paths"]["/api/v1/tickets"]["post"]["responses"])
