"""Tables for channels, contact methods, contact lists, escalation policies, escalations and
deliveries (every notice the desk sends is a delivery row)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow
from dutydesk.people.models import User


class ChannelKind(enum.StrEnum):
    """How a channel's URL is used.

    email: `mailto:ADDRESS`, sent through the DUTYDESK_MAIL_* server. slack and discord: a
    webhook (`slack://`, `discord://` apprise URLs or the webhook's https URL), posted in that
    service's message format. webhook: `json://` / `jsons://` (or http/https), posted in
    Grafana OnCall's outgoing-webhook shape. apprise: any other apprise URL, sent by apprise.
    """

    email = "email"
    slack = "slack"
    discord = "discord"
    webhook = "webhook"
    apprise = "apprise"


class Channel(Base):
    """A team's place to send notices: an apprise URL (whose secrets are never shown back)."""

    __tablename__ = "notify_channels"
    __audited__ = True
    __audit_exclude__ = ("url",)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContactMethod(Base):
    """One way to reach a person (an e-mail address, a chat webhook...)."""

    __tablename__ = "contact_methods"
    __audited__ = True
    __audit_exclude__ = ("url",)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class QuietHours(Base):
    """A person's quiet hours, in their own time zone: non-critical notices wait until then."""

    __tablename__ = "quiet_hours"
    __audited__ = True

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    time_zone: Mapped[str] = mapped_column(String(64))
    starts: Mapped[str] = mapped_column(String(5))
    ends: Mapped[str] = mapped_column(String(5))


class ContactList(Base):
    """A named list of people and addresses (such as the users to tell about downtime)."""

    __tablename__ = "contact_lists"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    entries: Mapped[list[ContactListEntry]] = relationship(
        back_populates="contact_list",
        order_by="ContactListEntry.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class ContactListEntry(Base):
    """A person (reached by their contact methods) or a bare e-mail address on a list."""

    __tablename__ = "contact_list_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("contact_lists.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    address: Mapped[str | None] = mapped_column(String(254))

    contact_list: Mapped[ContactList] = relationship(back_populates="entries")
    user: Mapped[User | None] = relationship(lazy="joined")


class EscalationPolicy(Base):
    """Ordered steps (notify a target, wait N minutes), repeated up to `repeat` times.

    `steps` is a list of `{"target": "rotation"|"user"|"list"|"channel", "name": ...,
    "wait_minutes": N}`. The policy applies to tickets whose source is in `sources` (empty:
    any) and severity in `severities`; the lowest `position` that matches wins.
    """

    __tablename__ = "escalation_policies"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    steps: Mapped[list[Any]] = mapped_column(JSON)
    repeat: Mapped[int] = mapped_column(default=1)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    severities: Mapped[list[Any]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(default=100)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class EscalationState(enum.StrEnum):
    """Where a ticket's escalation is.

    running: steps are still due. stopped: the ticket was acknowledged or closed.
    done: every step of every repeat ran without an acknowledgement; the last step's target
    is reminded every DUTYDESK_NOTIFY_REPEAT_INTERVAL_MINUTES until the ticket is acknowledged.
    """

    running = "running"
    stopped = "stopped"
    done = "done"


class Escalation(Base):
    """A ticket's running escalation, with the policy frozen as it was when it started."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_state_next_at", "state", "next_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), unique=True
    )
    policy_name: Mapped[str] = mapped_column(String(100))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=EscalationState.running.value)
    cycle: Mapped[int] = mapped_column(default=1)
    step: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(100))
    # Group interval: the ticket's occurrence count its notices last told of, and when.
    occurrences_told: Mapped[int] = mapped_column(default=1)
    occurrences_told_at: Mapped[dt.datetime | None]


class DeliveryState(enum.StrEnum):
    """Where one notice is.

    pending: not tried yet. failed: the last try failed; it is tried again at
    `next_attempt_at`. sent: the receiver took it. dead: it failed too often (a dead letter,
    retried only by hand).
    """

    pending = "pending"
    sent = "sent"
    failed = "failed"
    dead = "dead"


class Delivery(Base):
    """One notice to one target over one channel, for one reason."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The same notice (subject, target, channel, reason, sequence) exists once: two workers
        # that both decide to send it make one row, and only its claimer sends it.
        UniqueConstraint("subject", "target", "channel", "reason", "sequence"),
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_deliveries_channel_sent_at", "channel", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    subject: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(100))
    sequence: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    critical: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.pending.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
