"""Five-field cron schedules (minute hour day-of-month month day-of-week), in UTC.

Enough for deadline rules and heartbeat schedules: numbers, `*`, ranges, steps and lists; day
of week 0-7 (0 and 7 are Sunday). Asked for the latest scheduled time at or before a moment,
or the first one after it, in UTC or on a time zone's wall clock (a time the zone skips when
its clocks go forward comes an hour later on the clock, 02:30 as 03:30; a time it repeats
when they go back counts once, the first time).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")
MAX_DAYS_BACK = 400


class CronError(ValueError):
    """A schedule that is not five valid cron fields; the message says which."""


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                start, end = (int(x) for x in base.split("-", 1))
            else:
                start = int(base)
                end = high if step_text else start
        except ValueError:
            raise CronError(f"cron {_NAMES[index]} field {text!r} is not valid") from None
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"cron {_NAMES[index]} field {text!r} is out of {low}-{high}")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed schedule."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def _day_matches(self, day: dt.date) -> bool:
        weekday = (day.weekday() + 1) % 7
        if day.month not in self.months:
            return False
        if self.any_day or self.any_weekday:
            return day.day in self.days and weekday in self.weekdays
        return day.day in self.days or weekday in self.weekdays  # cron's "either" rule

    def next_after(self, at: dt.datetime, zone: dt.tzinfo = dt.UTC) -> dt.datetime | None:
        """The first scheduled time after `at`, on `zone`'s clock (returned in UTC), within
        about a year."""
        local = at.astimezone(zone)
        start = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = start.date()
        for ahead in range(MAX_DAYS_BACK):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    if ahead == 0 and hour < start.hour:
                        continue
                    for minute in sorted(self.minutes):
                        if ahead == 0 and hour == start.hour and minute < start.minute:
                            continue
                        wall = dt.datetime.combine(day, dt.time(hour, minute), zone)
                        found = wall.astimezone(dt.UTC)
                        if found > at:
                            return found
            day += dt.timedelta(days=1)
        return None

    def previous(self, at: dt.datetime) -> dt.datetime | None:
        """The latest scheduled time at or before `at` (UTC), within about a year."""
        at = at.astimezone(dt.UTC).replace(second=0, microsecond=0)
        day = at.date()
        for back in range(MAX_DAYS_BACK):
            if self._day_matches(day):
                for hour in sorted(self.hours, reverse=True):
                    if back == 0 and hour > at.hour:
                        continue
                    for minute in sorted(self.minutes, reverse=True):
                        if back == 0 and hour == at.hour and minute > at.minute:
                            continue
                        return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)
            day -= dt.timedelta(days=1)
        return None


def parse_cron(text: str) -> Cron:
    """The schedule in `text`, or CronError naming the bad field."""
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"cron schedule {text!r} needs 5 fields (minute hour day month weekday)")
    minutes, hours, days, months, weekdays = (_field(p, i) for i, p in enumerate(parts))
    return Cron(
        text,
        minutes,
        hours,
        days,
        months,
        weekdays,
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )
