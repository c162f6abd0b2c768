"""Tickets: the one entry alarms call, triage actions, lists. Functions take a session and
never commit; the request, job or command that calls them owns the transaction."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.event import listens_for
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from dutydesk.db import occurrence_update, utcnow
from dutydesk.people.models import Role, User
from dutydesk.tickets._query import TicketFilters, filtered
from dutydesk.tickets.models import (
    KEY_PREFIX,
    EventKind,
    Severity,
    Status,
    Ticket,
    TicketEvent,
    TicketLink,
    TicketNote,
)

MAX_TITLE = 300
MAX_NOTE = 20_000
MAX_URL = 2000
MAX_LINK_KEY = 100
MAX_FINGERPRINT = 200
KEY_PATTERN = re.compile(rf"^(?:{KEY_PREFIX})?(\d{{1,18}})$", re.IGNORECASE)
TRACKER_KEY = re.compile(r"\b([A-Z][A-Z0-9_]{0,30}-\d+)\b")
# How often a new ticket is retried as an update when a concurrent writer opened it first.
INSERT_ATTEMPTS = 5


class TicketError(ValueError):
    """A ticket request that cannot be done; the message says why."""


class TicketNotFound(TicketError):
    """No ticket has the key asked for."""


class TicketInputError(TicketError):
    """The request's values are wrong (empty note, bad link, unknown user...)."""


class TicketConflict(TicketError):
    """The ticket is not in a state that allows the action (closing a closed ticket...)."""


@dataclass(frozen=True)
class Alarm:
    """One alarm signal as the alarm side hands it over.

    `resolved` is the source saying the problem is gone; `close_on_resolve` says the source is
    configured to close the ticket then (otherwise a person closes it).
    """

    source: str
    fingerprint: str
    title: str
    description: str = ""
    severity: str = Severity.warning.value
    payload: dict[str, Any] = field(default_factory=dict)
    occurred_at: dt.datetime | None = None
    resolved: bool = False
    close_on_resolve: bool = False
    # The same occurrence sent again (a sender re-sending a standing alert): an open ticket is
    # left as it is; with none open (a person closed it) it opens one.
    repeat: bool = False


@dataclass(frozen=True)
class AlarmOutcome:
    """What an alarm did: the ticket it landed on (None for a resolve nobody was open for),
    loaded unless the caller asked for its id only."""

    ticket: Ticket | None
    is_new: bool
    ticket_id: int | None = None


def parse_severity(value: str) -> str:
    """The severity named `value` (`low` is taken as `info`), or an error listing them."""
    value = value.strip().lower()
    if value == "low":
        return Severity.info.value
    if value not in Severity.__members__:
        raise TicketInputError(
            f"unknown severity {value!r}; choose one of {', '.join(s.value for s in Severity)}"
        )
    return value


def parse_status(value: str) -> str:
    """The status named `value`, or an error listing them."""
    if value not in Status.__members__:
        raise TicketInputError(
            f"unknown status {value!r}; choose one of {', '.join(s.value for s in Status)}"
        )
    return value


def _event(
    session: Session,
    ticket: Ticket,
    kind: EventKind,
    actor: str,
    at: dt.datetime | None = None,
    **detail: Any,
) -> None:
    session.add(
        TicketEvent(
            ticket_id=ticket.id, kind=kind.value, actor=actor, detail=detail, at=at or utcnow()
        )
    )


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise TicketInputError("title is empty")
    return title[:MAX_TITLE]


# --- tickets opened in a transaction ----------------------------------------------------------

_OPENED = "dutydesk_tickets_opened"


def _note_opened(session: Session, ticket_id: int) -> None:
    session.info.setdefault(_OPENED, []).append(ticket_id)


def take_opened(session: Session) -> list[int]:
    """Ids of the tickets the session's transaction opened since the last call: work that
    follows an opening (its first notice) is added by a `before_commit` listener calling this."""
    opened: list[int] = session.info.pop(_OPENED, [])
    return opened


@listens_for(Session, "after_commit")
def _forget_opened_after_commit(session: Session) -> None:
    session.info.pop(_OPENED, None)


@listens_for(Session, "after_soft_rollback")
def _forget_opened_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # a savepoint's rollback leaves the rest of the transaction
        session.info.pop(_OPENED, None)


# --- the one entry alarms call -----------------------------------------------------------------


