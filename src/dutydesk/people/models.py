"""Tables for users, console sessions, API tokens and failed logins."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow


class Role(enum.StrEnum):
    """What a person may do; each role includes every role before it.

    viewer: reads everything the console shows. operator: works tickets, runs jobs and
    exports. approver: signs off change requests. admin: manages people, tokens and settings.
    """

    viewer = "viewer"
    operator = "operator"
    approver = "approver"
    admin = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < approver < admin."""
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        """Whether holding this role grants what `other` grants."""
        return self.rank >= other.rank


class Scope(enum.StrEnum):
    """What an API token may do.

    read: GET the API. write: change things an operator may change. intake: post signals to
    intake endpoints. upload: add study records. admin: everything an admin may do.
    """

    read = "read"
    write = "write"
    intake = "intake"
    upload = "upload"
    admin = "admin"


class User(Base):
    """A person who signs in to the console."""

    __tablename__ = "users"
    __audited__ = True
    __audit_exclude__ = ("password_hash",)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The IANA zone the console shows this person's dates in (and reads typed ones in).
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")

    @property
    def role_enum(self) -> Role:
        """The role as an enum."""
        return Role(self.role)


class ApiToken(Base):
    """A bearer token for the API; only a hash of the secret is kept."""

    __tablename__ = "api_tokens"
    __audited__ = True
    __audit_exclude__ = ("token_hash",)
    __audit_quiet__ = ("last_used_at",)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User | None] = relationship(lazy="joined")


class WebSession(Base):
    """A signed-in console session; the cookie holds a secret whose hash is the key."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    client: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")


class LoginFailure(Base):
    """One failed login, kept a short while to slow down password guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_client_at", "client", "at"),
        Index("ix_login_failures_username_at", "username", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
