"""The alarm table: one row per fingerprint, the state of the thing a signal is about.

Intake writes it through `alarms.service.raise_signal`; rules, silences and the alarm pages
build on the same rows.
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


class RuleKind(enum.StrEnum):
    """What a rule watches.

    log_threshold: lines of a level and/or matching a regex in a sliding window.
    deadline: an expected event (ping, log line, export run) by a cron schedule plus grace,
        and optionally its duration above the baseline by a factor ("slow").
    metric_shift: the latest point of a metric series against a robust baseline.
    http_probe: a URL's status and response time.
    ci_silence: no pipeline event from a CI integration for some hours.
    """

    log_threshold = "log_threshold"
    deadline = "deadline"
    metric_shift = "metric_shift"
    http_probe = "http_probe"
    ci_silence = "ci_silence"


class AlarmRule(Base):
    """A rule the desk evaluates on a schedule; a firing decision raises an alarm.

    `params` holds the kind's settings (checked by `alarms.rules`); `state` is what the
    evaluator remembers between runs (last matching log line, last probe), not audited.
    """

    __tablename__ = "alarm_rules"
    __audited__ = True
    __audit_quiet__ = ("state", "last_evaluated_at", "firing")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    enabled: Mapped[bool] = mapped_column(default=True)
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), index=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    firing: Mapped[list[Any]] = mapped_column(default=list)
    last_evaluated_at: Mapped[dt.datetime | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RuleEvaluation(Base):
    """One evaluation of a rule for one instance (a series, a source): the decision and the
    numbers behind it, kept so an alarm can show why it fired."""

    __tablename__ = "rule_evaluations"
    __table_args__ = (Index("ix_rule_evaluations_rule_id_at", "rule_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alarm_rules.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime]
    instance: Mapped[str] = mapped_column(String(300), default="")
    firing: Mapped[bool]
    silenced: Mapped[bool] = mapped_column(default=False)
    summary: Mapped[str] = mapped_column(Text)
    numbers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="SET NULL"))


class SilenceKind(enum.StrEnum):
    """silence: mutes matching alarms for a while. maintenance: a planned window that mutes
    matching alarms (all when it has no matchers) and says so on the alarm page."""

    silence = "silence"
    maintenance = "maintenance"


class Silence(Base):
    """Mutes rule alarms whose labels match `matchers` (and the rule, when set) from
    `starts_at` to `ends_at`. Notices go out when it starts and ends."""

    __tablename__ = "silences"
    __audited__ = True
    __audit_quiet__ = ("start_noticed", "end_noticed")

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=SilenceKind.silence.value)
    matchers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alarm_rules.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    start_noticed: Mapped[bool] = mapped_column(default=False)
    end_noticed: Mapped[bool] = mapped_column(default=False)
