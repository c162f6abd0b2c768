"""API shapes for users and tokens."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str | None
    role: str
    active: bool
    created_at: dt.datetime
    time_zone: str = Field(description="IANA zone the console shows this person's dates in.")


class TokenOut(BaseModel):
    """A token as the API lists it (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    scopes: list[str]
    user_id: int | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenIn(BaseModel):
    """A request to make a token."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1)
    user: str | None = None


class NewTokenOut(TokenOut):
    """A token just made: the only time its secret is shown."""

    token: str


class MeOut(BaseModel):
    """Who the caller is and what they may do."""

    username: str | None
    role: str | None
    time_zone: str | None = Field(
        default=None, description="IANA zone of the console's dates; the API's are always UTC."
    )
    token: str | None
    grants: list[str]
