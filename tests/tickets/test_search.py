"""Search over titles, descriptions, notes, resolutions and payloads, on SQLite and PostgreSQL,
with the index kept in step by every write."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.tickets import _search, service
from dutydesk.tickets._query import OPEN_ANY, TicketFilters
from dutydesk.tickets._search import Term, fts5_query, parse_query
from dutydesk.tickets.models import Ticket, TicketNote
from tests.tickets.conftest import alarm

ANY = TicketFilters()


def keys(db: Session, query: str, filters: TicketFilters = ANY) -> list[str]:
    return [hit.ticket.key for hit in _search.search(db, query, filters)]


def open_ticket(db: Session, fingerprint: str, **changes: object) -> Ticket:
    ticket = service.open_or_update_ticket(db, alarm(fingerprint, **changes)).ticket
    assert ticket is not None
    db.flush()
    return ticket


def test_search_covers_title_description_notes_resolution_and_payload(
    db: Session, olga: User
) -> None:
    ticket = open_ticket(
        db,
        "fp-1",
        title="Replication lag on db-2",
        description="Standby is 12 minutes behind.",
        payload={"labels": {"cluster": "pangolin"}},
    )
    other = open_ticket(db, "fp-2", title="Heartbeat missed: backup", description="late")
    service.add_note(db, ticket, "Checked the wombat dashboards.", author="olga")
    service.close_ticket(db, other, resolution="Snapshot host was rebooted", actor="olga")
    db.flush()
    assert keys(db, "replication") == [ticket.key]
    assert keys(db, "standby behind") == [ticket.key]
    assert keys(db, "wombat") == [ticket.key], "words only in a note are found"
    assert keys(db, "pangolin") == [ticket.key], "alarm payloads are searched"
    assert keys(db, "rebooted") == [other.key], "resolutions are searched"
    assert keys(db, "giraffe") == []


def test_words_are_stemmed_phrases_keep_order_and_prefixes_work(db: Session) -> None:
    ticket = open_ticket(db, "fp-1", title="Export failing for study-a", description="")
    assert keys(db, "failed") == [ticket.key]
    assert keys(db, '"export failing"') == [ticket.key]
    assert keys(db, '"failing export"') == []
    assert keys(db, "exp*") == [ticket.key]
    assert keys(db, ticket.key) == [ticket.key], "the key itself finds the ticket"


@pytest.mark.parametrize(
    "query",
    ['foo"', "AND", "OR NOT", "(", ")", "*", "NEAR(a b)", "title:x", "-x", "a^b", '""', "'", ":*"],
)
def test_any_user_text_is_a_valid_query(db: Session, query: str) -> None:
    open_ticket(db, "fp-1", title="AND or not, title x")
    hits = _search.search(db, query, ANY)
    assert isinstance(hits, list)


def test_operator_words_are_searched_as_plain_words(db: Session) -> None:
    ticket = open_ticket(db, "fp-1", title="Router NEAR the rack is down")
    open_ticket(db, "fp-2", title="Something else")
    assert keys(db, "NEAR") == [ticket.key]


def test_parse_query_turns_user_text_into_terms() -> None:
    assert parse_query('disk "db 1" full* db-3 DD-12*') == [
        Term(("disk",), text="disk"),
        Term(("db", "1"), text="db 1"),
        Term(("full",), prefix=True, text="full"),
        Term(("db", "3"), text="db-3"),
        Term(("DD", "12"), prefix=True, text="DD-12"),
    ]
    assert parse_query('foo" AND (bar)') == [
        Term(("foo",), text='foo"'),
        Term(("AND",), text="AND"),
        Term(("bar",), text="(bar)"),
    ]
    assert parse_query("!!! ''") == []
    assert fts5_query(parse_query('AND "x y" z* db-3')) == '"AND" AND "x y" AND "z" * AND "db 3"'
    assert [term.parser_text for term in parse_query("dd-12 db-3")] == ["DD 12", "db-3"]


def test_matches_are_marked_and_text_is_escaped(db: Session, olga: User) -> None:
    ticket = open_ticket(db, "fp-1", title="<script>alert(1)</script> disk full")
    service.add_note(db, ticket, "the disk <b>was</b> full of logs", author="olga")
    db.flush()
    [hit] = _search.search(db, "disk", ANY)
    assert "<mark>" in hit.title and "<script>" not in hit.title
    assert "&lt;script&gt;" in hit.title
    assert "<b>" not in hit.snippet


def test_search_applies_the_same_filters_as_the_lists(db: Session, olga: User) -> None:
    first = open_ticket(db, "fp-1", title="Queue backlog on worker", severity="critical")
    second = open_ticket(db, "fp-2", title="Queue backlog on beat", severity="info")
    service.assign(db, first, "olga", actor="olga")
    service.close_ticket(db, second, actor="olga")
    db.flush()
    assert set(keys(db, "backlog")) == {first.key, second.key}
    assert keys(db, "backlog", TicketFilters(status=OPEN_ANY)) == [first.key]
    assert keys(db, "backlog", TicketFilters(severity="info")) == [second.key]
    assert keys(db, "backlog", TicketFilters(assignee="olga")) == [first.key]
    assert keys(db, "backlog", TicketFilters(assignee="none")) == [second.key]
    assert keys(db, "backlog", TicketFilters(source="nowhere")) == []


def test_results_come_newest_first_and_page(db: Session) -> None:
    made = [open_ticket(db, f"fp-{n}", title=f"Backup {n} failed") for n in range(5)]
    assert keys(db, "backup") == [ticket.key for ticket in reversed(made)]
    page = _search.search(db, "backup", ANY, limit=2, offset=2)
    assert [hit.ticket.key for hit in page] == [made[2].key, made[1].key]


def test_index_follows_every_write(db: Session, olga: User) -> None:
    ticket = open_ticket(db, "fp-1", title="Certificate expires soon")
    assert keys(db, "certificate") == [ticket.key]
    db.execute(update(Ticket).where(Ticket.id == ticket.id).values(title="Renewal due"))
    assert keys(db, "certificate") == [] and keys(db, "renewal") == [ticket.key]
    note = service.add_note(db, ticket, "ask the okapi team", author="olga")
    db.flush()
    assert keys(db, "okapi") == [ticket.key]
    db.execute(update(TicketNote).where(TicketNote.id == note.id).values(body="ask the ibis"))
    assert keys(db, "okapi") == [] and keys(db, "ibis") == [ticket.key]
    db.execute(delete(TicketNote).where(TicketNote.id == note.id))
    assert keys(db, "ibis") == []
    db.execute(delete(Ticket).where(Ticket.id == ticket.id))
    assert keys(db, "renewal") == []


def test_rebuilding_the_index_after_a_bulk_load(db: Session) -> None:
    connection = db.connection()
    with _search.index_paused(connection):
        ticket = open_ticket(db, "fp-1", title="Loaded while paused")
        assert keys(db, "paused") == []
    assert keys(db, "paused") == [ticket.key]


def test_a_word_joined_by_a_hyphen_is_a_phrase(db: Session) -> None:
    first = open_ticket(
        db, "fp-1", title="Disk usage above 90% on db-1", description="3 disks", payload={}
    )
    third = open_ticket(
        db, "fp-3", title="Disk usage above 90% on db-3", description="", payload={}
    )
    assert keys(db, "db-3") == [third.key], "db-1 with a 3 elsewhere is not db-3"
    assert keys(db, "db-1") == [first.key]
    assert keys(db, "DB-1 disk") == [first.key]
    assert keys(db, '"on db-3"') == [third.key]
    assert keys(db, "db-*") == [third.key, first.key]
    assert keys(db, "db-3*") == [third.key]
    assert keys(db, "above-the*") == [], "a phrase of a stop word as a prefix is no error"
    assert keys(db, third.key) == [third.key]
    assert keys(db, third.key.lower()) == [third.key]


def test_dotted_addresses_and_paths_are_phrases_too(db: Session) -> None:
    ticket = open_ticket(
        db, "fp-1", title="Cannot reach 10.0.4.17", description="see /var/lib/postgresql"
    )
    open_ticket(db, "fp-2", title="Cannot reach 10.0.17.4", description="see /var/lib/mysql")
    assert keys(db, "10.0.4.17") == [ticket.key]
    assert keys(db, "/var/lib/postgresql") == [ticket.key]


def test_count_says_how_many_tickets_match(db: Session, olga: User) -> None:
    for n in range(3):
        open_ticket(db, f"fp-{n}", title=f"Backup {n} failed")
    closed = open_ticket(db, "fp-closed", title="Backup of db-9 failed")
    service.close_ticket(db, closed, actor="olga")
    db.flush()
    assert _search.count(db, "backup", ANY) == 4
    assert _search.count(db, "backup", TicketFilters(status=OPEN_ANY)) == 3
    assert _search.count(db, "db-9", ANY) == 1
    assert _search.count(db, "!!!", ANY) == 0
