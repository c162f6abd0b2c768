"""Tables of diagnosis: exception projects (a DSN each), exception groups, their events, and
the per-project rate counters of the Sentry-compatible intake."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class ExceptionProject(Base):
    """An application that sends exceptions with a Sentry SDK, to the DSN
    `http://<public_key>@<desk>/<id>`. The public key is not a secret in Sentry's sense (it
    ships inside every client), but it is what authenticates the sender."""

    __tablename__ = "exception_projects"
    __audited__ = True
    __audit_exclude__ = ("public_key",)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    public_key: Mapped[str] = mapped_column(String(32), unique=True)
    rate_limit: Mapped[int] = mapped_column(default=600)
    rate_window_seconds: Mapped[int] = mapped_column(default=60)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExceptionGroup(Base):
    """Events of one project with the same fingerprint: one problem, however often it happens.
    A new group raises an alarm (and so a ticket); later events add occurrences."""

    __tablename__ = "exception_groups"
    __table_args__ = (
        UniqueConstraint("project_id", "fingerprint"),
        Index("ix_exception_groups_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("exception_projects.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    culprit: Mapped[str] = mapped_column(String(300), default="")
    level: Mapped[str] = mapped_column(String(16), default="error")
    count: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    first_release: Mapped[str | None] = mapped_column(String(200))
    last_release: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str | None] = mapped_column(String(100))
    alarm_fingerprint: Mapped[str] = mapped_column(String(200))


class ExceptionEvent(Base):
    """One event as the SDK sent it (trimmed to what the pages show), in its group."""

    __tablename__ = "exception_events"
    __table_args__ = (Index("ix_exception_events_group_id_received_at", "group_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("exception_groups.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    release: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text, default="")
    # exception values with their frames, breadcrumbs, tags, platform, sdk, user, request
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ExceptionRateCount(Base):
    """Requests one project sent in one fixed window; in the database so every web process
    counts against the same limit."""

    __tablename__ = "exception_rate_counts"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("exception_projects.id", ondelete="CASCADE"), primary_key=True
    )
    window_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class SupervisorServer(Base):
    """A Supervisor whose processes the desk lists, starts, stops and watches, over XML-RPC at
    `url` (`http://host:port/RPC2`). The password is never shown nor audited."""

    __tablename__ = "supervisor_servers"
    __audited__ = True
    __audit_exclude__ = ("password",)
    __audit_quiet__ = ("last_polled_at", "last_error")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(300))
    username: Mapped[str] = mapped_column(String(100), default="")
    password: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    last_polled_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SupervisedProcess(Base):
    """A process as the last poll saw it, so the next poll knows what changed."""

    __tablename__ = "supervised_processes"
    __table_args__ = (UniqueConstraint("server_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("supervisor_servers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))  # group:name
    state: Mapped[str] = mapped_column(String(16))
    pid: Mapped[int] = mapped_column(default=0)
    started: Mapped[int] = mapped_column(default=0)  # Supervisor's start time, epoch seconds
    exit_status: Mapped[int] = mapped_column(default=0)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SupervisorAction(Base):
    """A start, stop or restart asked through the desk, with who, why and what came of it
    (audited: each row is a create in the audit log)."""

    __tablename__ = "supervisor_actions"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("supervisor_servers.id", ondelete="CASCADE"))
    process: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(Text)
