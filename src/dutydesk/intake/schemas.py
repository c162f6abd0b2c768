"""What the intake API takes and answers."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dutydesk.db import utcnow
from dutydesk.intake.models import InboxItem, Integration
from dutydesk.web.params import INT32_MAX


class IntegrationIn(BaseModel):
    """A new integration."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    kind: str = Field(max_length=16)
    group_by: list[str] = Field(default_factory=list, max_length=20)
    resolve_when: dict[str, str] = Field(default_factory=dict, max_length=20)
    close_on_resolve: bool = False
    default_severity: str = "warning"
    rate_limit: int = Field(default=300, ge=1, le=1_000_000)
    rate_window_seconds: int = Field(default=300, ge=60, le=86_400)
    signing_secret: str | None = Field(default=None, max_length=200)
    # Stored in integer columns (32-bit in PostgreSQL).
    period_seconds: int = Field(default=86_400, ge=60, le=INT32_MAX)
    grace_seconds: int = Field(default=3_600, ge=0, le=INT32_MAX)
    # A heartbeat's cron schedule (five fields) in the time zone `tz`, instead of the period.
    schedule: str | None = Field(default=None, max_length=100)
    tz: str = Field(default="UTC", max_length=64)


class IntegrationPatch(BaseModel):
    """Changes to an integration; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    group_by: list[str] | None = Field(default=None, max_length=20)
    resolve_when: dict[str, str] | None = Field(default=None, max_length=20)
    close_on_resolve: bool | None = None
    default_severity: str | None = None
    rate_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_window_seconds: int | None = Field(default=None, ge=60, le=86_400)
    enabled: bool | None = None


class IntegrationOut(BaseModel):
    """An integration, without its secrets."""

    id: int
    name: str
    kind: str
    token_prefix: str
    group_by: list[str]
    resolve_when: dict[str, str]
    close_on_resolve: bool
    default_severity: str
    rate_limit: int
    rate_window_seconds: int
    enabled: bool
    created_by: str
    created_at: dt.datetime
    period_seconds: int | None = None
    grace_seconds: int | None = None
    last_ping_at: dt.datetime | None = None
    schedule: str | None = None
    tz: str | None = None
    # A heartbeat's state (new, up, late or down) and next deadline (late if up, down if late).
    status: str | None = None
    next_deadline: dt.datetime | None = None

    @classmethod
    def of(cls, integration: Integration, now: dt.datetime | None = None) -> IntegrationOut:
        """The public view of an integration."""
        from dutydesk.intake._heartbeat import state_of

        check = integration.check
        state = state_of(check, now or utcnow()) if check else None
        return cls(
            id=integration.id,
            name=integration.name,
            kind=integration.kind,
            token_prefix=integration.token_prefix,
            group_by=list(integration.group_by),
            resolve_when=dict(integration.resolve_when),
            close_on_resolve=integration.close_on_resolve,
            default_severity=integration.default_severity,
            rate_limit=integration.rate_limit,
            rate_window_seconds=integration.rate_window_seconds,
            enabled=integration.enabled,
            created_by=integration.created_by,
            created_at=integration.created_at,
            period_seconds=check.period_seconds if check else None,
            grace_seconds=check.grace_seconds if check else None,
            last_ping_at=check.last_ping_at if check else None,
            schedule=check.schedule if check else None,
            tz=check.tz if check else None,
            status=state.status if state else None,
            next_deadline=state.deadline if state else None,
        )


class NewIntegrationOut(IntegrationOut):
    """A new (or rotated) integration with its token and URL path, shown this once."""

    token: str
    path: str | None
    signing_secret: str | None = None


class InboxSummary(BaseModel):
    """An inbox item without its body."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: dt.datetime
    source: str
    integration_id: int | None
    method: str
    path: str
    client: str | None
    body_bytes: int
    truncated: bool
    outcome: str
    status_code: int | None
    reason: str | None
    alarm_ids: list[Any]
    ticket_ids: list[Any]


class InboxItemOut(InboxSummary):
    """An inbox item with its headers and raw body.

    `body` is text; when that text is not the body exactly (bytes that are not UTF-8, NUL,
    stored as U+FFFD), `raw_body_base64` holds the bytes as they came.
    """

    headers: dict[str, Any]
    body: str
    raw_body_base64: str | None = None

    @classmethod
    def of(cls, item: InboxItem) -> InboxItemOut:
        """The full view of an inbox item."""
        shown = cls.model_validate(item)
        if item.raw_body is not None:
            shown.raw_body_base64 = base64.b64encode(item.raw_body).decode()
        return shown
