"""The alarm table: one row per fingerprint, the state of the thing a signal is about.

Intake writes it through `alarms.service.raise_signal`; rules, silences and the alarm pages
(issue 5 part B) build on the same rows.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class AlarmState(enum.StrEnum):
    """Where an alarm is.

    firing: the source says the problem is there now (it has a ticket, open or closed by hand).
    resolved: the source said the problem is gone; the next firing signal fires it again.
    """

    firing = "firing"
    resolved = "resolved"


class Alarm(Base):
    """The state of one alarm fingerprint: what fired, how often, and the ticket it landed on.

    `fingerprint` is unique over all alarms (intake prefixes it with the integration's name);
    `ticket_key` is the fingerprint handed to tickets, which several alarms may share (an
    Alertmanager group lands on one ticket while each alert is an alarm of its own).
    """

    __tablename__ = "alarms"
    __table_args__ = (
        Index("ix_alarms_state_last_fired_at", "state", "last_fired_at"),
        Index("ix_alarms_ticket_key_state", "ticket_key", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(200), unique=True)
    ticket_key: Mapped[str] = mapped_column(String(200))
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default=AlarmState.firing.value)
    first_fired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_fired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    occurrences: Mapped[int] = mapped_column(default=1)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
