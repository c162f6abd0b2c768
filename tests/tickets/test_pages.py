"""The tickets console: lists, the ticket page, form actions, bulk actions, safe notes."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.tickets import service
from dutydesk.tickets.models import Ticket
from dutydesk.tickets.notes import render_note
from tests.tickets.conftest import add_person, alarm


def open_ticket(db: Session, fingerprint: str, **changes: object) -> Ticket:
    ticket = service.open_or_update_ticket(db, alarm(fingerprint, **changes)).ticket
    assert ticket is not None
    db.commit()
    return ticket


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-key="(DD-\d+)">', page)


def form_token(client: TestClient) -> str:
    return client.headers["X-CSRF-Token"]


def post_form(client: TestClient, url: str, data: dict[str, object]) -> int:
    """Post a form as a browser does (token in the form, not the header)."""
    token = client.headers.pop("X-CSRF-Token")
    try:
        answer = client.post(url, data={"csrf_token": token, **data})
    finally:
        client.headers["X-CSRF-Token"] = token
    return answer.status_code


def test_nav_has_tickets_and_the_meeting_list_shows_open_unassigned(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    waiting = open_ticket(db, "a", title="Waiting for the meeting")
    taken = open_ticket(db, "b", title="Someone has it")
    done = open_ticket(db, "c", title="Already done")
    service.assign(db, taken, "olga", actor="olga")
    service.close_ticket(db, done, actor="olga")
    db.commit()
    page = operator_client.get("/tickets")
    assert page.status_code == 200
    assert '<a href="/tickets" aria-current="page">Tickets</a>' in page.text
    assert "<h1>Open, unassigned</h1>" in page.text
    assert rows(page.text) == [waiting.key]
    assert rows(operator_client.get("/tickets/mine").text) == [taken.key]
    assert rows(operator_client.get("/tickets/all").text) == [done.key, taken.key, waiting.key]
    assert rows(operator_client.get("/tickets/all?status=closed").text) == [done.key]
    assert rows(operator_client.get("/tickets/all?assignee=olga&severity=high").text) == [taken.key]
    assert rows(operator_client.get("/tickets/all?q=meeting").text) == [waiting.key]
    found = operator_client.get("/tickets/all?q=meeting").text
    assert "<mark>meeting</mark>" in found


def test_list_pages_page_through_many_tickets(operator_client: TestClient, db: Session) -> None:
    for number in range(55):
        open_ticket(db, f"fp-{number}")
    first = operator_client.get("/tickets").text
    assert len(rows(first)) == 50 and "55 tickets" in first
    assert 'href="/tickets?page=2" rel="next"' in first
    assert len(rows(operator_client.get("/tickets?page=2").text)) == 5


def test_ticket_page_shows_facts_notes_timeline_and_actions(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    ticket = open_ticket(db, "a")
    service.add_note(
        db, ticket, "<script>alert('x')</script> **bold** [x](javascript:alert(1))", author="olga"
    )
    db.commit()
    page = operator_client.get(f"/tickets/{ticket.key}")
    assert page.status_code == 200
    assert "<script>alert(" not in page.text
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in page.text
    assert "<strong>bold</strong>" in page.text
    assert 'href="javascript:' not in page.text
    assert 'id="add-note"' in page.text and 'id="close"' in page.text
    assert "Disk usage above 90% on db-1" in page.text
    assert "opened" in page.text and "note" in page.text


def test_render_note_escapes_html_and_refuses_unsafe_links() -> None:
    html = str(
        render_note('<img src=x onerror="alert(1)"> [a](javascript:x) [b](https://ok.example)')
    )
    assert "<img" not in html and "&lt;img" in html
    assert "javascript:" not in html.split("[a]")[0] or 'href="javascript' not in html
    assert '<a href="https://ok.example">b</a>' in html


def test_viewer_sees_no_actions_and_cannot_post_them(
    viewer_client: TestClient, db: Session
) -> None:
    ticket = open_ticket(db, "a")
    page = viewer_client.get(f"/tickets/{ticket.key}")
    assert page.status_code == 200
    assert 'id="add-note"' not in page.text and 'id="close"' not in page.text
    assert 'id="bulk-actions"' not in viewer_client.get("/tickets").text
    assert post_form(viewer_client, f"/tickets/{ticket.key}/note", {"text": "hi"}) == 403


def test_form_actions_walk_the_meeting_flow(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    ticket = open_ticket(db, "a")
    key = ticket.key
    assert post_form(operator_client, f"/tickets/{key}/assign_me", {}) == 303
    assert post_form(operator_client, f"/tickets/{key}/note", {"text": "Cleaned up"}) == 303
    status = post_form(
        operator_client,
        f"/tickets/{key}/close",
        {"resolution": "done", "link_url": "https://tracker.example/browse/OPS-5", "link_key": ""},
    )
    assert status == 303
    db.expire_all()
    ticket = service.get_ticket(db, key)
    assert (ticket.status, ticket.assignee_name, ticket.resolution) == ("closed", "olga", "done")
    assert [link.key for link in ticket.links] == ["OPS-5"]
    assert [note.body for note in ticket.notes] == ["Cleaned up"]


def test_form_errors_name_the_problem(operator_client: TestClient, db: Session) -> None:
    ticket = open_ticket(db, "a")
    answer = operator_client.post(
        f"/tickets/{ticket.key}/note",
        data={"csrf_token": form_token(operator_client), "text": " "},
    )
    assert answer.status_code == 422 and "note text is empty" in answer.text
    answer = operator_client.post(
        f"/tickets/{ticket.key}/close",
        data={"csrf_token": form_token(operator_client), "link_url": "nope"},
    )
    assert answer.status_code == 422 and "is not an http(s) address" in answer.text
    missing = operator_client.get("/tickets/DD-999999")
    assert missing.status_code == 404 and "no ticket DD-999999" in missing.text
    assert post_form(operator_client, f"/tickets/{ticket.key}/explode", {}) == 422


def test_bulk_actions_apply_to_every_ticked_ticket(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    add_person(db, "omar", "operator")
    tickets = [open_ticket(db, f"fp-{n}") for n in range(3)]
    keys = [ticket.key for ticket in tickets[:2]]
    answer = operator_client.post(
        "/tickets/bulk",
        data={
            "csrf_token": form_token(operator_client),
            "keys": keys,
            "action": "assign",
            "user": "omar",
            "back": "/tickets?page=1",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/tickets?page=1"
    answer = operator_client.post(
        "/tickets/bulk",
        data={
            "csrf_token": form_token(operator_client),
            "keys": keys,
            "action": "close",
            "resolution": "noise",
            "back": "https://evil.example/",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/tickets"
    db.expire_all()
    states = [
        (t.status, t.assignee_name, t.resolution)
        for t in map(db.get_one, [Ticket] * 3, [t.id for t in tickets])
    ]
    assert states == [
        ("closed", "omar", "noise"),
        ("closed", "omar", "noise"),
        ("open", None, None),
    ]
    nothing = operator_client.post(
        "/tickets/bulk", data={"csrf_token": form_token(operator_client), "action": "close"}
    )
    assert nothing.status_code == 422 and "tick at least one ticket" in nothing.text


def test_weekly_numbers_page(operator_client: TestClient, db: Session) -> None:
    open_ticket(db, "noisy-one")
    page = operator_client.get("/tickets/review")
    assert page.status_code == 200
    assert 'id="weekly-numbers"' in page.text and "Open longer than 14 days" in page.text


def test_a_search_from_a_list_says_how_many_more_match_among_other_tickets(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    waiting = open_ticket(db, "a", title="Replication lag on db-3", severity="warning")
    taken = open_ticket(db, "b", title="Replication lag on db-4")
    done = open_ticket(db, "c", title="Replication lag on db-5")
    open_ticket(db, "d", title="Disk full")
    service.assign(db, taken, "olga", actor="olga")
    service.close_ticket(db, done, actor="olga")
    db.commit()
    page = operator_client.get("/tickets?q=replication")
    assert rows(page.text) == [waiting.key]
    assert "1 ticket matching <strong>replication</strong>" in page.text
    assert (
        '2 more among closed or assigned tickets: <a href="/tickets/all?q=replication">'
        "search all tickets</a>" in page.text
    )
    assert rows(operator_client.get("/tickets/all?q=replication").text) == [
        done.key,
        taken.key,
        waiting.key,
    ]
    mine = operator_client.get("/tickets/mine?q=replication&severity=high").text
    assert rows(mine) == [taken.key]
    assert "1 more among closed tickets and other people&#39;s" in mine
    assert 'href="/tickets/all?q=replication&amp;severity=high"' in mine
    everything = operator_client.get("/tickets/all?q=replication").text
    assert "3 tickets matching" in everything and "search-elsewhere" not in everything
    assert "search-elsewhere" not in operator_client.get("/tickets?q=disk").text


def test_assign_to_me_is_offered_only_when_the_ticket_is_not_yours(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    ticket = open_ticket(db, "a", title="Queue backlog")
    assert ">Assign to me</button>" in operator_client.get(f"/tickets/{ticket.key}").text
    assert post_form(operator_client, f"/tickets/{ticket.key}/assign_me", {}) == 303
    page = operator_client.get(f"/tickets/{ticket.key}").text
    assert '<td id="ticket-assignee">olga</td>' in page
    assert ">Assign to me</button>" not in page
    assert ">Assign</button>" in page, "giving it to someone else stays possible"


def test_list_dates_are_typed_in_iso_form(operator_client: TestClient, db: Session) -> None:
    open_ticket(db, "a", title="Queue backlog")
    page = operator_client.get("/tickets/all?since=2026-11-02&until=2026-11-02").text
    assert rows(page) != []
    assert 'name="since" value="2026-11-02" placeholder="YYYY-MM-DD"' in page
    assert 'type="date"' not in page, "a date input shows the browser's local form"
    refused = operator_client.get("/tickets/all?since=11/02/2026")
    assert refused.status_code == 422
    assert "since &#39;11/02/2026&#39; is not a date (YYYY-MM-DD)" in refused.text


def test_the_ticket_page_shows_every_moment_in_iso_form_in_utc(
    operator_client: TestClient, db: Session, olga: User
) -> None:
    ticket = open_ticket(db, "a", title="Queue backlog")
    service.acknowledge(db, ticket, actor="olga")
    service.close_ticket(db, ticket, actor="olga")
    db.commit()
    page = operator_client.get(f"/tickets/{ticket.key}").text
    assert "<td>2026-11-02 09:00:00+00:00</td>" in page, "first seen, from the alarm"
    iso_minute = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}\+00:00"
    assert re.search(rf"Acknowledged</th><td>{iso_minute} by olga<", page)
    assert re.search(rf"Closed</th><td>{iso_minute} by olga<", page)
