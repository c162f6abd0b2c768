"""How the console words counts and moments, the same on every page and in the CLI.

Counts: "1 time", "2 times", "0 tickets". Moments: ISO form in UTC, `2026-12-06 09:30`, the
way the console writes them everywhere (its column headings or a trailing "UTC" name the zone).
"""

from __future__ import annotations

import datetime as dt

ISO_MINUTES = "%Y-%m-%d %H:%M"
ISO_SECONDS = "%Y-%m-%d %H:%M:%S"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`count` and the noun, singular for exactly one: "1 time", "2 times", "0 files"."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"


def iso_moment(value: dt.datetime | None, *, seconds: bool = False) -> str:
    """A moment in ISO form in UTC (`2026-12-06 09:30`); empty for none."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime(ISO_SECONDS if seconds else ISO_MINUTES)
