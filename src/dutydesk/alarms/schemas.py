"""What the alarms API takes and answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.alarms.models import Alarm, AlarmRule, RuleEvaluation
from dutydesk.web.params import Moment


class RuleIn(BaseModel):
    """A new rule: its kind's settings go in `params` (see docs/alarms.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)
    severity: str = "warning"
    description: str = Field(default="", max_length=5_000)
    enabled: bool = True
    integration: str | None = Field(default=None, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict, max_length=20)


class RulePatch(BaseModel):
    """Changes to a rule; absent fields stay as they are (`params` are merged)."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = None
    severity: str | None = None
    description: str | None = Field(default=None, max_length=5_000)
    enabled: bool | None = None
    integration: str | None = Field(default=None, max_length=100)
    labels: dict[str, str] | None = Field(default=None, max_length=20)


class RuleOut(BaseModel):
    """A rule as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    severity: str
    description: str
    enabled: bool
    integration_id: int | None
    params: dict[str, Any]
    labels: dict[str, Any]
    firing: list[Any]
    last_evaluated_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime

    @classmethod
    def of(cls, rule: AlarmRule) -> RuleOut:
        """The API view of a rule."""
        return cls.model_validate(rule)


class EvaluationOut(BaseModel):
    """One stored evaluation: the decision and the numbers behind it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: int
    at: dt.datetime
    instance: str
    firing: bool
    silenced: bool
    summary: str
    numbers: dict[str, Any]
    alarm_id: int | None


class DecisionOut(BaseModel):
    """A decision of a test evaluation (nothing stored, nothing fired)."""

    instance: str
    firing: bool
    silenced: bool
    summary: str
    numbers: dict[str, Any]


class AlarmOut(BaseModel):
    """An alarm and, for rule alarms, the latest evaluations behind it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    fingerprint: str
    source: str
    title: str
    severity: str
    state: str
    labels: dict[str, Any]
    first_fired_at: dt.datetime
    last_fired_at: dt.datetime
    resolved_at: dt.datetime | None
    occurrences: int
    ticket_id: int | None
    evaluations: list[EvaluationOut] = Field(default_factory=list)

    @classmethod
    def of(cls, alarm: Alarm, evaluations: list[RuleEvaluation] | None = None) -> AlarmOut:
        """The API view of an alarm."""
        shown = cls.model_validate(alarm)
        shown.evaluations = [EvaluationOut.model_validate(e) for e in evaluations or []]
        return shown


class SilenceIn(BaseModel):
    """A new silence or maintenance window (`starts_at` defaults to now)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "silence"
    matchers: dict[str, str] = Field(default_factory=dict, max_length=20)
    rule: str | None = Field(default=None, max_length=100)
    starts_at: Moment | None = None
    ends_at: Moment
    reason: str = Field(max_length=2_000)


class SilenceOut(BaseModel):
    """A silence as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    matchers: dict[str, Any]
    rule_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str
    created_by: str
    created_at: dt.datetime
