"""Ticket search: one function over SQLite FTS5 or PostgreSQL tsvector.

The index holds one document per ticket (key, title, description, resolution, every note and
the alarm payload); migration 0003 made it and its triggers keep it in step with every write.
This module is the only place that knows which database is underneath.

Query syntax: words (every one must appear, stemmed: `failing` finds `failed`), phrases in
double quotes, and `word*` for a prefix. Anything else (operators, brackets, stray quotes) is
read as plain text, so no query is a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Row,
    Select,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from dutydesk.tickets._query import TicketFilters, filtered
from dutydesk.tickets.models import Ticket, TicketNote

START, STOP = "\x02", "\x03"
SNIPPET_WORDS = 24
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Term:
    """One part of a query: a word or a phrase (several words in order); maybe a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Hit:
    """A ticket found by a search, with its title and the best passage, matches marked."""

    ticket: Ticket
    title: Markup
    snippet: Markup


def parse_query(query: str) -> list[Term]:
    """The terms of a user's query; punctuation and operators count as spaces."""
    terms: list[Term] = []
    for phrase, bare in _QUERY_PART.findall(query):
        if phrase:
            words = tuple(_WORD.findall(phrase))
            if words:
                terms.append(Term(words))
            continue
        words = tuple(_WORD.findall(bare))
        for index, word in enumerate(words):
            last = index == len(words) - 1
            terms.append(Term((word,), prefix=last and bare.endswith("*")))
    return terms


def marked(value: str | None) -> Markup:
    """Text with the index's match markers turned into <mark>, everything else escaped."""
    escaped = str(escape(value or ""))
    return Markup(escaped.replace(START, "<mark>").replace(STOP, "</mark>"))  # noqa: S704


def search(
    session: Session, query: str, filters: TicketFilters, *, limit: int = 50, offset: int = 0
) -> list[Hit]:
    """Tickets whose text matches `query` and `filters`, newest first, matches highlighted."""
    terms = parse_query(query)
    if not terms:
        return []
    if session.get_bind().dialect.name == "sqlite":
        rows = session.execute(_sqlite_statement(terms, filters, limit, offset))
    else:
        rows = session.execute(_postgres_statement(terms, filters, limit, offset))
    return [_hit(row) for row in rows.unique()]


def _hit(row: Row[Any]) -> Hit:
    ticket, title, snippet = tuple(row)
    return Hit(ticket=ticket, title=marked(title), snippet=marked(snippet))


# --- SQLite: FTS5 ------------------------------------------------------------------------------


def fts5_query(terms: list[Term]) -> str:
    """The FTS5 MATCH text for `terms`: each a quoted string, so nothing reads as an operator."""
    parts = []
    for term in terms:
        quoted = '"' + " ".join(term.words).replace('"', '""') + '"'
        parts.append(quoted + " *" if term.prefix else quoted)
    return " AND ".join(parts)


def _sqlite_statement(
    terms: list[Term], filters: TicketFilters, limit: int, offset: int
) -> Select[Any]:
    index = table("ticket_search", column("rowid"))
    name: ColumnElement[Any] = literal_column("ticket_search")
    statement = (
        select(
            Ticket,
            func.highlight(name, 1, START, STOP),
            func.snippet(name, -1, START, STOP, "…", SNIPPET_WORDS),
        )
        .select_from(index)
        .join(Ticket, Ticket.id == index.c.rowid)
        .where(name.op("MATCH")(bindparam("fts_query", fts5_query(terms))))
    )
    # Ordered by the index's own rowid so FTS5 walks it newest first and stops at the limit.
    return filtered(statement, filters).order_by(index.c.rowid.desc()).limit(limit).offset(offset)


# --- PostgreSQL: tsvector ----------------------------------------------------------------------

CONFIG = "english"
TITLE_OPTIONS = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"
HEADLINE_OPTIONS = f"StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=10, MaxFragments=2"


def _tsquery(terms: list[Term]) -> ColumnElement[Any]:
    parts: list[ColumnElement[Any]] = []
    for number, term in enumerate(terms):
        if term.prefix and len(term.words) == 1:
            # The word is \w+ only, so appending the prefix operator cannot inject syntax.
            prefix: BindParameter[str] = bindparam(f"term_{number}", term.words[0] + ":*")
            parts.append(func.to_tsquery(CONFIG, prefix))
        else:
            phrase: BindParameter[str] = bindparam(f"term_{number}", " ".join(term.words))
            parts.append(func.phraseto_tsquery(CONFIG, phrase))
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.op("&&")(part)
    return combined


def _postgres_statement(
    terms: list[Term], filters: TicketFilters, limit: int, offset: int
) -> Select[Any]:
    index = table("ticket_search", column("ticket_id"), column("document"))
    query = _tsquery(terms)
    page = (
        filtered(
            select(Ticket.id)
            .join(index, index.c.ticket_id == Ticket.id)
            .where(index.c.document.op("@@")(query)),
            filters,
        )
        .order_by(Ticket.id.desc())
        .limit(limit)
        .offset(offset)
    )
    notes = (
        select(func.string_agg(TicketNote.body, text("E'\\n'")))
        .where(TicketNote.ticket_id == Ticket.id)
        .scalar_subquery()
    )
    body = func.concat_ws(" ", Ticket.description, Ticket.resolution, notes)
    return (
        select(
            Ticket,
            func.ts_headline(CONFIG, Ticket.title, query, TITLE_OPTIONS),
            func.ts_headline(CONFIG, body, query, HEADLINE_OPTIONS),
        )
        .where(Ticket.id.in_(page.scalar_subquery()))
        .order_by(Ticket.id.desc())
    )


# --- bulk loading ------------------------------------------------------------------------------


@contextmanager
def index_paused(connection: Connection) -> Iterator[None]:
    """Stop the index triggers while loading many tickets, then rebuild the index once.

    For imports and the benchmark: keeping the index in step row by row costs more than one
    rebuild at the end. Nothing else should write tickets meanwhile.
    """
    if connection.dialect.name == "sqlite":
        saved = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE 'ticket_search_%'"
        ).all()
        for name, _sql in saved:
            connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
        try:
            yield
        finally:
            for _name, sql in saved:
                connection.exec_driver_sql(sql)
        rebuild_index(connection)
        return
    connection.exec_driver_sql("ALTER TABLE tickets DISABLE TRIGGER USER")
    connection.exec_driver_sql("ALTER TABLE ticket_notes DISABLE TRIGGER USER")
    try:
        yield
    finally:
        connection.exec_driver_sql("ALTER TABLE tickets ENABLE TRIGGER USER")
        connection.exec_driver_sql("ALTER TABLE ticket_notes ENABLE TRIGGER USER")
    rebuild_index(connection)


def rebuild_index(connection: Connection) -> None:
    """Rebuild every ticket's search document (the triggers do the work: each ticket is
    touched once)."""
    connection.exec_driver_sql("DELETE FROM ticket_search")
    connection.exec_driver_sql("UPDATE tickets SET title = title")
