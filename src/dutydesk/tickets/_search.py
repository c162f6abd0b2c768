"""Ticket search: one function over SQLite FTS5 or PostgreSQL tsvector.

The index holds one document per ticket (key, title, description, resolution, every note and
the alarm payload); migration 0003 made it and its triggers keep it in step with every write.
This module is the only place that knows which database is underneath.

Query syntax: words (every one must appear, stemmed: `failing` finds `failed`), phrases in
double quotes, and `word*` for a prefix. A word joined to others by punctuation (`db-3`,
`10.0.4.17`, `DD-12`) is a phrase: `db-3` finds the text db-3, not db-1 with a 3 elsewhere.
Anything else (operators, brackets, stray quotes) is read as plain text, so no query is a
syntax error.
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
    Text,
    bindparam,
    case,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session

from dutydesk.tickets._query import TicketFilters, filtered
from dutydesk.tickets.models import Ticket, TicketNote

START, STOP = "\x02", "\x03"
SNIPPET_WORDS = 24
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")
# PostgreSQL's parser reads "DD-12" as "dd" and "-12"; the index holds the key as "DD 12".
_KEY = re.compile(r"\bDD-(\d+)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    """One part of a query: a word or a phrase (several words in order); maybe a prefix.

    `text` is what the user typed for it, for PostgreSQL's parser, which splits text its own
    way (`db-1` is "db" and "-1" there, `10.0.4.17` one token): the query must be split as the
    index was.
    """

    words: tuple[str, ...]
    prefix: bool = False
    text: str = ""

    @property
    def parser_text(self) -> str:
        """The text for PostgreSQL's parser (the words when no text was kept)."""
        return _KEY.sub(r"DD \1", self.text) if self.text else " ".join(self.words)


@dataclass(frozen=True)
class Hit:
    """A ticket found by a search, with its title and the best passage, matches marked."""

    ticket: Ticket
    title: Markup
    snippet: Markup


def parse_query(query: str) -> list[Term]:
    """The terms of a user's query: a quoted phrase, or a bare token whose words (split at
    punctuation) must appear in that order; operators are plain words."""
    terms: list[Term] = []
    for phrase, bare in _QUERY_PART.findall(query):
        words = tuple(_WORD.findall(phrase or bare))
        if not words:
            continue
        if phrase:
            terms.append(Term(words, text=phrase))
        else:
            prefix = bare.endswith("*")
            terms.append(Term(words, prefix=prefix, text=bare.rstrip("*") if prefix else bare))
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


def count(session: Session, query: str, filters: TicketFilters) -> int:
    """How many tickets match `query` and `filters`."""
    terms = parse_query(query)
    if not terms:
        return 0
    if session.get_bind().dialect.name == "sqlite":
        matching = _sqlite_matching(terms)
    else:
        matching = _postgres_matching(_tsquery(terms))
    return session.scalar(filtered(matching.with_only_columns(func.count()), filters)) or 0


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


def _sqlite_matching(terms: list[Term]) -> Select[Any]:
    """The tickets whose index row matches `terms` (columns to be chosen by the caller)."""
    index = table("ticket_search", column("rowid"))
    name: ColumnElement[Any] = literal_column("ticket_search")
    return (
        select(Ticket.id)
        .select_from(index)
        .join(Ticket, Ticket.id == index.c.rowid)
        .where(name.op("MATCH")(bindparam("fts_query", fts5_query(terms))))
    )


def _sqlite_statement(
    terms: list[Term], filters: TicketFilters, limit: int, offset: int
) -> Select[Any]:
    index = table("ticket_search", column("rowid"))
    name: ColumnElement[Any] = literal_column("ticket_search")
    statement = _sqlite_matching(terms).with_only_columns(
        Ticket,
        func.highlight(name, 1, START, STOP),
        func.snippet(name, -1, START, STOP, "…", SNIPPET_WORDS),
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
            continue
        phrase: BindParameter[str] = bindparam(f"term_{number}", term.parser_text)
        query: ColumnElement[Any] = func.phraseto_tsquery(CONFIG, phrase)
        if term.prefix:
            # The last lexeme becomes a prefix; only when the query text ends in one (a query
            # of stop words only is empty, and `:*` after a bracket would be a syntax error).
            text_form = cast(query, Text)
            query = case(
                (text_form.op("~")("'$"), cast(text_form.concat(":*"), TSQUERY)),
                else_=query,
            )
        parts.append(query)
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.op("&&")(part)
    return combined


def _postgres_matching(query: ColumnElement[Any]) -> Select[Any]:
    """The ids of the tickets whose search document matches the tsquery `query`."""
    index = table("ticket_search", column("ticket_id"), column("document"))
    return (
        select(Ticket.id)
        .join(index, index.c.ticket_id == Ticket.id)
        .where(index.c.document.op("@@")(query))
    )


def _postgres_statement(
    terms: list[Term], filters: TicketFilters, limit: int, offset: int
) -> Select[Any]:
    query = _tsquery(terms)
    page = (
        filtered(_postgres_matching(query), filters)
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
