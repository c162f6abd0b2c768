"""Release windows: named weekly spans in a time zone when the operators are available."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.clock import ClockError, is_time_of_day, parse_time_zone
from dutydesk.db import utcnow
from dutydesk.runbooks.releases.models import ReleaseWindow

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WindowError(ValueError):
    """A release window that cannot be made; the message says why."""


def parse_days(value: str | list[int] | list[str]) -> list[int]:
    """Days of the week from `mon,tue` (or 0..6, 0 is Monday) as sorted numbers."""
    items = value.split(",") if isinstance(value, str) else list(value)
    days: set[int] = set()
    for item in items:
        text = str(item).strip().lower()[:3]
        if text in DAY_NAMES:
            days.add(DAY_NAMES.index(text))
        elif text.isdigit() and int(text) < 7:
            days.add(int(text))
        elif text:
            raise WindowError(f"day {item!r} is not one of {', '.join(DAY_NAMES)} (or 0..6)")
    if not days:
        raise WindowError("a release window needs at least one day of the week")
    return sorted(days)


def create_window(
    session: Session,
    *,
    name: str,
    days: str | list[int] | list[str],
    starts: str,
    ends: str,
    time_zone: str = "UTC",
    actor: str,
) -> ReleaseWindow:
    """Make a named weekly window; an end at or before the start runs past midnight."""
    if not name.strip():
        raise WindowError("a release window needs a name")
    for label, value in (("starts", starts), ("ends", ends)):
        if not is_time_of_day(value):
            raise WindowError(f"{label} {value!r} is not a time of day written HH:MM")
    try:
        parse_time_zone(time_zone)
    except ClockError as error:
        raise WindowError(str(error)) from None
    if session.scalar(select(ReleaseWindow.id).where(ReleaseWindow.name == name.strip())):
        raise WindowError(f"a release window named {name.strip()!r} exists already")
    window = ReleaseWindow(
        name=name.strip(),
        days=parse_days(days),
        starts=starts,
        ends=ends,
        time_zone=time_zone.strip(),
        created_by=actor,
    )
    session.add(window)
    session.flush()
    return window


def get_window(session: Session, ident: str | int) -> ReleaseWindow:
    """A window by id or name; LookupError when there is none."""
    text = str(ident)
    window = (
        session.get(ReleaseWindow, int(text))
        if text.isdigit()
        else session.scalar(select(ReleaseWindow).where(ReleaseWindow.name == text))
    )
    if window is None:
        raise LookupError(f"no release window {text!r}")
    return window


def list_windows(session: Session) -> list[ReleaseWindow]:
    """Every release window by name."""
    return list(session.scalars(select(ReleaseWindow).order_by(ReleaseWindow.name)))


def _minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def is_open(window: ReleaseWindow, at: dt.datetime | None = None) -> bool:
    """Whether the window is open at `at` (now), read in the window's time zone."""
    local = (at or utcnow()).astimezone(parse_time_zone(window.time_zone))
    now = local.hour * 60 + local.minute
    start, end = _minutes(window.starts), _minutes(window.ends)
    if start < end:
        return local.weekday() in window.days and start <= now < end
    # Past midnight: the evening part belongs to today, the morning part to yesterday.
    if now >= start:
        return local.weekday() in window.days
    return now < end and (local.weekday() - 1) % 7 in window.days


def describe(window: ReleaseWindow) -> str:
    """The window in words: `weekday mornings (mon-fri 08:00-12:00 Europe/Amsterdam)`."""
    days = ",".join(DAY_NAMES[day] for day in window.days)
    return f"{window.name} ({days} {window.starts}-{window.ends} {window.time_zone})"
