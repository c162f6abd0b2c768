"""The fields senders write in many ways, read one way: severity words, times, labels.

Each reader returns the desk's value, or raises `Unreadable` naming the field and what it
accepts; the generic JSON parser refuses the alert with that message (422) rather than guess.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

# Every severity word the desk reads (compared lowercased), and the desk severity it means: the
# desk's own four, PagerDuty's and Opsgenie's priorities P1-P5, Alertmanager's customary
# `severity` label values (critical, warning, info), and words other senders use. Generic JSON
# refuses a word not here; Alertmanager, whose labels are free-form, falls back to the
# integration's default severity.
SEVERITIES = {
    "critical": "critical",
    "high": "high",
    "warning": "warning",
    "info": "info",
    "p1": "critical",
    "p2": "high",
    "p3": "warning",
    "p4": "info",
    "p5": "info",
    "crit": "critical",
    "page": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "error": "high",
    "major": "high",
    "warn": "warning",
    "medium": "warning",
    "minor": "warning",
    "low": "info",
    "none": "info",
    "debug": "info",
}
# A number above this is epoch milliseconds, at or below it epoch seconds: 10^11 seconds is
# the year 5138, 10^11 milliseconds is March 1973.
MILLISECONDS_ABOVE = 10**11


class Unreadable(ValueError):
    """A field's value the desk cannot read; the message names the field and what it takes."""


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def known_severity(word: Any) -> str | None:
    """The desk severity a word means (any case), or None when the table does not know it."""
    return SEVERITIES.get(word.strip().lower()) if isinstance(word, str) else None


def read_severity(value: Any, default: str, field: str = "severity") -> str:
    """The desk severity of a sender's `severity`: `default` when absent, Unreadable when the
    word is not in SEVERITIES."""
    if value is None or value == "":
        return default
    found = known_severity(value)
    if found is None:
        accepted = ", ".join(SEVERITIES)
        raise Unreadable(
            f"`{field}` {_shown(value)} is not a severity the desk knows; "
            f"accepted (any case): {accepted}"
        )
    return found


def read_time(value: Any, field: str) -> dt.datetime | None:
    """A moment from an ISO 8601 text with its zone (`2026-11-24T10:00:00Z`, `...+01:00`) or an
    epoch number (seconds, or milliseconds above MILLISECONDS_ABOVE); None when absent or the
    zero time `0001-01-01...`. Anything else, a time without a zone too, is Unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _iso_time(value, field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_time(value, field)
    raise Unreadable(
        f"`{field}` must be an ISO 8601 time with a zone or epoch seconds or milliseconds, "
        f"not {_shown(value)}"
    )


def _iso_time(text: str, field: str) -> dt.datetime | None:
    if text.startswith("0001-"):
        return None  # Alertmanager's "not set"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable(
            f"`{field}` {_shown(text)} is not an ISO 8601 time (e.g. 2026-11-24T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise Unreadable(
            f"`{field}` {_shown(text)} has no time zone; add `Z` for UTC or an offset such as "
            "`+01:00`"
        )
    return moment.astimezone(dt.UTC)


def _epoch_time(number: float, field: str) -> dt.datetime:
    if not math.isfinite(number) or number < 0:
        raise Unreadable(f"`{field}` {number} is not an epoch time")
    seconds = number / 1000 if number > MILLISECONDS_ABOVE else number
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise Unreadable(f"`{field}` {number} is beyond the years a time can have") from None


def read_labels(value: Any, field: str = "labels") -> dict[str, str]:
    """Labels as text: an object whose values are strings, or numbers and booleans (kept as
    JSON writes them: `5`, `true`); {} when absent. Unreadable when it is not an object or a
    value is null, an object or an array."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Unreadable(f"`{field}` must be an object of strings, not {type(value).__name__}")
    labels: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, str):
            labels[name] = item
        elif isinstance(item, bool | int | float) and not (
            isinstance(item, float) and not math.isfinite(item)
        ):
            labels[name] = json.dumps(item)
        else:
            raise Unreadable(
                f"`{field}.{name}` must be a string, number or boolean, not {_shown(item)}"
            )
    return labels
