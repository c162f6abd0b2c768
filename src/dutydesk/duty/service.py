"""Rotations and overrides; `who_is_on_duty` is the one answer to "who is on duty at T"."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import clock
from dutydesk.db import utcnow
from dutydesk.duty.models import DutyOverride, Rotation, RotationMember
from dutydesk.people import service as people
from dutydesk.people.models import User

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class DutyError(ValueError):
    """A duty request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Shift:
    """One stretch of duty: who, from when, until when, and whether it is an override."""

    user: User
    starts_at: dt.datetime
    ends_at: dt.datetime
    override: DutyOverride | None = None


def parse_time_zone(name: str) -> ZoneInfo:
    """The time zone named `name` (such as `Europe/Berlin`), or an error saying it is unknown."""
    try:
        return clock.parse_time_zone(name)
    except clock.ClockError as error:
        raise DutyError(str(error)) from error


def parse_weekday(value: str | int) -> int:
    """0 (Monday) to 6 (Sunday) from a number or an English weekday name."""
    text = str(value).strip().lower()
    if text.isdigit() and int(text) < 7:
        return int(text)
    for index, name in enumerate(WEEKDAYS):
        if len(text) >= 3 and name.startswith(text):
            return index
    raise DutyError(f"unknown weekday {value!r}; use monday ... sunday")


def find_user(session: Session, username: str) -> User:
    """The active user named `username`, or an error naming them."""
    try:
        return people.active_user(session, username)
    except people.PeopleError as error:
        raise DutyError(str(error)) from error


def get_rotation(session: Session, name: str) -> Rotation:
    """The rotation named `name`, or an error naming the known ones."""
    rotation = session.scalar(select(Rotation).where(Rotation.name == name))
    if rotation is None:
        known = ", ".join(r.name for r in list_rotations(session)) or "none"
        raise DutyError(f"no rotation named {name!r}; known: {known}")
    return rotation


def list_rotations(session: Session) -> list[Rotation]:
    """Every rotation, by name."""
    return list(session.scalars(select(Rotation).order_by(Rotation.name)))


def _anchor(zone: ZoneInfo, weekday: int, handoff: str, now: dt.datetime) -> dt.datetime:
    """The last hand-off at or before `now`, as a UTC instant."""
    hour, minute = (int(part) for part in handoff.split(":"))
    local = now.astimezone(zone)
    day = local.date() - dt.timedelta(days=(local.weekday() - weekday) % 7)
    candidate = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    if candidate > local:
        candidate -= dt.timedelta(days=7)
    return candidate.astimezone(dt.UTC)


def create_rotation(
    session: Session,
    *,
    name: str,
    members: Sequence[str],
    time_zone: str,
    handoff_weekday: str | int = 0,
    handoff_time: str = "09:00",
    shift_hours: int = 168,
    lead: str | None = None,
    now: dt.datetime | None = None,
) -> Rotation:
    """A new rotation; every value is checked before anything is added."""
    name = name.strip()
    if not name or len(name) > 100:
        raise DutyError("a rotation needs a name of 1 to 100 characters")
    if session.scalar(select(Rotation.id).where(Rotation.name == name)) is not None:
        raise DutyError(f"a rotation named {name!r} already exists")
    zone = parse_time_zone(time_zone)
    weekday = parse_weekday(handoff_weekday)
    if not clock.is_time_of_day(handoff_time.strip()):
        raise DutyError(f"hand-off time {handoff_time!r} is not HH:MM (24-hour)")
    if shift_hours < 1:
        raise DutyError("a shift lasts at least one hour")
    names = [member.strip() for member in members if member.strip()]
    if not names:
        raise DutyError("a rotation needs at least one member")
    users = [find_user(session, member) for member in names]
    lead_user = find_user(session, lead) if lead else None
    rotation = Rotation(
        name=name,
        time_zone=zone.key,
        handoff_weekday=weekday,
        handoff_time=handoff_time.strip(),
        shift_hours=shift_hours,
        anchor_at=_anchor(zone, weekday, handoff_time.strip(), now or utcnow()),
        lead=lead_user,
    )
    rotation.members = [RotationMember(user=user, position=i) for i, user in enumerate(users)]
    session.add(rotation)
    session.flush()
    return rotation


def _scheduled(rotation: Rotation, at: dt.datetime) -> tuple[int, dt.datetime, dt.datetime]:
    """The shift number at `at` and its bounds, counted in the rotation's wall-clock time.

    Wall-clock arithmetic keeps the hand-off at the same local time across DST changes.
    """
    zone = ZoneInfo(rotation.time_zone)
    anchor = rotation.anchor_at.astimezone(zone).replace(tzinfo=None)
    local = at.astimezone(zone).replace(tzinfo=None)
    length = dt.timedelta(hours=rotation.shift_hours)
    number = (local - anchor) // length
    start = anchor + number * length
    return (
        number,
        start.replace(tzinfo=zone).astimezone(dt.UTC),
        (start + length).replace(tzinfo=zone).astimezone(dt.UTC),
    )


