"""Ticket search benchmark: 200,000 tickets with 1,000,000 notes in SQLite, 200 searches.

Builds (once, cached under `bench/out/`) a SQLite ops database migrated by the real
migrations and filled with 200,000 tickets and 1,000,000 notes of ops-like text: sentences
from an alarm and triage vocabulary plus a long tail of rarer words (Zipf-distributed), so
some words match tens of thousands of tickets and others a handful. The rows are bulk
inserted with the index triggers paused, then the index is rebuilt once
(`_search.index_paused`), as an import would.

Then times 200 searches through `dutydesk.tickets._search.search` (the function the API and
pages call; first page of 50, newest first, highlighted): single words of every frequency,
phrases, prefixes, with and without filters (status, severity, source, assignee). A second,
smaller database of 100,000 tickets measures the "Open, unassigned" list page as a browser
gets it: `GET /tickets` through the FastAPI app (TestClient), signed in, 200 times.

The last line is

    search_p95_ms=<float> search_p50_ms=<float>

Run from the repository root: `.venv/bin/python bench/search.py` (`--quick` for a tenth).
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dutydesk import migrations
from dutydesk.db import build_engine, session_factory
from dutydesk.people import service as people
from dutydesk.tickets import _search
from dutydesk.tickets._query import OPEN_ANY, UNASSIGNED, TicketFilters

OUT = Path(__file__).resolve().parent / "out"
SEED = 20261124
TICKETS = 200_000
NOTES = 1_000_000
LIST_TICKETS = 100_000
SEARCHES = 200
PAGE_LOADS = 200
SEARCH_TARGET_MS = 50.0
LIST_TARGET_MS = 100.0
END = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
DAYS = 365
USERS = ("olga", "omar", "ada", "dirk", "ines", "kofi", "lena", "mateo")
SOURCES = ("alertmanager", "export-monitor", "heartbeat", "github-ci", "email", "manual")
SEVERITIES = ("critical", "high", "warning", "info")
SERVICES = (
    "bridge-worker",
    "exporter",
    "api",
    "db-1",
    "db-2",
    "record-store",
    "warehouse",
    "beat",
    "synapse-sync",
    "upload-validator",
    "scheduler",
    "nightly-backup",
    "mailer",
    "proxy",
)
PROBLEMS = (
    "ERROR lines above 10/hour on {s}",
    "WARN lines above 100/hour on {s}",
    "Disk usage above 90% on {s}",
    "HTTP 5xx rate high on {s}",
    "Heartbeat missed: {s}",
    "Finished processing request missing on {s}",
    "Export slower than 2 hours on {s}",
    "uniqueHealthCodes dropped on {s}",
    "CI pipeline failed: {s} on main",
    "Memory above 85% on {s}",
    "Certificate expires soon on {s}",
    "Queue backlog on {s}",
)
VOCABULARY = (
    "the worker logged errors again after the release and the retry queue grew while the "
    "record store answered slowly we restarted the service checked the logs found a long "
    "vacuum on the records table waited for the checkpoint increased the pool size rotated "
    "credentials replica lag recovered disk cleaned old archives removed snapshot host patched "
    "threshold too low for mondays upload burst from the cohort app study team paused the "
    "survey re-drove the failed tables schema revision missing warehouse side backup ran late "
    "because of the maintenance window no data lost counts match again known issue tracked "
    "upstream timeout connection reset by peer certificate renewed dns cache flushed deploy "
    "rolled back config drift fixed cron entry corrected alert rule adjusted false alarm"
)
WORDS = tuple(VOCABULARY.split())


def rare_words(rng: random.Random, count: int) -> list[str]:
    """Pronounceable made-up words: the long tail of names, hosts and jargon in real notes."""
    onsets = (*"bcdfghjklmnprstvwz", "br", "cr", "dr", "gr", "kr", "pl", "st", "tr")
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "n", "r", "s", "t", "x", "l", "m"]
    made: set[str] = set()
    while len(made) < count:
        syllables = rng.randint(2, 3)
        made.add(
            "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
            + rng.choice(codas)
        )
    return sorted(made)


class Text:
    """Sentences of ops vocabulary with Zipf-distributed rare words mixed in."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rare = rare_words(rng, 20_000)
        weights = [1 / (rank + 1) for rank in range(len(self.rare))]
        total = sum(weights)
        self.cumulative = list(itertools.accumulate(weight / total for weight in weights))

    def rare_word(self) -> str:
        """A word of the long tail; word k is drawn about 1/k as often as the first."""
        return self.rare[min(bisect.bisect(self.cumulative, self.rng.random()), len(self.rare) - 1)]

    def sentence(self, length: int) -> str:
        """A sentence of `length` words, about one in eight from the long tail."""
        rng = self.rng
        words = [
            self.rare_word() if rng.random() < 0.125 else rng.choice(WORDS) for _ in range(length)
        ]
        return " ".join(words).capitalize() + "."


