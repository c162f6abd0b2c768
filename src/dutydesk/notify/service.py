"""Channels, contact methods and lists, and deliveries: every notice is a row that is claimed
atomically before it is sent, retried with exponential backoff, and kept as a dead letter when
it fails too often."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import apprise
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import clock, registry
from dutydesk.db import transaction, utcnow
from dutydesk.notify import _send
from dutydesk.notify.models import (
    Channel,
    ChannelKind,
    ContactList,
    ContactListEntry,
    ContactMethod,
    Delivery,
    DeliveryState,
    QuietHours,
)
from dutydesk.people import service as people
from dutydesk.people.models import User
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Ticket

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCHEME_KINDS = {
    "mailto": ChannelKind.email,
    "slack": ChannelKind.slack,
    "discord": ChannelKind.discord,
    "json": ChannelKind.webhook,
    "jsons": ChannelKind.webhook,
}
_DISCORD_HOSTS = {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}
# How long a claimed delivery is kept from other workers while it is being sent.
_LEASE = dt.timedelta(minutes=2)


def _webhook_kind(url: str) -> ChannelKind | None:
    """Slack or Discord for the https URL of one of their incoming webhooks."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return None
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com" and parts.path.startswith("/services/"):
        return ChannelKind.slack
    if host in _DISCORD_HOSTS and parts.path.startswith("/api/webhooks/"):
        return ChannelKind.discord
    return None


class NotifyError(ValueError):
    """A notification request that cannot be done; the message says why."""


def check_url(url: str, kind: str | None = None) -> tuple[str, str]:
    """A valid (kind, url): e-mail addresses, webhook https URLs or apprise URLs."""
    url = url.strip()
    if _EMAIL.match(url.removeprefix("mailto:")) and (kind in (None, "email")):
        return ChannelKind.email.value, "mailto:" + url.removeprefix("mailto:")
    scheme = urlsplit(url).scheme.lower()
    if kind is None:
        kind = (_webhook_kind(url) or _SCHEME_KINDS.get(scheme, ChannelKind.apprise)).value
    if kind not in ChannelKind.__members__:
        raise NotifyError(f"unknown channel kind {kind!r}; use {', '.join(ChannelKind)}")
    if kind == ChannelKind.email:
        raise NotifyError(f"{url!r} is not an e-mail address")
    if scheme in ("http", "https") and kind != ChannelKind.apprise:
        if not urlsplit(url).hostname:
            raise NotifyError(f"{url!r} has no host")
        return kind, url
    if apprise.Apprise.instantiate(url) is None:
        raise NotifyError("invalid apprise URL (see https://github.com/caronc/apprise/wiki)")
    return kind, url


def mask_url(url: str) -> str:
    """The URL with its secrets (passwords, tokens in paths and queries) hidden."""
    if url.startswith("mailto:"):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    if parts.username:
        host = f"{parts.username}:***@{host}" if parts.password else f"***@{host}"

    def hide(segment: str) -> str:
        return segment if len(segment) <= 4 else segment[:2] + "***"

    path = "/".join(hide(segment) for segment in parts.path.split("/"))
    query = "&".join(
        f"{pair.split('=', 1)[0]}=***" if "=" in pair else hide(pair)
        for pair in parts.query.split("&")
        if pair
    )
    if parts.scheme in ("http", "https", "json", "jsons") and parts.path.count("/") <= 1:
        path = parts.path
    return urlunsplit((parts.scheme, host, path, query, ""))


def create_channel(
    session: Session, *, name: str, url: str, kind: str | None = None, team: str = ""
) -> Channel:
    """A new channel after checking its URL."""
    name = name.strip()
    if not name or len(name) > 100:
        raise NotifyError("a channel needs a name of 1 to 100 characters")
    if session.scalar(select(Channel.id).where(Channel.name == name)) is not None:
        raise NotifyError(f"a channel named {name!r} already exists")
    kind, url = check_url(url, kind)
    channel = Channel(name=name, kind=kind, url=url, team=team.strip())
    session.add(channel)
    session.flush()
    return channel