def _open_for(session: Session, fingerprint: str) -> Ticket | None:
    """The open ticket of a fingerprint, locked against concurrent updates (PostgreSQL)."""
    return session.scalar(
        select(Ticket)
        # `!= closed`, the words of the unique index over open tickets: SQLite uses a partial
        # index only for a query that repeats its condition.
        .where(Ticket.fingerprint == fingerprint, Ticket.status != Status.closed.value)
        .with_for_update(of=Ticket)
        .execution_options(populate_existing=True)
    )


def _last_closed_for(session: Session, fingerprint: str) -> Ticket | None:
    ticket_id = session.scalar(_LAST_CLOSED, {"fingerprint": fingerprint})
    return session.get(Ticket, ticket_id) if ticket_id is not None else None


def occurrence_changes(current: Mapping[str, Any], alarm: Alarm, at: dt.datetime) -> dict[str, Any]:
    """What another occurrence of `alarm` changes on its open ticket, besides one more in the
    count. `current` is the ticket's `last_seen_at`, `payload` and `severity`; the payload
    and severity are named only when they change (changing them re-indexes the ticket)."""
    changes: dict[str, Any] = {"last_seen_at": max(current["last_seen_at"], at)}
    if alarm.payload and alarm.payload != current["payload"]:
        changes["payload"] = alarm.payload
    severity = parse_severity(alarm.severity)
    if Severity(severity).rank < Severity(current["severity"]).rank:
        changes["severity"] = severity
    return changes


_tickets = cast(Table, Ticket.__table__)
_OPEN_TICKET = (
    select(_tickets.c.id, _tickets.c.last_seen_at, _tickets.c.payload, _tickets.c.severity)
    .where(_tickets.c.fingerprint == bindparam("fingerprint"))
    .where(_tickets.c.status != Status.closed.value)  # as in `_open_for`
    .with_for_update()
)
_ADD_EVENT = insert(cast(Table, TicketEvent.__table__))


def _add_occurrence_if_open(
    session: Session, alarm: Alarm, fingerprint: str, at: dt.datetime
) -> int | None:
    """Another occurrence on the fingerprint's open ticket; its id, or None (nothing changed)
    when none is open."""
    connection = session.connection()
    row = connection.execute(_OPEN_TICKET, {"fingerprint": fingerprint}).first()
    if row is None:
        return None
    if alarm.repeat:
        return int(row.id)
    changes = occurrence_changes(dict(row._mapping), alarm, at)
    connection.execute(
        occurrence_update(_tickets, frozenset(changes)),
        {"row_id": row.id, **{f"new_{name}": value for name, value in changes.items()}},
    )
    connection.execute(
        _ADD_EVENT,
        {
            "ticket_id": row.id,
            "kind": EventKind.occurrence.value,
            "actor": alarm.source,
            "detail": {},
            "at": at,
        },
    )
    return int(row.id)


def _new_ticket(
    fingerprint: str, alarm: Alarm, at: dt.datetime, seen_before_id: int | None
) -> dict[str, Any]:
    """The columns of the ticket an alarm opens."""
    return {
        "title": _clean_title(alarm.title),
        "description": alarm.description,
        "severity": parse_severity(alarm.severity),
        "status": Status.open.value,
        "source": alarm.source[:100] or "manual",
        "fingerprint": fingerprint,
        "payload": alarm.payload or None,
        "first_seen_at": at,
        "last_seen_at": at,
        "occurrences": 1,
        "seen_before_id": seen_before_id,
        "created_by": alarm.source[:200],
    }


def _opened_detail(source: str, seen_before_id: int | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"source": source}
    if seen_before_id is not None:
        detail["seen_before"] = f"{KEY_PREFIX}{seen_before_id}"
    return detail


_LAST_CLOSED = (
    select(_tickets.c.id)
    .where(_tickets.c.fingerprint == bindparam("fingerprint"))
    .where(_tickets.c.status == Status.closed.value)
    .order_by(_tickets.c.id.desc())
    .limit(1)
)
_OPEN = insert(_tickets).returning(_tickets.c.id)