def insert_users(engine: Engine) -> dict[str, int]:
    """The operators tickets get assigned to; returns username -> id."""
    factory = session_factory(engine)
    with factory() as session:
        for name in USERS:
            if people.find_user(session, name) is None:
                people.add_user(session, name, "operator", email=None, password="bench pass 1")
        session.commit()
        return {user.username: user.id for user in people.list_users(session)}


def ticket_rows(
    rng: random.Random, text: Text, count: int, users: dict[str, int]
) -> Iterator[tuple[Any, ...]]:
    """Ticket rows, oldest first: mostly closed, recent ones still open."""
    user_ids = [users[name] for name in USERS]
    for number in range(1, count + 1):
        seen = END - dt.timedelta(days=DAYS * (1 - number / count), minutes=rng.uniform(0, 60))
        recent = END - seen < dt.timedelta(days=7)
        status = rng.choices(
            ("open", "acknowledged", "closed"), (4, 2, 2) if recent else (2, 1, 97)
        )[0]
        service = rng.choice(SERVICES)
        title = rng.choice(PROBLEMS).format(s=service)
        assignee = rng.choice(user_ids) if status != "open" or rng.random() < 0.3 else None
        closed = seen + dt.timedelta(hours=rng.uniform(0.1, 48)) if status == "closed" else None
        payload = {
            "labels": {"alertname": title.split(" ")[0], "instance": service, "env": "prod"},
            "annotations": {"summary": text.sentence(8)},
        }
        yield (
            number,
            title,
            text.sentence(rng.randint(10, 30)),
            rng.choices(SEVERITIES, (1, 3, 6, 2))[0],
            status,
            assignee,
            rng.choice(SOURCES),
            f"{service}-{number}",
            json.dumps(payload),
            seen.isoformat(sep=" "),
            (seen + dt.timedelta(minutes=rng.uniform(0, 600))).isoformat(sep=" "),
            rng.randint(1, 40),
            text.sentence(rng.randint(4, 12)) if closed else None,
            closed.isoformat(sep=" ") if closed else None,
            rng.choice(USERS) if closed else None,
            "bench",
            seen.isoformat(sep=" "),
        )


