"""Export job kinds: plan a run, export one study, end the run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.export import schedules, service
from dutydesk.export.models import ExportRun, RunState, StudyPart
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.settings import get_settings

__all__ = ["schedules"]  # importing it registers the "export.schedules" due work


def _records_url() -> str:
    return get_settings().effective_records_url


@registry.job_kind("export.run")
def plan_export(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Plan a run and queue one job per study (again for unfinished parts when re-run)."""
    run = session.get(ExportRun, int(args["run_id"]))
    if run is None:
        return {"skipped": "no such run"}
    if run.state == RunState.queued.value:
        parts = service.plan_run(session, run, _records_url())
    else:
        parts = list(session.scalars(select(StudyPart).where(StudyPart.run_id == run.id)))
    waiting = [part for part in parts if part.state not in service.FINISHED]
    for part in waiting:
        jobs.enqueue(session, "export.study", {"part_id": part.id})
    if not waiting:
        jobs.enqueue(session, "export.finish", {"run_id": run.id})
    return {"studies": len(parts), "queued": len(waiting)}


@registry.job_kind("export.study")
def export_study(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Export one study of a run; then ask for the run to be ended (after this commits)."""
    part = session.get(StudyPart, int(args["part_id"]))
    if part is None:
        return {"skipped": "no such part"}
    counts: dict[str, Any]
    if part.state not in service.FINISHED:
        result = service.export_part(session, part, _records_url())
        counts = {"records": result.counters.get("numTotal", 0), "tables": len(result.tables)}
    else:
        counts = {"already": part.state}
    jobs.enqueue(session, "export.finish", {"run_id": part.run_id})
    return counts


@registry.job_kind("export.finish")
def finish_export(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """End the run if every study is done (status rows, export times, metrics, redrives)."""
    finished = service.finish_run_if_done(session, int(args["run_id"]), _records_url())
    return {"finished": finished}


@jobs.when_abandoned(service.FOREGROUND_JOB)
def fail_abandoned_foreground_run(session: Session, job: Job) -> None:
    """A run in the foreground whose process stopped heartbeating (killed, or its machine
    stopped) is marked failed with the reason; running the request again redoes it."""
    at = f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if job.heartbeat_at else "its start"
    reason = (
        f"the process running this export in the foreground ({job.worker}) stopped "
        f"heartbeating at {at}; it was killed or its machine stopped. Run the export again."
    )
    service.fail_run(session, int(job.args["run_id"]), reason)
