"""Release checklists: templates and their steps, release runs and their step runs, the
weekly release windows, the timeline of each release, and broadcasts."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow


class StepKind(enum.StrEnum):
    """What a checklist step does.

    manual: someone ticks it, with a note. signoff: N people of a role sign it (the
    acceptance test). notify: a message to a contact list. broadcast: start or end the
    release's broadcast. backup: a verified backup of a named target. db_change: an approved
    database change request is applied. http_check: a URL answers the expected status in
    time. ci: the last event of a named CI pipeline is a success. command: one of the commands
    the admin listed in DUTYDESK_RELEASE_COMMANDS runs and exits 0.
    """

    manual = "manual"
    signoff = "signoff"
    notify = "notify"
    broadcast = "broadcast"
    backup = "backup"
    db_change = "db_change"
    http_check = "http_check"
    ci = "ci"
    command = "command"


class ReleaseWindow(Base):
    """A named weekly window when the operators are available: days of the week (0 is
    Monday) and a time of day range in a time zone. An end at or before the start runs past
    midnight."""

    __tablename__ = "release_windows"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    days: Mapped[list[Any]] = mapped_column(default=list)
    starts: Mapped[str] = mapped_column(String(5))  # HH:MM
    ends: Mapped[str] = mapped_column(String(5))  # HH:MM
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReleaseTemplate(Base):
    """A checklist: ordered steps, the CI pipelines a release watches, and the alarm label
    matchers silenced while a release of it runs (none: nothing is silenced)."""

    __tablename__ = "release_templates"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    pipelines: Mapped[list[Any]] = mapped_column(default=list)
    silence_matchers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    window_id: Mapped[int | None] = mapped_column(
        ForeignKey("release_windows.id", ondelete="SET NULL")
    )
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    steps: Mapped[list[TemplateStep]] = relationship(
        order_by="TemplateStep.position", cascade="all, delete-orphan", lazy="selectin"
    )
    window: Mapped[ReleaseWindow | None] = relationship(lazy="joined")


class TemplateStep(Base):
    """One step of a template: its kind's parameters, whether a PATCH release skips it, and
    whether it runs only in a rollback."""

    __tablename__ = "release_template_steps"
    __audited__ = True
    __table_args__ = (UniqueConstraint("template_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("release_templates.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    skip_for_patch: Mapped[bool] = mapped_column(default=False)
    rollback: Mapped[bool] = mapped_column(default=False)


class ReleaseState(enum.StrEnum):
    """Where a release is.

    planned: made, not started. running: its steps are being worked through (an automatic
    step runs as a job; a manual or signoff step waits for people). blocked: a step may not
    start outside the release window until an approver overrides. failed: a step failed; the
    run offers retry, skip or rollback. done: every deploy step is done or skipped.
    rolling_back: the rollback steps are running. rolled_back: they all ran. cancelled:
    stopped before it was done.
    """

    planned = "planned"
    running = "running"
    blocked = "blocked"
    failed = "failed"
    done = "done"
    rolling_back = "rolling_back"
    rolled_back = "rolled_back"
    cancelled = "cancelled"


ENDED_STATES = frozenset({ReleaseState.done, ReleaseState.rolled_back, ReleaseState.cancelled})


class Release(Base):
    """One release of a template: its version, planned window and the state of its run."""

    __tablename__ = "releases"
    __audited__ = True
    __audit_quiet__ = ("attached_events",)
    __table_args__ = (Index("ix_releases_state", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("release_templates.id"))
    version: Mapped[str] = mapped_column(String(64))
    previous_version: Mapped[str | None] = mapped_column(String(64))
    patch: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str] = mapped_column(String(300), default="")
    window_id: Mapped[int | None] = mapped_column(
        ForeignKey("release_windows.id", ondelete="SET NULL")
    )
    planned_start: Mapped[dt.datetime | None]
    planned_end: Mapped[dt.datetime | None]
    state: Mapped[str] = mapped_column(String(16), default=ReleaseState.planned.value)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silences.id", ondelete="SET NULL"))
    attached_events: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]

    template: Mapped[ReleaseTemplate] = relationship(lazy="joined")
    window: Mapped[ReleaseWindow | None] = relationship(lazy="joined")
    steps: Mapped[list[StepRun]] = relationship(
        order_by="StepRun.position", cascade="all, delete-orphan", lazy="selectin"
    )


class StepState(enum.StrEnum):
    """Where one step of a release is.

    pending: not reached yet. running: its job is at work. waiting: it needs people (a tick,
    signoffs). blocked: outside the release window, waiting for an approver's override.
    done: it succeeded. failed: it failed (the run stopped). skipped: a PATCH release, a
    person's skip with a reason, or a rollback step of a release that needed none.
    """

    pending = "pending"
    running = "running"
    waiting = "waiting"
    blocked = "blocked"
    done = "done"
    failed = "failed"
    skipped = "skipped"


class StepRun(Base):
    """One step of one release: a copy of the template's step, who did it, when, the note,
    the signers and the output of an automatic step."""

    __tablename__ = "release_step_runs"
    __audited__ = True
    __audit_quiet__ = ("output",)
    __table_args__ = (UniqueConstraint("release_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rollback: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default=StepState.pending.value)
    actor: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    signers: Mapped[list[Any]] = mapped_column(default=list)
    output: Mapped[dict[str, Any]] = mapped_column(default=dict)
    override_by: Mapped[str | None] = mapped_column(String(200))
    override_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[int | None]
    started_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]


class ReleaseEvent(Base):
    """One line of a release's timeline: who did what, when."""

    __tablename__ = "release_events"
    __table_args__ = (Index("ix_release_events_release_id_at", "release_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    what: Mapped[str] = mapped_column(Text)
    step_id: Mapped[int | None] = mapped_column(
        ForeignKey("release_step_runs.id", ondelete="SET NULL")
    )


class BroadcastLevel(enum.StrEnum):
    """How loudly a broadcast speaks: info, warning (work in progress), critical (outage)."""

    info = "info"
    warning = "warning"
    critical = "critical"


class Broadcast(Base):
    """A message to the application's users: shown from `starts_at` until `ends_at` (none:
    until someone ends it), as a banner on every console page and on the public endpoint."""

    __tablename__ = "broadcasts"
    __audited__ = True
    __table_args__ = (Index("ix_broadcasts_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16), default=BroadcastLevel.info.value)
    starts_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[dt.datetime | None]
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_by: Mapped[str | None] = mapped_column(String(200))
