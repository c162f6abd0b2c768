"""Pydantic models of the diagnose API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.diagnose.models import ExceptionEvent, ExceptionGroup, ExceptionProject


class ProjectIn(BaseModel):
    """A new exception project."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._\-]*$")
    rate_limit: int = Field(default=600, ge=1, le=1_000_000)
    rate_window_seconds: int = Field(default=60, ge=1, le=86_400)


class ProjectOut(BaseModel):
    """An exception project; `dsn` (which carries its key) only for admins."""

    id: int
    name: str
    rate_limit: int
    rate_window_seconds: int
    enabled: bool
    created_by: str
    created_at: dt.datetime
    dsn: str | None = None

    @classmethod
    def of(cls, project: ExceptionProject, dsn: str | None = None) -> ProjectOut:
        """The API's view of a project."""
        return cls(
            id=project.id,
            name=project.name,
            rate_limit=project.rate_limit,
            rate_window_seconds=project.rate_window_seconds,
            enabled=project.enabled,
            created_by=project.created_by,
            created_at=project.created_at,
            dsn=dsn,
        )


class GroupOut(BaseModel):
    """An exception group: how often, since when, in which release."""

    id: int
    project: str
    title: str
    culprit: str
    level: str
    count: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    first_release: str | None
    last_release: str | None
    environment: str | None
    new_in_release: bool

    @classmethod
    def of(cls, group: ExceptionGroup, project: str, new_in_release: bool) -> GroupOut:
        """The API's view of a group."""
        return cls(
            id=group.id,
            project=project,
            title=group.title,
            culprit=group.culprit,
            level=group.level,
            count=group.count,
            first_seen=group.first_seen,
            last_seen=group.last_seen,
            first_release=group.first_release,
            last_release=group.last_release,
            environment=group.environment,
            new_in_release=new_in_release,
        )


class EventOut(BaseModel):
    """One kept event: exceptions with frames, breadcrumbs and tags."""

    event_id: str
    received_at: dt.datetime
    release: str | None
    environment: str | None
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: ExceptionEvent) -> EventOut:
        """The API's view of an event."""
        return cls(
            event_id=event.event_id,
            received_at=event.received_at,
            release=event.release,
            environment=event.environment,
            message=event.message,
            data=event.data,
        )


class GroupDetailOut(GroupOut):
    """A group with its newest events."""

    events: list[EventOut]
