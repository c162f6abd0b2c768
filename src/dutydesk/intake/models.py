"""Tables of intake: integrations, the inbox of raw requests, rate counters, ping checks."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow


class Kind(enum.StrEnum):
    """What an integration receives, and so which endpoint its token is for."""

    alertmanager = "alertmanager"  # POST /hooks/alertmanager/{token}: webhook v4
    generic = "generic"  # POST /hooks/generic/{token}: our lenient JSON alert
    oncall = "oncall"  # POST /hooks/oncall/{token}: Grafana OnCall formatted webhook
    heartbeat = "heartbeat"  # /ping/{uuid}[...]: Healthchecks-compatible pings
    github = "github"  # POST /hooks/github/{token}: workflow_run, signed
    gitlab = "gitlab"  # POST /hooks/gitlab/{token}: pipeline hooks with X-Gitlab-Token
    ci = "ci"  # POST /hooks/ci/{token}: plain pipeline JSON (Jenkins and others)
    email = "email"  # messages to the SMTP listener or from IMAP polling


class Outcome(enum.StrEnum):
    """What became of an inbox item.

    received: stored, not handled yet (or its handling failed before it could say so).
    accepted: parsed; its signals (possibly none) reached alarms and tickets; `reason` names
        any items of it that were refused and any text stored as U+FFFD.
    rejected: refused with a 4xx answer (or an SMTP 5xx); `reason` says why.
    failed: the desk could not handle it (a 500); `reason` names the error.
    """

    received = "received"
    accepted = "accepted"
    rejected = "rejected"
    failed = "failed"


class Integration(Base):
    """A named way in for signals: a kind, a secret token in its URL, grouping and limits.

    `group_by` lists payload paths (such as `labels.service`) whose values make the alarm
    fingerprint; `resolve_when` maps payload paths to the values that mean "resolved".
    """

    __tablename__ = "integrations"
    __audited__ = True
    __audit_exclude__ = ("token_hash", "signing_secret")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(8))
    signing_secret: Mapped[str | None] = mapped_column(String(200))
    group_by: Mapped[list[Any]] = mapped_column(default=list)
    resolve_when: Mapped[dict[str, Any]] = mapped_column(default=dict)
    close_on_resolve: Mapped[bool] = mapped_column(default=False)
    default_severity: Mapped[str] = mapped_column(String(16), default="warning")
    rate_limit: Mapped[int] = mapped_column(default=300)
    rate_window_seconds: Mapped[int] = mapped_column(default=300)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    check: Mapped[PingCheck | None] = relationship(
        back_populates="integration", cascade="all, delete-orphan", uselist=False
    )


class InboxItem(Base):
    """One inbound request or message, stored raw before it is parsed, with its outcome."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        Index("ix_inbox_items_received_at", "received_at"),
        Index("ix_inbox_items_integration_id_received_at", "integration_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(32))
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL")
    )
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    client: Mapped[str | None] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The body as text (bytes that are not UTF-8, NUL and lone surrogates as U+FFFD, which
    # both databases store alike); `raw_body` holds the exact bytes when that text is not.
    body: Mapped[str] = mapped_column(Text, default="")
    raw_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_bytes: Mapped[int] = mapped_column(default=0)
    truncated: Mapped[bool] = mapped_column(default=False)
    outcome: Mapped[str] = mapped_column(String(16), default=Outcome.received.value)
    status_code: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)
    alarm_ids: Mapped[list[Any]] = mapped_column(default=list)
    ticket_ids: Mapped[list[Any]] = mapped_column(default=list)


class RateCount(Base):
    """Requests one integration sent in one minute, and how many of them were refused.

    In the database so every web process counts against the same limit.
    """

    __tablename__ = "intake_rate_counts"

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[dt.datetime] = mapped_column(primary_key=True)
    accepted: Mapped[int] = mapped_column(default=0)
    refused: Mapped[int] = mapped_column(default=0)


class PingCheck(Base):
    """A heartbeat check of a `heartbeat` integration: the pings it expects, and when.

    Its integration's token is the check's uuid in `/ping/{uuid}`. `status` is new (never
    pinged), up (last word a success) or down (a `fail` or nonzero exit status, or no success
    by its deadline plus grace: the check's alarm fires); late is shown, not stored
    (`_heartbeat.state_of`). The deadline is the last success plus `period_seconds`, or, with
    a cron `schedule`, the first run time in `tz` after the last success.
    """

    __tablename__ = "ping_checks"
    __audited__ = True
    __audit_quiet__ = (
        "last_ping_at",
        "last_ping_kind",
        "last_success_at",
        "last_start_at",
        "status",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), unique=True
    )
    period_seconds: Mapped[int] = mapped_column(default=86_400)
    grace_seconds: Mapped[int] = mapped_column(default=3_600)
    status: Mapped[str] = mapped_column(String(8), default="new", server_default="new")
    schedule: Mapped[str | None] = mapped_column(String(100))
    tz: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    last_ping_at: Mapped[dt.datetime | None]
    last_ping_kind: Mapped[str | None] = mapped_column(String(16))
    last_start_at: Mapped[dt.datetime | None]
    last_success_at: Mapped[dt.datetime | None]

    integration: Mapped[Integration] = relationship(back_populates="check")


class Ping(Base):
    """One heartbeat ping: its kind (success, start, fail, log or exit), status and output."""

    __tablename__ = "pings"
    __table_args__ = (Index("ix_pings_check_id_at", "check_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("ping_checks.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    exit_status: Mapped[int | None]
    run_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    # The body's size when it was longer than what is kept (its start), else None.
    body_cut_from: Mapped[int | None]
    client: Mapped[str | None] = mapped_column(String(100))


class LogCount(Base):
    """How many lines of one level a log source sent in one minute (raw lines are not kept)."""

    __tablename__ = "log_counts"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    minute: Mapped[dt.datetime] = mapped_column(primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class ErrorGroup(Base):
    """Warning and error lines of a source with the same template (numbers, hex, UUIDs and
    quoted values masked): how many, first and last seen, and a few recent sample lines."""

    __tablename__ = "log_error_groups"
    __table_args__ = (Index("uq_log_error_groups_source_key", "source", "key", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    last_sample: Mapped[str] = mapped_column(Text, default="")
    samples: Mapped[list[Any]] = mapped_column(default=list)


class ErrorGroupCount(Base):
    """Lines of one error group in one minute: what regex and ignore rules count over."""

    __tablename__ = "log_error_group_counts"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("log_error_groups.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[dt.datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class LogSource(Base):
    """Log archives scanned on a schedule: files matching `glob` are counted under `name`.

    `scanned` remembers, per file, its size, modification time and the offset counted so far,
    so a scan counts only what is new: a growing plain file from where it was left, a changed
    compressed file never twice.
    """

    __tablename__ = "log_sources"
    __audited__ = True
    __audit_quiet__ = ("scanned", "last_scanned_at", "last_result")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    glob: Mapped[str] = mapped_column(String(1000))
    format: Mapped[str] = mapped_column(String(16), default="auto")
    enabled: Mapped[bool] = mapped_column(default=True)
    scanned: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_scanned_at: Mapped[dt.datetime | None]
    last_result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
