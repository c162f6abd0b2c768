"""Integrations, their tokens and rate limits, and the inbox every signal passes through.

Functions take a session and never commit; the request, job or command owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.db import before_commit, delete_in_batches, memo_of, utcnow
from dutydesk.idents import as_id
from dutydesk.intake._payload import REPLACEMENT, storable, storable_bytes
from dutydesk.intake.models import (
    InboxItem,
    Integration,
    Kind,
    Outcome,
    PingCheck,
    RateCount,
)
from dutydesk.people.service import sha256
from dutydesk.tickets.service import parse_severity

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
DEFAULT_RATE_LIMIT = 300
DEFAULT_RATE_WINDOW_SECONDS = 300
# Headers worth keeping with a raw request; secrets (X-Gitlab-Token, cookies) never are.
KEPT_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-gitlab-event",
    "x-request-id",
    "x-forwarded-for",
)
# How much of a body larger than the limit is kept, to show what it was.
OVERSIZED_SAMPLE_BYTES = 64 * 1024


class IntakeError(ValueError):
    """An intake request that cannot be done; the message says why."""


class IntegrationNotFound(IntakeError):
    """No integration has the name or id asked for."""


@dataclass(frozen=True)
class NewToken:
    """An integration with its secret token, which is shown this once."""

    integration: Integration
    token: str

    @property
    def path(self) -> str | None:
        """The URL path signals are sent to (None for e-mail, which comes by SMTP or IMAP)."""
        return hook_path(self.integration.kind, self.token)


def hook_path(kind: str, token: str) -> str | None:
    """The path of the endpoint an integration of `kind` receives on, with its token."""
    if kind == Kind.email.value:
        return None
    if kind == Kind.heartbeat.value:
        return f"/ping/{token}"
    return f"/hooks/{kind}/{token}"


def parse_kind(value: str) -> str:
    """The integration kind named `value`, or an error listing them."""
    if value not in Kind.__members__:
        raise IntakeError(f"unknown kind {value!r}; choose one of {', '.join(Kind)}")
    return value


def _new_secret(kind: str) -> str:
    # Healthchecks clients expect a uuid in a ping URL; other kinds get 32 random characters.
    return str(uuid.uuid4()) if kind == Kind.heartbeat.value else secrets.token_urlsafe(24)


def _check_paths(paths: list[str]) -> list[str]:
    cleaned = [path.strip() for path in paths if path.strip()]
    for path in cleaned:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", path):
            raise IntakeError(f"grouping path {path!r} is not a dotted field name")
    return cleaned


def create_integration(
    session: Session,
    *,
    name: str,
    kind: str,
    actor: str,
    group_by: list[str] | None = None,
    resolve_when: dict[str, str] | None = None,
    close_on_resolve: bool = False,
    default_severity: str = "warning",
    rate_limit: int = DEFAULT_RATE_LIMIT,
    rate_window_seconds: int = DEFAULT_RATE_WINDOW_SECONDS,
    signing_secret: str | None = None,
    period_seconds: int = 86_400,
    grace_seconds: int = 3_600,
    schedule: str | None = None,
    tz: str = "UTC",
) -> NewToken:
    """Make an integration; returns it with its token (only the token's hash is kept)."""
    name = name.strip().lower()
    if not NAME_PATTERN.match(name):
        raise IntakeError(
            f"integration name {name!r} must be 1-100 lowercase letters, digits, '.', '_' or '-'"
        )
    kind = parse_kind(kind)
    if session.scalar(select(Integration.id).where(Integration.name == name)) is not None:
        raise IntakeError(f"an integration named {name!r} exists already")
    if rate_limit < 1 or rate_window_seconds < 60:
        raise IntakeError("the rate limit needs at least 1 request per window of at least 60 s")
    if kind in (Kind.github.value, Kind.gitlab.value) and not signing_secret:
        signing_secret = secrets.token_urlsafe(24)
    token = _new_secret(kind)
    integration = Integration(
        name=name,
        kind=kind,
        token_hash=sha256(token),
        token_prefix=token[:6],
        signing_secret=signing_secret or None,
        group_by=_check_paths(group_by or []),
        resolve_when={str(k): str(v) for k, v in (resolve_when or {}).items()},
        close_on_resolve=close_on_resolve,
        default_severity=parse_severity(default_severity),
        rate_limit=rate_limit,
        rate_window_seconds=rate_window_seconds,
        created_by=actor,
    )
    if kind == Kind.heartbeat.value:
        if period_seconds < 60 or grace_seconds < 0:
            raise IntakeError("a heartbeat needs a period of at least 60 s and a grace >= 0")
        integration.check = PingCheck(
            period_seconds=period_seconds,
            grace_seconds=grace_seconds,
            schedule=_check_schedule(schedule, tz),
            tz=tz.strip() or "UTC",
        )
    session.add(integration)
    session.flush()
    return NewToken(integration, token)


def _check_schedule(schedule: str | None, tz: str) -> str | None:
    """A heartbeat's cron schedule, normalised (None for none); IntakeError when it or the
    time zone cannot be read."""
    from dutydesk.alarms._cron import CronError, parse_cron
    from dutydesk.clock import ClockError, parse_time_zone

    try:
        parse_time_zone(tz or "UTC")
        if schedule is None or not schedule.strip():
            return None
        return parse_cron(schedule).text.strip()
    except (CronError, ClockError) as error:
        raise IntakeError(str(error)) from None


def rotate_token(session: Session, integration: Integration) -> NewToken:
    """Give the integration a new token; the old one stops working at once."""
    token = _new_secret(integration.kind)
    integration.token_hash = sha256(token)
    integration.token_prefix = token[:6]
    session.flush()
    return NewToken(integration, token)


def update_integration(
    session: Session, integration: Integration, changes: dict[str, Any]
) -> Integration:
    """Change an integration's grouping, resolve rule, limits, severity or enabled flag."""
    for key, value in changes.items():
        if key == "group_by":
            integration.group_by = _check_paths(list(value))
        elif key == "resolve_when":
            integration.resolve_when = {str(k): str(v) for k, v in dict(value).items()}
        elif key == "default_severity":
            integration.default_severity = parse_severity(str(value))
        elif key in ("rate_limit", "rate_window_seconds"):
            if int(value) < (1 if key == "rate_limit" else 60):
                raise IntakeError(f"{key} {value} is too small")
            setattr(integration, key, int(value))
        elif key in ("close_on_resolve", "enabled"):
            setattr(integration, key, bool(value))
        else:
            raise IntakeError(f"{key!r} cannot be changed")
    session.flush()
    return integration


def delete_integration(session: Session, integration: Integration) -> None:
    """Remove an integration; its inbox items and alarms stay, without the link."""
    session.delete(integration)
    session.flush()


def get_integration(session: Session, ident: str | int) -> Integration:
    """The integration with this id or name, or IntegrationNotFound naming it."""
    found: Integration | None
    if isinstance(ident, int) or (str(ident).isascii() and str(ident).isdigit()):
        number = as_id(ident)
        found = session.get(Integration, number) if number is not None else None
    else:
        found = session.scalar(select(Integration).where(Integration.name == ident))
    if found is None:
        raise IntegrationNotFound(f"no integration {ident!r}")
    return found


def list_integrations(session: Session) -> list[Integration]:
    """Every integration, by name."""
    return list(session.scalars(select(Integration).order_by(Integration.name)))


def find_by_token(session: Session, token: str) -> Integration | None:
    """The enabled integration whose token this is, if any."""
    if not token or len(token) > 200:
        return None
    return session.scalar(
        select(Integration).where(
            Integration.token_hash == sha256(token), Integration.enabled.is_(True)
        )
    )


# --- rate limits -------------------------------------------------------------------------------


def _minute(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


def _bump(session: Session, integration_id: int, minute: dt.datetime, column: str) -> None:
    """Add one to a counter of the minute, making its row on first use."""
    where = (RateCount.integration_id == integration_id) & (RateCount.minute == minute)
    field = getattr(RateCount, column)
    for _attempt in range(3):
        done = session.execute(update(RateCount).where(where).values({column: field + 1}))
        if getattr(done, "rowcount", 0):
            return
        try:
            with session.begin_nested():
                session.add(RateCount(integration_id=integration_id, minute=minute, **{column: 1}))
                session.flush()
            return
        except IntegrityError:
            continue  # another process made the row first; count in it
    raise IntakeError("could not count the request against the rate limit; try again")


# Accepted requests of the window's earlier minutes, per integration (its id and creation time,
# since ids can be reused), minute and window: those minutes are over, so a process reads
# their sum once per minute instead of once per request.
_earlier_cache: dict[tuple[int, dt.datetime, dt.datetime, int], int] = {}


def _earlier_accepted(session: Session, integration: Integration, minute: dt.datetime) -> int:
    key = (integration.id, integration.created_at, minute, integration.rate_window_seconds)
    cached = _earlier_cache.get(key)
    if cached is None:
        window_start = minute - dt.timedelta(seconds=integration.rate_window_seconds - 60)
        cached = int(
            session.scalar(
                select(func.coalesce(func.sum(RateCount.accepted), 0)).where(
                    RateCount.integration_id == integration.id,
                    RateCount.minute >= window_start,
                    RateCount.minute < minute,
                )
            )
            or 0
        )
        if len(_earlier_cache) > 10_000:
            _earlier_cache.clear()
        _earlier_cache[key] = cached
    return cached


_rates = cast(Table, RateCount.__table__)
_TAKE_SLOT = (
    update(_rates)
    .where(
        _rates.c.integration_id == bindparam("integration"),
        _rates.c.minute == bindparam("at_minute"),
        _rates.c.accepted < bindparam("room"),
    )
    .values(accepted=_rates.c.accepted + 1)
    .returning(_rates.c.accepted)
)


@dataclass
class _Slots:
    """A writer turn's slots of one integration and minute: the count as last written, and
    the slots taken since, written as one addition when the turn commits."""

    accepted: int
    pending: int = 0


def take_rate_slot(session: Session, integration: Integration, at: dt.datetime) -> bool:
    """Count a request against the integration's limit; False (counted as refused) when over.

    The usual case is one statement: add one to this minute's count if that keeps the window
    under the limit; in a writer turn (a `remembering` session) only the turn's first request
    runs it, the others count in memory and the turn writes their sum as it commits. Otherwise
    (first request of the minute, or over the limit) the counts are read and the request
    counted as accepted or refused.
    """
    minute = _minute(at)
    earlier = _earlier_accepted(session, integration, minute)
    room = integration.rate_limit - earlier
    memo = memo_of(session)
    key = ("rate slots", integration.id, minute)
    slots: _Slots | None = memo.get(key) if memo is not None else None
    if slots is not None and slots.accepted + slots.pending < room:
        slots.pending += 1
        return True
    if slots is None:
        parameters = {"integration": integration.id, "at_minute": minute, "room": room}
        taken = session.connection().execute(_TAKE_SLOT, parameters).first()
        if taken is not None:
            if memo is not None:
                memo[key] = _Slots(int(taken[0]))
                before_commit(session, lambda: _write_pending(session, memo[key], key))
            return True
    current = session.scalar(
        select(RateCount.accepted).where(
            RateCount.integration_id == integration.id, RateCount.minute == minute
        )
    )
    pending = slots.pending if slots is not None else 0
    allowed = int(current or 0) + pending < room
    _bump(session, integration.id, minute, "accepted" if allowed else "refused")
    return allowed


_ADD_SLOTS = (
    update(_rates)
    .where(_rates.c.integration_id == bindparam("integration"))
    .where(_rates.c.minute == bindparam("at_minute"))
    .values(accepted=_rates.c.accepted + bindparam("taken"))
)


def _write_pending(session: Session, slots: _Slots, key: tuple[str, int, dt.datetime]) -> None:
    if slots.pending:
        _, integration_id, minute = key
        parameters = {"integration": integration_id, "at_minute": minute, "taken": slots.pending}
        session.connection().execute(_ADD_SLOTS, parameters)
        slots.accepted += slots.pending
        slots.pending = 0


def rate_counts(
    session: Session, integration: Integration, *, since: dt.datetime
) -> tuple[int, int]:
    """Requests accepted and refused since `since` (whole minutes)."""
    row = session.execute(
        select(
            func.coalesce(func.sum(RateCount.accepted), 0),
            func.coalesce(func.sum(RateCount.refused), 0),
        ).where(RateCount.integration_id == integration.id, RateCount.minute >= _minute(since))
    ).one()
    return int(row[0]), int(row[1])


def prune_inbox(session: Session, *, before: dt.datetime, batch: int = 10_000) -> int:
    """Delete inbox items received before `before`; returns how many went."""
    items = cast(Table, InboxItem.__table__)
    return delete_in_batches(session, items, items.c.received_at < before, batch=batch)


def prune_rate_counts(session: Session, *, older_than: dt.timedelta) -> int:
    """Forget counters older than `older_than`; returns how many rows went."""
    done = session.execute(delete(RateCount).where(RateCount.minute < utcnow() - older_than))
    return int(getattr(done, "rowcount", 0) or 0)


# --- the inbox ---------------------------------------------------------------------------------


def kept_headers(headers: Any) -> dict[str, str]:
    """The headers that matter for reading a request later, without secrets."""
    return {name: str(headers[name])[:500] for name in KEPT_HEADERS if name in headers}


@dataclass(frozen=True)
class Arrival:
    """An inbound request or message as it came (what the inbox keeps of it)."""

    source: str
    method: str
    path: str
    client: str | None
    headers: dict[str, str]
    body: bytes
    body_bytes: int | None = None  # the size seen, when the body was cut (len(body) if None)
    truncated: bool = False
    integration: Integration | None = None
    received_at: dt.datetime | None = None

    def columns(self) -> dict[str, Any]:
        """The inbox item's columns for it."""
        body_bytes = len(self.body) if self.body_bytes is None else self.body_bytes
        text = storable_bytes(self.body)
        return {
            "received_at": self.received_at or utcnow(),
            "source": self.source[:32],
            "integration_id": self.integration.id if self.integration else None,
            "method": self.method[:8],
            "path": storable(self.path[:300]),
            "client": (self.client or None) and storable(self.client[:100]),
            "headers": {name: storable(value) for name, value in self.headers.items()},
            "body": text,
            # Every repair leaves a U+FFFD: without one the text is the body exactly.
            "raw_body": self.body if REPLACEMENT in text and text.encode() != self.body else None,
            "body_bytes": body_bytes,
            "truncated": self.truncated,
        }


def record(
    session: Session,
    *,
    source: str,
    method: str,
    path: str,
    client: str | None,
    headers: dict[str, str],
    body: bytes,
    body_bytes: int | None = None,
    truncated: bool = False,
    integration: Integration | None = None,
    at: dt.datetime | None = None,
) -> InboxItem:
    """Store one inbound request or message as it came, before anything reads it."""
    arrival = Arrival(
        source, method, path, client, headers, body, body_bytes, truncated, integration, at
    )
    item = InboxItem(**arrival.columns(), outcome=Outcome.received.value)
    session.add(item)
    return item


_KEEP = insert(cast(Table, InboxItem.__table__)).returning(InboxItem.__table__.c.id)


def keep(
    session: Session,
    arrival: Arrival,
    *,
    outcome: Outcome,
    status_code: int,
    reason: str | None,
    alarm_ids: list[int],
    ticket_ids: list[int],
) -> int:
    """Store one inbound request as it came, with what became of it, in one statement;
    returns its inbox id."""
    values = arrival.columns()
    values.update(
        outcome=outcome.value,
        status_code=status_code,
        reason=storable(reason[:2000]) if reason else None,
        alarm_ids=alarm_ids,
        ticket_ids=ticket_ids,
    )
    return int(session.connection().scalar(_KEEP, values))


def settle(
    item: InboxItem,
    outcome: Outcome,
    *,
    status_code: int | None,
    reason: str | None = None,
    alarm_ids: list[int] | None = None,
    ticket_ids: list[int] | None = None,
) -> None:
    """Write what became of an inbox item."""
    item.outcome = outcome.value
    item.status_code = status_code
    item.reason = storable(reason[:2000]) if reason else None
    item.alarm_ids = alarm_ids or []
    item.ticket_ids = ticket_ids or []


@dataclass(frozen=True)
class InboxFilters:
    """What the inbox list is narrowed to: a time range, text, source and outcome."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    text: str | None = None
    source: str | None = None
    outcome: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_inbox(
    session: Session, filters: InboxFilters, *, limit: int = 50, offset: int = 0
) -> list[InboxItem]:
    """Inbox items matching `filters`, newest first."""
    statement = select(InboxItem)
    if filters.since is not None:
        statement = statement.where(InboxItem.received_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(InboxItem.received_at < filters.until)
    if filters.source:
        statement = statement.where(InboxItem.source == filters.source)
    if filters.outcome:
        statement = statement.where(InboxItem.outcome == filters.outcome)
    if filters.text and filters.text.strip():
        pattern = f"%{_escape_like(filters.text.strip().lower())}%"
        statement = statement.where(
            or_(
                func.lower(InboxItem.body).like(pattern, escape="\\"),
                func.lower(InboxItem.reason).like(pattern, escape="\\"),
                func.lower(InboxItem.path).like(pattern, escape="\\"),
            )
        )
    statement = statement.order_by(InboxItem.received_at.desc(), InboxItem.id.desc())
    return list(session.scalars(statement.limit(limit).offset(offset)))


def get_inbox_item(session: Session, item_id: int) -> InboxItem:
    """One inbox item, or IntakeError naming it."""
    item = session.get(InboxItem, item_id) if 0 < item_id < 2**62 else None
    if item is None:
        raise IntakeError(f"no inbox item {item_id}")
    return item


def masked_path(path: str, token: str) -> str:
    """The request path with the secret token cut to its first characters."""
    return path.replace(token, f"{token[:6]}…") if token else path