TICKET_INSERT = (
    "INSERT INTO tickets (id, title, description, severity, status, assignee_id, source, "
    "fingerprint, payload, first_seen_at, last_seen_at, occurrences, resolution, closed_at, "
    "closed_by, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
NOTE_INSERT = "INSERT INTO ticket_notes (ticket_id, author, body, created_at) VALUES (?,?,?,?)"


def batches(rows: Iterator[tuple[Any, ...]], size: int = 20_000) -> Iterator[list[Any]]:
    """Rows in lists of `size`."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build(path: Path, tickets: int, notes: int) -> None:
    """Migrate a new SQLite database at `path` and bulk-load tickets and notes into it."""
    rng = random.Random(SEED)
    text = Text(rng)
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    engine = build_engine(url)
    try:
        users = insert_users(engine)
        started = time.perf_counter()
        with engine.begin() as connection, _search.index_paused(connection):
            for batch in batches(ticket_rows(rng, text, tickets, users)):
                connection.exec_driver_sql(TICKET_INSERT, batch)
            loaded = time.perf_counter()
            print(f"  {tickets:,} tickets in {loaded - started:.1f}s", flush=True)

            def note_rows() -> Iterator[tuple[Any, ...]]:
                for _ in range(notes):
                    ticket = rng.randint(1, tickets)
                    at = (
                        END
                        - dt.timedelta(days=DAYS * (1 - ticket / tickets))
                        + dt.timedelta(hours=rng.uniform(0, 30))
                    )
                    body = " ".join(text.sentence(rng.randint(6, 20)) for _ in range(2))
                    yield (ticket, rng.choice(USERS), body, at.isoformat(sep=" "))

            for batch in batches(note_rows()):
                connection.exec_driver_sql(NOTE_INSERT, batch)
            print(f"  {notes:,} notes in {time.perf_counter() - loaded:.1f}s", flush=True)
            indexing = time.perf_counter()
        print(f"  search index rebuilt in {time.perf_counter() - indexing:.1f}s", flush=True)
    finally:
        engine.dispose()
    plain = sqlite3.connect(path, isolation_level=None)
    try:
        plain.execute("ANALYZE")
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        plain.close()


def database(tickets: int, notes: int) -> Path:
    """The cached benchmark database of this size, built when missing."""
    OUT.mkdir(exist_ok=True)
    head = migrations.heads()[0]
    path = OUT / f"tickets-t{tickets}-n{notes}-seed{SEED}-rev{head}.sqlite"
    if path.exists():
        print(f"database: {path.name} (cached)", flush=True)
        return path
    print(f"database: building {path.name} ...", flush=True)
    partial = path.with_suffix(".partial")
    for leftover in OUT.glob(partial.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    build(partial, tickets, notes)
    partial.rename(path)
    print(f"database: built in {time.perf_counter() - started:.1f}s", flush=True)
    return path


def queries(rng: random.Random, text: Text) -> list[tuple[str, TicketFilters]]:
    """200 searches: common, middling and rare words, phrases and prefixes, half filtered."""
    filters = [
        TicketFilters(),
        TicketFilters(status="closed"),
        TicketFilters(status=OPEN_ANY),
        TicketFilters(severity="critical"),
        TicketFilters(source="heartbeat"),
        TicketFilters(assignee="olga"),
        TicketFilters(status=OPEN_ANY, assignee=UNASSIGNED),
        TicketFilters(severity="high", since=END - dt.timedelta(days=30)),
    ]
    made: list[tuple[str, TicketFilters]] = []
    kinds: list[Callable[[], str]] = [
        lambda: rng.choice(WORDS),  # common: thousands of matches
        lambda: rng.choice(SERVICES),
        lambda: text.rare[rng.randrange(0, 200)],  # frequent long-tail word
        lambda: text.rare[rng.randrange(200, 20_000)],  # rare: a handful of tickets
        lambda: '"' + " ".join(rng.sample(WORDS[:40], 1) + rng.sample(WORDS[:40], 1)) + '"',
        lambda: '"disk usage"',
        lambda: f"{rng.choice(WORDS)} {text.rare[rng.randrange(0, 2_000)]}",
        lambda: text.rare[rng.randrange(0, 5_000)][:4] + "*",
    ]
    for number in range(SEARCHES):
        query = kinds[number % len(kinds)]()
        chosen = filters[0] if number % 2 == 0 else filters[1 + (number // 2) % (len(filters) - 1)]
        made.append((query, chosen))
    return made


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered) + 0.5) - 1)]


def time_searches(path: Path) -> list[float]:
    """Milliseconds of each of the 200 searches, after one warm-up pass over a few."""
    rng = random.Random(SEED + 1)
    text = Text(random.Random(SEED))  # the same long tail the data was made from
    engine = build_engine(f"sqlite:///{path}")
    factory = session_factory(engine)
    timings: list[float] = []
    found = 0
    plan = queries(rng, text)
    try:
        with factory() as session:
            for query, filters in plan[:10]:
                _search.search(session, query, filters)
            for query, filters in plan:
                started = time.perf_counter()
                hits = _search.search(session, query, filters)
                timings.append((time.perf_counter() - started) * 1000)
                found += len(hits)
                session.expunge_all()
    finally:
        engine.dispose()
    print(f"searches: {len(timings)}, {found:,} hits shown in all; the slowest:", flush=True)
    slowest = sorted(zip(timings, plan, strict=True), key=lambda item: -item[0])[:5]
    for took, (query, filters) in slowest:
        narrowed = {name: value for name, value in vars(filters).items() if value}
        print(f"  {took:6.1f} ms  {query!r} {narrowed or ''}", flush=True)
    return timings


def time_list_page(path: Path) -> list[float]:
    """Milliseconds of GET /tickets ("Open, unassigned", first page) through the app."""
    from fastapi.testclient import TestClient

    from dutydesk.settings import Settings
    from dutydesk.web.access import SESSION_COOKIE
    from dutydesk.web.app import create_app

    engine = build_engine(f"sqlite:///{path}")
    factory = session_factory(engine)
    timings: list[float] = []
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), secret_key=secrets.token_hex(32))
        app = create_app(settings, factory)
        with factory() as session:
            user = people.find_user(session, "olga")
            assert user is not None
            secret = people.start_session(session, user, hours=1, client="bench")
            session.commit()
        with TestClient(app) as client:
            client.cookies.set(SESSION_COOKIE, secret)
            first = client.get("/tickets")
            assert first.status_code == 200, first.text[:500]
            shown = first.text.count('<tr data-key="')
            for _ in range(PAGE_LOADS):
                started = time.perf_counter()
                answer = client.get("/tickets")
                timings.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
    engine.dispose()
    print(f"list page: {PAGE_LOADS} loads of /tickets showing {shown} rows", flush=True)
    return timings


def main() -> None:
    """Build (or reuse) the databases, time the searches and the list page, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the data")
    args = parser.parse_args()
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    scale = 10 if args.quick else 1
    search_db = database(TICKETS // scale, NOTES // scale)
    list_db = database(LIST_TICKETS // scale, 0)

    list_ms = time_list_page(list_db)
    list_p95 = percentile(list_ms, 0.95)
    print(
        f"list_page_p95_ms={list_p95:.1f} list_page_p50_ms={statistics.median(list_ms):.1f} "
        f"(target p95 < {LIST_TARGET_MS:.0f} ms, ratio {list_p95 / LIST_TARGET_MS:.2f})",
        flush=True,
    )
    search_ms = time_searches(search_db)
    p95, p50 = percentile(search_ms, 0.95), statistics.median(search_ms)
    print(
        f"search: max {max(search_ms):.1f} ms (target p95 < {SEARCH_TARGET_MS:.0f} ms, "
        f"ratio {p95 / SEARCH_TARGET_MS:.2f})",
        flush=True,
    )
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    print(f"search_p95_ms={p95:.1f} search_p50_ms={p50:.1f}")


if __name__ == "__main__":
    main()
