"""How the console words counts and moments, the same on every page and in the CLI.

Counts: "1 time", "2 times", "0 tickets". Moments: ISO 8601 with the offset from UTC, in the
time zone the signed-in person chose (UTC until they choose): `2026-12-07 10:30+01:00` for
someone in Europe/Berlin, `2026-12-07 09:30+00:00` for someone in UTC. Every page's footer names
the zone. The API's JSON stays in UTC whatever the caller's zone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import zoneinfo
from collections.abc import Iterator
from contextvars import ContextVar

ISO_MINUTES = "%Y-%m-%d %H:%M"
ISO_SECONDS = "%Y-%m-%d %H:%M:%S"
UTC_NAME = "UTC"

# The zone of the person the current request (or page being drawn) is for; set by the access
# check for each request and by `render()` while a page is drawn. Jobs, mails and the CLI
# never set it, so they write UTC.
_shown_zone: ContextVar[str] = ContextVar("dutydesk_shown_zone", default=UTC_NAME)


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`count` and the noun, singular for exactly one: "1 time", "2 times", "0 files"."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"


@functools.cache
def time_zone_names() -> frozenset[str]:
    """Every IANA time zone name this machine knows (`Europe/Berlin`, `UTC`, ...)."""
    return frozenset(zoneinfo.available_timezones()) | {UTC_NAME}


def is_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone name this machine knows."""
    return name in time_zone_names()


def zone_named(name: str) -> dt.tzinfo:
    """The zone called `name`; UTC for a name this machine does not know."""
    if name == UTC_NAME or not is_time_zone(name):
        return dt.UTC
    return zoneinfo.ZoneInfo(name)


def shown_zone() -> str:
    """The name of the zone moments are shown and read in for the current request."""
    return _shown_zone.get()


def show_in(name: str) -> None:
    """Show (and read) moments in the zone `name` for the rest of the current request."""
    _shown_zone.set(name if is_time_zone(name) else UTC_NAME)


@contextlib.contextmanager
def shown_in(name: str) -> Iterator[None]:
    """Show moments in the zone `name` inside the block (a page being drawn)."""
    token = _shown_zone.set(name if is_time_zone(name) else UTC_NAME)
    try:
        yield
    finally:
        _shown_zone.reset(token)


def iso_moment(value: dt.datetime | None, *, seconds: bool = False, zone: str | None = None) -> str:
    """A moment in ISO form with its offset, in `zone` (default: the zone shown for the
    current request): `2026-12-07 10:30+01:00`; empty for none. A naive moment is UTC."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(zone_named(zone or shown_zone()))
    text = local.strftime(ISO_SECONDS if seconds else ISO_MINUTES)
    offset = local.strftime("%z")  # +0100
    return f"{text}{offset[:3]}:{offset[3:]}"


def as_typed_in_zone(moment: dt.datetime, zone: str | None = None) -> dt.datetime:
    """A moment typed without an offset, read in `zone` (default: the zone shown for the
    current request), as an aware moment; an aware moment is returned as it is."""
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=zone_named(zone or shown_zone()))