def get_channel(session: Session, name: str) -> Channel:
    """The channel named `name`, or an error."""
    channel = session.scalar(select(Channel).where(Channel.name == name))
    if channel is None:
        raise NotifyError(f"no channel named {name!r}")
    return channel


def list_channels(session: Session) -> list[Channel]:
    """Every channel, by name."""
    return list(session.scalars(select(Channel).order_by(Channel.name)))


def add_contact_method(
    session: Session, user: User, url: str, kind: str | None = None
) -> ContactMethod:
    """Another way to reach `user`."""
    kind, url = check_url(url, kind)
    method = ContactMethod(user=user, kind=kind, url=url)
    session.add(method)
    session.flush()
    return method


def contact_methods(session: Session, user: User) -> list[tuple[str, str, str]]:
    """(channel, kind, address) to reach `user`: their contact methods, else their e-mail."""
    methods = session.scalars(
        select(ContactMethod).where(ContactMethod.user_id == user.id).order_by(ContactMethod.id)
    ).all()
    found = [(f"{m.kind}:{m.id}", m.kind, m.url) for m in methods]
    if not found and user.email:
        found.append(("email", ChannelKind.email.value, f"mailto:{user.email}"))
    return found


def create_contact_list(session: Session, *, name: str, members: list[str]) -> ContactList:
    """A list of usernames and e-mail addresses; all are checked before it is added."""
    name = name.strip()
    if not name or session.scalar(select(ContactList.id).where(ContactList.name == name)):
        raise NotifyError(f"a contact list needs a new name; {name!r} is empty or taken")
    entries = []
    for member in (m.strip() for m in members if m.strip()):
        if "@" in member:
            if not _EMAIL.match(member):
                raise NotifyError(f"{member!r} is not an e-mail address")
            entries.append(ContactListEntry(address=member))
        else:
            try:
                entries.append(ContactListEntry(user=people.active_user(session, member)))
            except people.PeopleError as error:
                raise NotifyError(str(error)) from error
    contact_list = ContactList(name=name, entries=entries)
    session.add(contact_list)
    session.flush()
    return contact_list


def get_contact_list(session: Session, name: str) -> ContactList:
    """The contact list named `name`, or an error."""
    found = session.scalar(select(ContactList).where(ContactList.name == name))
    if found is None:
        raise NotifyError(f"no contact list named {name!r}")
    return found


def add_delivery(session: Session, **fields: Any) -> Delivery | None:
    """Add one notice unless the same one (subject, target, channel, reason, sequence) exists."""
    fields.setdefault("next_attempt_at", utcnow())
    delivery = Delivery(state=DeliveryState.pending.value, **fields)
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        return None
    return delivery