def _land_firing(
    session: Session, alarm: Alarm, fingerprint: str, at: dt.datetime
) -> tuple[int, bool]:
    """A firing alarm on its ticket by plain statements, without loading the ticket: (the
    ticket's id, whether it was opened now)."""
    session.flush()  # the statements below must see, and not be undone by, pending changes
    for _attempt in range(INSERT_ATTEMPTS):
        ticket_id = _add_occurrence_if_open(session, alarm, fingerprint, at)
        if ticket_id is not None:
            return ticket_id, False
        connection = session.connection()
        before = connection.scalar(_LAST_CLOSED, {"fingerprint": fingerprint})
        values = _new_ticket(fingerprint, alarm, at, before)
        try:
            with connection.begin_nested():
                ticket_id = int(connection.scalar(_OPEN, values))
        except IntegrityError:
            continue  # someone opened it between our look and our insert: update theirs
        event = {
            "ticket_id": ticket_id,
            "kind": EventKind.opened.value,
            "actor": alarm.source,
            "detail": _opened_detail(values["source"], before),
            "at": at,
        }
        connection.execute(_ADD_EVENT, event)
        _note_opened(session, ticket_id)
        return ticket_id, True
    raise TicketConflict(f"could not land the alarm for fingerprint {fingerprint!r}; try again")


def open_or_update_ticket(session: Session, alarm: Alarm, *, load: bool = True) -> AlarmOutcome:
    """Land an alarm on its ticket: a new fingerprint opens one, the same fingerprint while it
    is open adds an occurrence, after a close it opens a new one "seen before" the old.

    A resolve signal adds a timeline event (and closes when the source says so); it never
    opens a ticket. Safe under concurrent callers: the unique index over open tickets refuses
    a second open ticket, and the loser of that race retries as an update.

    A firing alarm is written by plain statements (intake lands hundreds a second); the ticket
    is loaded afterwards, or with `load=False` only its id is given.
    """
    fingerprint = alarm.fingerprint.strip()[:MAX_FINGERPRINT]
    if not fingerprint:
        raise TicketInputError("the alarm has no fingerprint")
    at = alarm.occurred_at or utcnow()
    if not alarm.resolved:
        ticket_id, is_new = _land_firing(session, alarm, fingerprint, at)
        if not load:
            return AlarmOutcome(None, is_new, ticket_id)
        loaded = session.get(Ticket, ticket_id, populate_existing=True)
        return AlarmOutcome(loaded, is_new, ticket_id)
    ticket = _open_for(session, fingerprint)
    target = ticket or _last_closed_for(session, fingerprint)
    if target is None:
        return AlarmOutcome(None, is_new=False)
    _event(session, target, EventKind.resolved_signal, alarm.source, at)
    if ticket is not None and alarm.close_on_resolve:
        close_ticket(
            session,
            ticket,
            resolution=f"resolved by {alarm.source}",
            actor=alarm.source,
            at=at,
        )
    return AlarmOutcome(target, is_new=False, ticket_id=target.id)


def show_group(
    session: Session,
    fingerprint: str,
    *,
    title: str | None,
    payload: dict[str, Any],
    touched: Collection[int] = (),
) -> int | None:
    """Show an alarm group's current state on the fingerprint's ticket: its title (unless
    None) and payload. The ticket is the fingerprint's newest, if it is open or among
    `touched` (closed by the signals that brought this state); returns its id."""
    session.flush()  # a resolve may have closed the ticket through the ORM
    row = session.connection().execute(_NEWEST, {"fingerprint": fingerprint}).first()
    if row is None or (row.status == Status.closed.value and row.id not in touched):
        return None
    values: dict[str, Any] = {"payload": payload}
    if title is not None:
        values["title"] = _clean_title(title)
    session.connection().execute(update(_tickets).where(_tickets.c.id == row.id).values(values))
    return int(row.id)


_NEWEST = (
    select(_tickets.c.id, _tickets.c.status)
    .where(_tickets.c.fingerprint == bindparam("fingerprint"))
    .order_by(_tickets.c.id.desc())
    .limit(1)
)


def create_ticket(
    session: Session,
    *,
    title: str,
    description: str = "",
    severity: str = Severity.warning.value,
    fingerprint: str | None = None,
    actor: str,
) -> AlarmOutcome:
    """Open a ticket by hand; with a fingerprint it behaves exactly like an alarm."""
    severity = parse_severity(severity)
    title, description = storable_text(title), storable_text(description)
    fingerprint = storable_text(fingerprint) if fingerprint is not None else None
    if fingerprint and fingerprint.strip():
        alarm = Alarm(
            source="manual",
            fingerprint=fingerprint,
            title=title,
            description=description,
            severity=severity,
        )
        return open_or_update_ticket(session, alarm)
    ticket = Ticket(
        title=_clean_title(title),
        description=description,
        severity=severity,
        status=Status.open.value,
        source="manual",
        occurrences=1,
        created_by=actor,
    )
    session.add(ticket)
    session.flush()
    _event(session, ticket, EventKind.opened, actor, source="manual")
    _note_opened(session, ticket.id)
    return AlarmOutcome(ticket, is_new=True)


