"""Bounds of the integers a request may carry: ids, offsets, pages and numbers in forms.

SQLite stores integers as 64-bit signed numbers, and its driver fails on a Python int outside
that range; PostgreSQL's `integer` columns, which hold every id of the ops database, are 32-bit.
Every integer a route takes is therefore declared with bounds inside what its column holds, so
a number too large (or negative where that makes no sense) is refused with a 422 that names the
parameter, before any query runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated

from fastapi import HTTPException, Path, Query
from pydantic import BeforeValidator

from dutydesk.web.words import as_typed_in_zone

# PostgreSQL `integer`: ids and the other integer columns of the ops database.
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
# SQLite's integers and PostgreSQL `bigint`: row counts such as offsets.
INT64_MAX = 2**63 - 1

# The most pages a paged console list offers; with its page size, the offset stays small.
MAX_PAGE = 100_000

RowId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The row's id.")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="Rows to skip.")]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="The page, from 1.")]
FormMoment = Annotated[
    str | None,
    Query(
        max_length=40,
        description="YYYY-MM-DD HH:MM, in the signed-in person's time zone unless it names one.",
    ),
]
Before = Annotated[
    int | None, Query(ge=1, le=INT32_MAX, description="Only rows with a smaller id.")
]


def _not_a_number(value: object) -> object:
    # pydantic reads a number (or a string of one) as a Unix time; the API describes its
    # dates and times as ISO 8601 strings, and a number is more likely a mistake than a time.
    if isinstance(value, int | float):
        raise ValueError("a date and time such as 2026-12-07T09:30:00Z is needed, not a number")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(
            f"a date and time such as 2026-12-07T09:30:00Z is needed, not {value[:40]!r}"
        )
    return value


# A date and time a route takes (query parameter or body field): ISO 8601 only.
Moment = Annotated[dt.datetime, BeforeValidator(_not_a_number)]


def form_int(form: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """A whole number from a form field (blank means `default`), within `low`..`high`;
    raises ValueError naming the field otherwise."""
    text = (form.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def form_moment(name: str, value: str | None) -> dt.datetime | None:
    """A date and time typed into a filter form (blank: none; without an offset: in the
    signed-in person's time zone), or a 422 naming the field: a browser sends every field of a
    form, the empty ones as ''."""
    if not value or not value.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(
            422, f"{name}: {value!r} is not a date and time such as 2026-12-07 09:30"
        ) from None
    return as_typed_in_zone(moment)