def notify_user(
    session: Session,
    user: User,
    *,
    subject: str,
    reason: str,
    title: str,
    body: str,
    ticket: Ticket | None = None,
    sequence: str = "",
    critical: bool = False,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """Deliveries to every contact method of `user`; a non-critical notice in their quiet
    hours is held until the quiet hours end (not dropped)."""
    made = []
    now = now or utcnow()
    quiet = session.get(QuietHours, user.id)
    held = quiet_until(quiet, now) if quiet is not None and not critical else None
    for channel, kind, address in contact_methods(session, user):
        delivery = add_delivery(
            session,
            ticket_id=ticket.id if ticket else None,
            subject=subject,
            target=f"user:{user.username}",
            channel=channel,
            kind=kind,
            address=address,
            reason=reason,
            sequence=sequence,
            title=title,
            body=body,
            critical=critical,
            next_attempt_at=held or now,
        )
        if delivery is not None:
            made.append(delivery)
    return made


def notify_channel(
    session: Session,
    channel: Channel,
    *,
    subject: str,
    reason: str,
    title: str,
    body: str,
    ticket: Ticket | None = None,
    sequence: str = "",
    critical: bool = False,
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """A delivery to a channel."""
    delivery = add_delivery(
        session,
        ticket_id=ticket.id if ticket else None,
        subject=subject,
        target=f"channel:{channel.name}",
        channel=channel.name,
        kind=channel.kind,
        address=channel.url,
        reason=reason,
        sequence=sequence,
        title=title,
        body=body,
        critical=critical,
        next_attempt_at=now or utcnow(),
    )
    return [delivery] if delivery else []


def notify_list(
    session: Session,
    contact_list: ContactList,
    *,
    subject_line: str,
    message: str,
    subject: str | None = None,
    reason: str = "list notice",
    ticket: Ticket | None = None,
    sequence: str = "",
    now: dt.datetime | None = None,
) -> list[Delivery]:
    """Deliveries of a subject and message to everyone on the list."""
    if not subject_line.strip():
        raise NotifyError("a notice to a list needs a subject")
    subject = subject or f"list:{contact_list.name}:{utcnow().isoformat()}"
    made: list[Delivery] = []
    for entry in contact_list.entries:
        if entry.user is not None:
            made += notify_user(
                session,
                entry.user,
                subject=subject,
                reason=reason,
                title=subject_line,
                body=message,
                ticket=ticket,
                sequence=sequence,
                now=now,
            )
        elif entry.address:
            delivery = add_delivery(
                session,
                ticket_id=ticket.id if ticket else None,
                subject=subject,
                target=f"list:{contact_list.name}",
                channel=f"email:{entry.address}",
                kind=ChannelKind.email.value,
                address=f"mailto:{entry.address}",
                reason=reason,
                sequence=sequence,
                title=subject_line,
                body=message,
                next_attempt_at=now or utcnow(),
            )
            if delivery is not None:
                made.append(delivery)
    return made


def send_test(
    session: Session, channel: Channel, *, actor: str, now: dt.datetime | None = None
) -> Delivery:
    """A "test" delivery to a channel (sent by the next delivery run)."""
    now = now or utcnow()
    stamp = now.isoformat()
    made = notify_channel(
        session,
        channel,
        subject=f"test:{stamp}",
        reason="test",
        title=f"dutydesk test notice for {channel.name}",
        body=f"Sent by {actor} to check the channel works.",
        now=now,
    )
    return made[0]


def oncall_payload(delivery: Delivery, ticket: Ticket | None) -> dict[str, Any]:
    """The body of a generic webhook: Grafana OnCall's outgoing-webhook context (interop §4)."""
    now = utcnow().isoformat()
    group: dict[str, Any] | None = None
    if ticket is not None:
        group = {
            "id": ticket.key,
            "integration_id": ticket.source,
            "route_id": None,
            "alerts_count": ticket.occurrences,
            "state": {"open": "firing", "acknowledged": "acknowledged"}.get(
                ticket.status, "resolved"
            ),
            "created_at": ticket.first_seen_at.isoformat(),
            "resolved_at": ticket.closed_at.isoformat() if ticket.closed_at else None,
            "acknowledged_at": (
                ticket.acknowledged_at.isoformat() if ticket.acknowledged_at else None
            ),
            "title": ticket.title,
            "permalinks": {"slack": None, "telegram": None, "web": ticket_link(ticket)},
            "labels": {"severity": ticket.severity},
        }
    event_type = {"resolved": "resolve", "test": "escalation"}.get(delivery.reason, "escalation")
    return {
        "event": {"type": event_type, "time": now},
        "user": None,
        "alert_group": group,
        "alert_group_id": ticket.key if ticket else None,
        "alert_payload": (ticket.payload or {})
        if ticket
        else {"title": delivery.title, "message": delivery.body},
        "integration": {
            "id": ticket.source if ticket else "dutydesk",
            "type": "dutydesk",
            "name": ticket.source if ticket else "dutydesk",
            "team": None,
            "labels": {},
        },
        "alert_group_acknowledged_by": ticket.acknowledged_by if ticket else None,
        "alert_group_resolved_by": ticket.closed_by if ticket else None,
        "notified_users": [],
        "users_to_be_notified": [delivery.target.removeprefix("user:")]
        if delivery.target.startswith("user:")
        else [],
        "responses": {},
        "webhook": {"id": delivery.channel, "name": delivery.channel, "labels": {}},
        "reason": delivery.reason,
    }


def ticket_link(ticket: Ticket | None) -> str:
    """The console page of the ticket (the console itself for a notice about no ticket)."""
    base = get_settings().base_url.rstrip("/")
    return f"{base}/tickets/{ticket.key}" if ticket is not None else f"{base}/"


def subject_link(subject: str) -> str | None:
    """The console page of a notice's subject (`change:7` → /changes/7, `release:3:step:2` →
    /releases/3) when its domain registered one (`registry.subject_page`)."""
    prefix, _, rest = subject.partition(":")
    key = rest.split(":", 1)[0]
    path = registry.subject_pages.get(prefix)
    if path is None or not key.isdigit():
        return None
    return get_settings().base_url.rstrip("/") + path.format(key)


def notice_for(delivery: Delivery, ticket: Ticket | None) -> _send.Notice:
    """The delivery as every kind of channel renders it: with a link to its ticket (or to the
    page of its subject), the ticket's facts, and mail headers that thread the notices of one
    ticket or one subject."""
    facts: dict[str, str] = {}
    link = ticket_link(ticket)
    thread = None
    page = subject_link(delivery.subject) if ticket is None else None
    if page is not None:
        link = page
        thread = _send.mail_id(f"subject.{delivery.subject}")
    if ticket is not None:
        facts = {
            "Ticket": ticket.key,
            "Severity": ticket.severity,
            "Status": ticket.status,
            "Source": ticket.source,
            "Reason": delivery.reason,
        }
        thread = _send.mail_id(f"ticket.{ticket.key}")
    return _send.Notice(
        title=delivery.title,
        body=delivery.body,
        link=link,
        at=delivery.created_at,
        severity=ticket.severity if ticket is not None else None,
        facts=facts,
        # The same on a retry: a mail client shows a notice sent twice once.
        message_id=_send.mail_id(f"notice.{delivery.id}"),
        thread_id=thread,
        payload=oncall_payload(delivery, ticket),
    )


def due_deliveries(
    session: Session, *, now: dt.datetime | None = None, limit: int = 100
) -> list[int]:
    """Ids of deliveries whose (next) attempt is due, skipping channels at their rate cap."""
    now = now or utcnow()
    cap = get_settings().notify_rate_per_minute
    recent = dict(
        session.execute(
            select(Delivery.channel, func.count())
            .where(Delivery.sent_at >= now - dt.timedelta(minutes=1))
            .group_by(Delivery.channel)
        ).all()
    )
    rows = session.execute(
        select(Delivery.id, Delivery.channel)
        .where(
            Delivery.state.in_([DeliveryState.pending.value, DeliveryState.failed.value]),
            Delivery.next_attempt_at <= now,
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    ).all()
    chosen = []
    for delivery_id, channel in rows:
        if recent.get(channel, 0) < cap:
            recent[channel] = recent.get(channel, 0) + 1
            chosen.append(delivery_id)
    return chosen


def claim(session: Session, delivery_id: int, now: dt.datetime) -> bool:
    """Take a due delivery for sending; False when another worker has it or it is not due."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state.in_([DeliveryState.pending.value, DeliveryState.failed.value]),
            Delivery.next_attempt_at <= now,
        )
        .values(attempts=Delivery.attempts + 1, next_attempt_at=now + _LEASE)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failure."""
    return dt.timedelta(seconds=get_settings().notify_backoff_seconds * 2 ** (attempts - 1))


def deliver(
    factory: sessionmaker[Session], delivery_id: int, *, now: dt.datetime | None = None
) -> str:
    """Claim, send and record one delivery; returns the state it ended in (or 'skipped').

    The claim commits before sending, so no other worker sends the same notice meanwhile.
    """
    now = now or utcnow()
    with transaction(factory, immediate=True, actor="notify") as session:
        if not claim(session, delivery_id, now):
            return "skipped"
        delivery = session.get(Delivery, delivery_id, populate_existing=True)
        assert delivery is not None
        ticket = session.get(Ticket, delivery.ticket_id) if delivery.ticket_id else None
        kind, address = delivery.kind, delivery.address
        notice = notice_for(delivery, ticket)
    error: str | None = None
    try:
        _send.send(kind, address, notice)
    except _send.SendError as failure:
        error = str(failure)
    with transaction(factory, immediate=True, actor="notify") as session:
        delivery = session.get(Delivery, delivery_id, populate_existing=True)
        assert delivery is not None
        if error is None:
            delivery.state = DeliveryState.sent.value
            delivery.sent_at = utcnow()
            delivery.last_error = None
            ticket = session.get(Ticket, delivery.ticket_id) if delivery.ticket_id else None
            if ticket is not None:
                from dutydesk.tickets.service import record_notification

                record_notification(
                    session,
                    ticket,
                    channel=delivery.channel,
                    recipient=delivery.target,
                    reason=delivery.reason,
                    actor="notify",
                )
        elif delivery.attempts >= get_settings().notify_max_attempts:
            delivery.state = DeliveryState.dead.value
            delivery.last_error = error
        else:
            delivery.state = DeliveryState.failed.value
            delivery.last_error = error
            delivery.next_attempt_at = now + backoff(delivery.attempts)
        return delivery.state


def retry(session: Session, delivery: Delivery) -> Delivery:
    """Send a dead (or failed) letter again from the first attempt."""
    if delivery.state not in (DeliveryState.dead.value, DeliveryState.failed.value):
        raise NotifyError(
            f"delivery {delivery.id} is {delivery.state}; only dead or failed "
            "notices can be retried"
        )
    delivery.state = DeliveryState.pending.value
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    return delivery


def list_deliveries(
    session: Session, *, state: str | None = None, limit: int = 200
) -> list[Delivery]:
    """The newest deliveries, optionally of one state."""
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if state:
        query = query.where(Delivery.state == state)
    return list(session.scalars(query))


def set_quiet_hours(
    session: Session, user: User, *, time_zone: str, starts: str, ends: str
) -> QuietHours:
    """Hold `user`'s non-critical notices between `starts` and `ends` (HH:MM, their zone)."""
    try:
        zone = clock.parse_time_zone(time_zone)
    except clock.ClockError as error:
        raise NotifyError(str(error)) from error
    for value in (starts, ends):
        if not clock.is_time_of_day(value):
            raise NotifyError(f"{value!r} is not HH:MM (24-hour)")
    quiet = session.get(QuietHours, user.id) or QuietHours(user_id=user.id)
    quiet.time_zone, quiet.starts, quiet.ends = zone.key, starts, ends
    session.add(quiet)
    session.flush()
    return quiet


def quiet_until(quiet: QuietHours, at: dt.datetime) -> dt.datetime | None:
    """When the quiet hours around `at` end, or None when `at` is not in quiet hours."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(quiet.time_zone)
    local = at.astimezone(zone)
    start = dt.time.fromisoformat(quiet.starts)
    end = dt.time.fromisoformat(quiet.ends)
    now = local.time()
    inside = start <= now < end if start <= end else (now >= start or now < end)
    if not inside:
        return None
    day = local.date() if now < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=zone).astimezone(dt.UTC)


def send_test_to_method(
    session: Session, method: ContactMethod, *, actor: str, now: dt.datetime | None = None
) -> Delivery:
    """A "test" delivery to one of a person's contact methods."""
    now = now or utcnow()
    delivery = add_delivery(
        session,
        subject=f"test:{now.isoformat()}",
        target=f"user:{method.user.username}",
        channel=f"{method.kind}:{method.id}",
        kind=method.kind,
        address=method.url,
        reason="test",
        title="dutydesk test notice",
        body=f"Sent by {actor} to check this contact method works.",
        next_attempt_at=now,
    )
    assert delivery is not None  # the subject carries the time: a new row each time
    return delivery


def parse_steps(text: str) -> list[dict[str, Any]]:
    """Steps from lines of `TARGET NAME WAIT_MINUTES` (such as `rotation primary 15`)."""
    steps = []
    for number, line in enumerate(text.strip().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[2].isdigit():
            raise NotifyError(f"line {number}: write TARGET NAME WAIT_MINUTES, got {line!r}")
        steps.append({"target": parts[0], "name": parts[1], "wait_minutes": int(parts[2])})
    return steps