# --- finding tickets ---------------------------------------------------------------------------


def parse_key(key: str) -> int:
    """The number of a key such as `DD-12` (or plain `12`)."""
    match = KEY_PATTERN.match(key.strip())
    if match is None:
        raise TicketNotFound(f"no ticket {key!r}; ticket keys look like {KEY_PREFIX}12")
    return int(match.group(1))


def get_ticket(session: Session, key: str) -> Ticket:
    """The ticket with this key, or TicketNotFound naming it."""
    number = parse_key(key)
    ticket = session.get(Ticket, number) if number < 2**63 else None
    if ticket is None:
        raise TicketNotFound(f"no ticket {KEY_PREFIX}{number}")
    return ticket


def list_tickets(
    session: Session, filters: TicketFilters, *, limit: int = 50, offset: int = 0
) -> list[Ticket]:
    """Tickets matching `filters`, newest first."""
    statement = filtered(select(Ticket), filters).order_by(Ticket.id.desc())
    return list(session.scalars(statement.limit(limit).offset(offset)))


def count_tickets(session: Session, filters: TicketFilters) -> int:
    """How many tickets match `filters`."""
    statement = filtered(select(func.count()).select_from(Ticket), filters)
    return int(session.scalar(statement) or 0)


def sources(session: Session) -> list[str]:
    """Every source that has opened a ticket, by name.

    Walks the source index one value at a time (a handful of lookups) instead of reading
    every ticket, which a plain DISTINCT does.
    """
    found: list[str] = []
    while True:
        after = select(func.min(Ticket.source))
        if found:
            after = after.where(Ticket.source > found[-1])
        name = session.scalar(after)
        if name is None:
            return found
        found.append(name)


def timeline(session: Session, ticket: Ticket, *, limit: int = 500) -> list[TicketEvent]:
    """The ticket's most recent events, oldest first, in the order they happened: an alarm's
    events are dated when the sender says it fired or resolved (`startsAt`, `endsAt`), which
    can be before they arrived."""
    newest = session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id)
        .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
        .limit(limit)
    )
    return list(reversed(list(newest)))


# --- triage ------------------------------------------------------------------------------------


