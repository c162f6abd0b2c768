"""Time helpers every domain reads the same way: time zones by name, times of day as HH:MM."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ClockError(ValueError):
    """A time zone or time of day that cannot be read; the message says why."""


def parse_time_zone(name: str) -> ZoneInfo:
    """The time zone named `name` (such as `Europe/Berlin`), or an error saying it is unknown."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ClockError(f"unknown time zone {name!r}; use a name such as Europe/Berlin") from error


def is_time_of_day(value: str) -> bool:
    """Whether `value` is a time of day written HH:MM (24-hour)."""
    return _TIME_OF_DAY.match(value) is not None
