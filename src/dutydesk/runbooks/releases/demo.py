"""Demo releases: the team's deploy checklist as a template (the steps of its wiki page), a
release window, and one past release that went through it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.people.models import User
from dutydesk.runbooks.releases import _windows, service
from dutydesk.runbooks.releases.models import (
    Release,
    ReleaseEvent,
    ReleaseState,
    ReleaseTemplate,
    StepState,
)
from dutydesk.settings import get_settings

TEMPLATE_NAME = "deploy"
# The command the deploy's "Switch the image" step runs when an admin listed it in
# DUTYDESK_RELEASE_COMMANDS; otherwise that step is ticked by hand.
SWITCH_COMMAND = "switch-image"


def deploy_steps() -> list[dict[str, Any]]:
    """The team's deploy, step by step, as its wiki page has it."""
    base = get_settings().base_url.rstrip("/")
    switch: dict[str, Any] = (
        {"kind": "command", "command": SWITCH_COMMAND}
        if SWITCH_COMMAND in get_settings().release_commands
        else {"kind": "manual", "instructions": "switch the image by hand"}
    )
    return [
        {"name": "Agree a time with core users", "kind": "manual", "skip_for_patch": True},
        {"name": "Change-control form", "kind": "manual", "skip_for_patch": True},
        {
            "name": "Notify users by e-mail",
            "kind": "notify",
            "list": "downtime",
            "subject": "Release {version} of the study portal",
            "message": "We are releasing {version}. The portal will be briefly unavailable; "
            "follow the release at {release_url}",
        },
        {
            "name": "Broadcast in the application",
            "kind": "broadcast",
            "action": "start",
            "level": "warning",
            "message": "Release {version} in progress: the portal may be unavailable for a while",
        },
        {"name": "Prepare config on staging", "kind": "manual"},
        {"name": "Tag the release", "kind": "manual"},
        {"name": "Upload the image", "kind": "manual"},
        {"name": "Stop the application", "kind": "manual"},
        {"name": "Back up the database", "kind": "backup", "target": "ops"},
        {"name": "Switch the image", **switch},
        {"name": "Run migrations if needed", "kind": "manual"},
        {"name": "Start the application", "kind": "manual"},
        {"name": "Health check", "kind": "http_check", "url": f"{base}/health"},
        {
            "name": "Broadcast: acceptance test",
            "kind": "broadcast",
            "action": "start",
            "level": "info",
            "message": "Acceptance test in progress, please wait",
        },
        {"name": "Acceptance test", "kind": "signoff", "role": "approver", "count": 1},
        {
            "name": "E-mail users: done",
            "kind": "notify",
            "list": "downtime",
            "subject": "Release {version} is done",
            "message": "Release {version} of the study portal is live. Thank you for waiting.",
        },
        {"name": "Remove the broadcast", "kind": "broadcast", "action": "end"},
        {"name": "Switch back to the previous image", "kind": "manual", "rollback": True},
        {"name": "Remove the broadcast", "kind": "broadcast", "action": "end", "rollback": True},
        {
            "name": "E-mail users: rolled back",
            "kind": "notify",
            "list": "downtime",
            "subject": "Release {version} was rolled back",
            "message": "The portal is back on {previous_version}. We will plan a new date.",
            "rollback": True,
        },
    ]


def _past_release(session: Session, template: ReleaseTemplate) -> Release:
    """Release 1.3.0, done a week ago, every step by the people who did it."""
    author = session.scalar(select(User).where(User.username == "olga"))
    release = service.create_release(
        session,
        template,
        version="1.3.0",
        previous_version="1.2.4",
        title="Consent form v2",
        author=author,
        actor="olga",
    )
    start = (utcnow() - dt.timedelta(days=7)).replace(hour=8, minute=0, second=0, microsecond=0)
    release.planned_start, release.planned_end = start, start + dt.timedelta(hours=3)
    release.started_at = start
    release.state = ReleaseState.done.value
    session.execute(
        update(ReleaseEvent)
        .where(ReleaseEvent.release_id == release.id)
        .values(at=start - dt.timedelta(days=2))
    )
    session.add(ReleaseEvent(release_id=release.id, at=start, actor="olga", what="started"))
    at = start
    for step in release.steps:
        if step.rollback:
            step.state, step.note = (
                StepState.skipped.value,
                "not needed: the release did not roll back",
            )
            continue
        at += dt.timedelta(minutes=6)
        step.state, step.started_at, step.ended_at = StepState.done.value, at, at
        if step.kind == "signoff":
            step.actor, step.signers, step.note = "ada", ["ada"], "acceptance test passed"
        elif step.kind == "manual":
            step.actor = "olga"
        else:
            step.actor = "release runner"
            step.output = {"summary": "done"}
        session.add(
            ReleaseEvent(
                release_id=release.id,
                at=at,
                actor=step.actor,
                what=f"step {step.position} ({step.name}) done",
                step_id=step.id,
            )
        )
    release.ended_at = at
    session.add(ReleaseEvent(release_id=release.id, at=at, actor="release runner", what="done"))
    session.flush()
    return release


@registry.demo_seeder("runbooks.releases")
def seed_releases(session: Session, context: registry.DemoContext) -> None:
    """The deploy template, a release window and a past release, each once."""
    if not _windows.list_windows(session):
        _windows.create_window(
            session,
            name="weekday mornings",
            days="mon,tue,wed,thu,fri",
            starts="08:00",
            ends="12:00",
            time_zone="Europe/Amsterdam",
            actor="demo",
        )
        context.note("release window weekday mornings")
    template = session.scalar(select(ReleaseTemplate).where(ReleaseTemplate.name == TEMPLATE_NAME))
    if template is None:
        template = service.save_template(
            session,
            {
                "name": TEMPLATE_NAME,
                "description": "The study portal's deploy, from the team's wiki page.",
                "pipelines": ["nightly-export"],
                "steps": deploy_steps(),
            },
            actor="demo",
        )
        context.note(f"release template {TEMPLATE_NAME} ({len(template.steps)} steps)")
    if session.scalar(select(Release.id).where(Release.template_id == template.id)) is None:
        past = _past_release(session, template)
        context.note(f"past release {past.version}")
