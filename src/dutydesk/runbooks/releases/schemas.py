"""What the releases and broadcasts API takes and answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.runbooks.releases.models import (
    Broadcast,
    Release,
    ReleaseEvent,
    ReleaseTemplate,
    StepRun,
)
from dutydesk.web.params import Moment


class StepIn(BaseModel):
    """One checklist step: its kind's parameters go in `params` (see docs/runbooks.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(max_length=16)
    params: dict[str, Any] = Field(default_factory=dict)
    skip_for_patch: bool = False
    rollback: bool = False


class TemplateIn(BaseModel):
    """A checklist template; one of the same name is replaced."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=5_000)
    window: str | None = Field(default=None, max_length=100)
    pipelines: list[str] = Field(default_factory=list, max_length=20)
    silence: dict[str, str] = Field(default_factory=dict, max_length=20)
    steps: list[StepIn] = Field(min_length=1, max_length=100)


class TemplateOut(BaseModel):
    """A template with its steps."""

    id: int
    name: str
    description: str
    window: str | None
    pipelines: list[str]
    silence: dict[str, Any]
    steps: list[StepIn]

    @classmethod
    def of(cls, template: ReleaseTemplate) -> TemplateOut:
        """The API's view of a template."""
        return cls(
            id=template.id,
            name=template.name,
            description=template.description,
            window=template.window.name if template.window else None,
            pipelines=list(template.pipelines),
            silence=dict(template.silence_matchers),
            steps=[
                StepIn(
                    name=step.name,
                    kind=step.kind,
                    params=dict(step.params),
                    skip_for_patch=step.skip_for_patch,
                    rollback=step.rollback,
                )
                for step in template.steps
            ],
        )


class WindowIn(BaseModel):
    """A weekly release window: days (`mon`..`sun` or 0..6), HH:MM start and end."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    days: list[str] = Field(min_length=1, max_length=7)
    starts: str = Field(max_length=5)
    ends: str = Field(max_length=5)
    time_zone: str = Field(default="UTC", max_length=64)


class WindowOut(BaseModel):
    """A release window."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    days: list[int]
    starts: str
    ends: str
    time_zone: str


class ReleaseIn(BaseModel):
    """A release to plan. Without `previous_version`, the template's last done release's."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=64)
    title: str = Field(default="", max_length=300)
    previous_version: str | None = Field(default=None, max_length=64)
    window: str | None = Field(default=None, max_length=100)
    planned_start: Moment | None = None
    planned_end: Moment | None = None
    db_change_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class StepOut(BaseModel):
    """One step of a release and where it is."""

    model_config = ConfigDict(from_attributes=True)

    position: int
    name: str
    kind: str
    params: dict[str, Any]
    rollback: bool
    state: str
    actor: str | None
    note: str
    signers: list[Any]
    output: dict[str, Any]
    override_by: str | None
    override_reason: str | None
    attempts: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None


class EventOut(BaseModel):
    """A line of a release's timeline."""

    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    actor: str
    what: str


class ReleaseOut(BaseModel):
    """A release with its steps (and, shown alone, its timeline and pipeline events)."""

    id: int
    template: str
    version: str
    previous_version: str | None
    patch: bool
    title: str
    window: str | None
    planned_start: dt.datetime | None
    planned_end: dt.datetime | None
    state: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    steps: list[StepOut]
    attached_events: list[dict[str, Any]]
    timeline: list[EventOut] = Field(default_factory=list)
    pipeline_events: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(
        cls,
        release: Release,
        timeline: list[ReleaseEvent] | None = None,
        pipeline_events: list[dict[str, Any]] | None = None,
    ) -> ReleaseOut:
        """The API's view of a release."""
        steps: list[StepRun] = release.steps
        return cls(
            id=release.id,
            template=release.template.name,
            version=release.version,
            previous_version=release.previous_version,
            patch=release.patch,
            title=release.title,
            window=release.window.name if release.window else None,
            planned_start=release.planned_start,
            planned_end=release.planned_end,
            state=release.state,
            started_at=release.started_at,
            ended_at=release.ended_at,
            steps=[StepOut.model_validate(step) for step in steps],
            attached_events=list(release.attached_events),
            timeline=[EventOut.model_validate(event) for event in timeline or []],
            pipeline_events=pipeline_events or [],
        )


class ReasonIn(BaseModel):
    """A note, comment or reason for a step action (skip and override need one)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=5_000)


class BroadcastIn(BaseModel):
    """A broadcast to start now (or at `starts_at`) until `ends_at` or until it is ended."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2_000)
    level: str = Field(default="info", max_length=16)
    starts_at: Moment | None = None
    ends_at: Moment | None = None


class BroadcastOut(BaseModel):
    """A broadcast as the console's API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    message: str
    level: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    release_id: int | None
    created_by: str
    ended_by: str | None

    @classmethod
    def of(cls, broadcast: Broadcast) -> BroadcastOut:
        """The API's view of a broadcast."""
        return cls.model_validate(broadcast)


class PublicBroadcast(BaseModel):
    """An active broadcast as the team's application reads it."""

    id: int
    message: str
    level: str
    starts_at: str
    ends_at: str | None


class ActiveBroadcasts(BaseModel):
    """The broadcasts showing now (none once they have ended)."""

    broadcasts: list[PublicBroadcast]