def who_is_on_duty(rotation: Rotation, at: dt.datetime | None = None) -> User | None:
    """The person on duty for `rotation` at `at` (now): an override in force, else the member
    whose turn it is; None for a rotation without members."""
    shift = current_shift(rotation, at or utcnow())
    return shift.user if shift else None


def current_shift(rotation: Rotation, at: dt.datetime) -> Shift | None:
    """The shift in force at `at`, overrides first."""
    for override in rotation.overrides:
        if override.starts_at <= at < override.ends_at:
            return Shift(override.user, override.starts_at, override.ends_at, override)
    if not rotation.members:
        return None
    number, start, end = _scheduled(rotation, at)
    return Shift(rotation.members[number % len(rotation.members)].user, start, end)


def shifts(rotation: Rotation, start: dt.datetime, end: dt.datetime) -> list[Shift]:
    """The scheduled shifts and overrides that touch [start, end), in time order."""
    found: list[Shift] = []
    if rotation.members:
        at = start
        while at < end:
            number, begin, finish = _scheduled(rotation, at)
            user = rotation.members[number % len(rotation.members)].user
            found.append(Shift(user, begin, finish))
            at = finish
    found.extend(
        Shift(o.user, o.starts_at, o.ends_at, o)
        for o in rotation.overrides
        if o.ends_at > start and o.starts_at < end
    )
    return sorted(found, key=lambda shift: (shift.starts_at, shift.override is None))


def add_override(
    session: Session,
    rotation: Rotation,
    *,
    username: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    reason: str,
    actor: str,
    now: dt.datetime | None = None,
) -> DutyOverride:
    """Let `username` stand in from `starts_at` to `ends_at`; tells the rotation's lead."""
    user = find_user(session, username)
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise DutyError("override times need a time zone")
    if ends_at <= starts_at:
        raise DutyError("an override must end after it starts")
    for other in rotation.overrides:
        if other.starts_at < ends_at and starts_at < other.ends_at:
            raise DutyError(
                f"overlaps the override of {other.user.username} from "
                f"{other.starts_at:%Y-%m-%d %H:%M} to {other.ends_at:%Y-%m-%d %H:%M} UTC"
            )
    override = DutyOverride(
        rotation=rotation,
        user=user,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason.strip()[:500],
        created_by=actor,
    )
    session.add(override)
    session.flush()
    if rotation.lead is not None:
        # The one way notices go out; notify needs nothing of duty's to send it.
        from dutydesk.notify.service import notify_user

        notify_user(
            session,
            rotation.lead,
            subject=f"override:{override.id}",
            reason="override created",
            now=now,
            title=f"{user.username} stands in on {rotation.name}",
            body=(
                f"{user.username} is on duty for {rotation.name} from "
                f"{starts_at:%Y-%m-%d %H:%M} to {ends_at:%Y-%m-%d %H:%M} UTC "
                f"(set by {actor}). Reason: {override.reason or 'none given'}"
            ),
        )
    return override


def hash_token(token: str) -> str:
    """The stored form of a feed token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_ical_token(rotation: Rotation) -> str:
    """A fresh secret for the rotation's iCal feed URL; only its hash is kept."""
    token = secrets.token_urlsafe(24)
    rotation.ical_token_hash = hash_token(token)
    return token


def rotation_for_token(session: Session, token: str) -> Rotation | None:
    """The rotation whose feed token this is."""
    return session.scalar(select(Rotation).where(Rotation.ical_token_hash == hash_token(token)))


def _ical_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def ical_feed(rotation: Rotation, *, now: dt.datetime | None = None, weeks: int = 8) -> str:
    """The rotation's shifts for the next `weeks` weeks as an iCalendar document."""
    now = now or utcnow()
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//dutydesk//duty//EN"]
    for shift in shifts(rotation, now, now + dt.timedelta(weeks=weeks)):
        kind = "override" if shift.override else "shift"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{rotation.id}-{kind}-{_ical_time(shift.starts_at)}@dutydesk",
            f"DTSTAMP:{_ical_time(now)}",
            f"DTSTART:{_ical_time(shift.starts_at)}",
            f"DTEND:{_ical_time(shift.ends_at)}",
            f"SUMMARY:{rotation.name}: {shift.user.username}"
            + (" (override)" if shift.override else ""),
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"