def find_operator(session: Session, username: str) -> User:
    """The active user named `username` who may work tickets, or an error naming them."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        raise TicketInputError(f"unknown user {username!r}")
    if not user.role_enum.includes(Role.operator):
        raise TicketInputError(f"user {username!r} is a {user.role} and cannot work tickets")
    return user


def acknowledge(
    session: Session, ticket: Ticket, *, actor: str, at: dt.datetime | None = None
) -> Ticket:
    """Say someone is on it: open becomes acknowledged (acknowledged stays so)."""
    if not ticket.is_open:
        raise TicketConflict(f"{ticket.key} is closed; reopen it first")
    if ticket.status == Status.open.value:
        ticket.status = Status.acknowledged.value
        ticket.acknowledged_at = at or utcnow()
        ticket.acknowledged_by = actor
        _event(session, ticket, EventKind.acknowledged, actor, ticket.acknowledged_at)
    return ticket


def assign(
    session: Session,
    ticket: Ticket,
    username: str | None,
    *,
    actor: str,
    at: dt.datetime | None = None,
) -> Ticket:
    """Give the ticket to `username` (None: to nobody)."""
    user = find_operator(session, username) if username else None
    before = ticket.assignee_name
    ticket.assignee_id = user.id if user else None
    ticket.assignee = user
    if before != (user.username if user else None):
        _event(
            session,
            ticket,
            EventKind.assigned,
            actor,
            at,
            before=before,
            after=user.username if user else None,
        )
    return ticket


def storable_text(text: str) -> str:
    """`text` with NUL, which PostgreSQL cannot store, kept as U+FFFD (as mail and intake
    keep it)."""
    return text.replace("\x00", "\ufffd")


def add_note(
    session: Session, ticket: Ticket, text: str, *, author: str, at: dt.datetime | None = None
) -> TicketNote:
    """Add a Markdown note to the ticket."""
    body = storable_text(text).strip()
    if not body:
        raise TicketInputError("note text is empty")
    if len(body) > MAX_NOTE:
        raise TicketInputError(f"note text is longer than {MAX_NOTE} characters")
    note = TicketNote(ticket_id=ticket.id, author=author, body=body, created_at=at or utcnow())
    session.add(note)
    session.flush()
    _event(session, ticket, EventKind.note, author, note.created_at, note_id=note.id)
    return note


def check_link(url: str, key: str | None = None) -> tuple[str, str]:
    """A valid outside link: an http(s) URL and its key there (taken from the URL if not given)."""
    url = url.strip()
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > MAX_URL
        or any(char.isspace() for char in url)
    ):
        raise TicketInputError(f"link URL {url[:200]!r} is not an http(s) address")
    key = (key or "").strip()
    if not key:
        found = TRACKER_KEY.search(url)
        key = found.group(1) if found else (parts.path.rstrip("/").rsplit("/", 1)[-1] or url)
    if len(key) > MAX_LINK_KEY:
        raise TicketInputError(f"link key is longer than {MAX_LINK_KEY} characters")
    return url, key


def add_link(
    session: Session,
    ticket: Ticket,
    url: str,
    key: str | None = None,
    *,
    actor: str,
    at: dt.datetime | None = None,
) -> TicketLink:
    """Link the ticket to an outside tracker's issue."""
    url, key = check_link(url, key)
    when = at or utcnow()
    link = TicketLink(ticket_id=ticket.id, url=url, key=key, created_by=actor, created_at=when)
    session.add(link)
    session.flush()
    _event(session, ticket, EventKind.link, actor, when, url=url, key=key)
    return link


def close_ticket(
    session: Session,
    ticket: Ticket,
    *,
    resolution: str = "",
    link_url: str | None = None,
    link_key: str | None = None,
    actor: str,
    at: dt.datetime | None = None,
) -> Ticket:
    """Close the ticket with a resolution, optionally linking an outside tracker issue."""
    if not ticket.is_open:
        raise TicketConflict(f"{ticket.key} is already closed")
    if link_url:
        check_link(link_url, link_key)  # refuse a bad link before changing anything
        add_link(session, ticket, link_url, link_key, actor=actor, at=at)
    ticket.status = Status.closed.value
    ticket.resolution = resolution.strip() or None
    ticket.closed_at = at or utcnow()
    ticket.closed_by = actor
    _event(session, ticket, EventKind.closed, actor, ticket.closed_at, resolution=ticket.resolution)
    return ticket


def reopen(session: Session, ticket: Ticket, *, actor: str) -> Ticket:
    """Open a closed ticket again, unless its fingerprint has opened another meanwhile."""
    if ticket.is_open:
        raise TicketConflict(f"{ticket.key} is not closed")
    if ticket.fingerprint:
        newer = _open_for(session, ticket.fingerprint)
        if newer is not None:
            raise TicketConflict(f"{newer.key} is open for the same fingerprint; work on that one")
    ticket.status = Status.open.value
    ticket.closed_at = None
    ticket.closed_by = None
    ticket.acknowledged_at = None
    ticket.acknowledged_by = None
    ticket.resolution = None
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise TicketConflict(
            f"another ticket is open for {ticket.key}'s fingerprint; work on that one"
        ) from None
    _event(session, ticket, EventKind.reopened, actor)
    return ticket


def record_notification(
    session: Session,
    ticket: Ticket,
    *,
    channel: str,
    recipient: str,
    reason: str,
    actor: str,
    at: dt.datetime | None = None,
) -> None:
    """Note on the timeline that a notice about the ticket went out (at `at`, default now)."""
    _event(
        session,
        ticket,
        EventKind.notified,
        actor,
        at,
        channel=channel,
        recipient=recipient,
        reason=reason,
    )


def operators(session: Session) -> list[User]:
    """Active users who may work tickets, by name (the choices for assignment)."""
    allowed = [role.value for role in Role if role.includes(Role.operator)]
    return list(
        session.scalars(
            select(User)
            .where(User.active.is_(True), User.role.in_(allowed))
            .order_by(User.username)
        )
    )
