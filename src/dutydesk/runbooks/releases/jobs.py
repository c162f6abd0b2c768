"""Releases' background work: each automatic step runs as one `releases.advance` job (which
queues the next when the run may go on), and the beat tick attaches failed pipeline events
to the releases that are running."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import write_phase
from dutydesk.jobs import service as jobs
from dutydesk.runbooks.releases import _steps, service
from dutydesk.runbooks.releases.models import Release

PIPELINE_WATCH_EVERY = dt.timedelta(minutes=1)
CHANGE_POLL_SECONDS = 5.0  # how soon a release looks again at the change request it applies


@registry.job_kind(service.ADVANCE_JOB)
def advance_release(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Run the release's next step (an automatic step here; a manual one starts waiting)."""
    write_phase(session)
    release_id = int(args["release_id"])
    release = session.get(Release, release_id)
    if release is None:
        return {"release": release_id, "gone": True}
    began = service.begin_step(session, release)
    if isinstance(began, bool):
        more = began
    elif began.kind in _steps.OUTSIDE_KINDS:
        # Commit the step as running, run it with no transaction open (a long command holds
        # no lock, and a second run of this job finds it running and leaves it), then record.
        position, kind, params = began.position, began.kind, dict(began.params)
        session.commit()
        try:
            result: _steps.Outcome | _steps.StepFailed = _steps.run_outside(kind, params)
        except _steps.StepFailed as failure:
            result = failure
        write_phase(session)
        release = session.get(Release, release_id)
        assert release is not None
        more = service.complete_step(session, release, service.get_step(release, position), result)
    else:
        try:
            result = _steps.run_automatic(session, release, began, "release runner")
        except _steps.StepFailed as failure:
            result = failure
        more = service.complete_step(session, release, began, result)
    if more:
        jobs.enqueue(session, service.ADVANCE_JOB, {"release_id": release.id}, max_attempts=1)
    elif service.waits_on_a_change(release):
        jobs.enqueue(
            session,
            service.ADVANCE_JOB,
            {"release_id": release.id},
            max_attempts=1,
            delay_seconds=CHANGE_POLL_SECONDS,
        )
    return {"release": release.id, "state": release.state, "more": more}


@registry.due("releases.pipelines")
def enqueue_pipeline_watch(session: Session) -> None:
    """While a release is running: look for failed pipeline events once a minute."""
    if service.running_releases(session) and jobs.is_due(
        session, "releases.pipelines", PIPELINE_WATCH_EVERY
    ):
        jobs.enqueue(session, "releases.pipelines")


@registry.job_kind("releases.pipelines")
def watch_pipelines(session: Session, _args: dict[str, Any]) -> dict[str, int]:
    """Attach failed events of each running release's pipelines to it."""
    write_phase(session)
    attached = sum(
        service.attach_failed_pipelines(session, release)
        for release in service.running_releases(session)
    )
    return {"attached": attached}
