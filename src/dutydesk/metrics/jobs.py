"""The hourly roll-up job and its due work; export runs write their series as they end."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.export import service as export_service
from dutydesk.jobs import service as jobs
from dutydesk.metrics import _collect, _export, heartbeats, service
from dutydesk.metrics.models import Period
from dutydesk.settings import get_settings

# Points may arrive late (an export's points are at its request's end, hours before the run
# ends), so each roll-up redoes the last two days; it replaces its rows, so that is harmless.
REDO = dt.timedelta(days=2)
# The desk's own hourly counts are taken again for the last three hours (late rows, retries).
COLLECT_HOURS = 3

if _export.when_run_ends not in export_service.when_run_ends:
    export_service.when_run_ends.append(_export.when_run_ends)


@registry.due("metrics.roll_up")
def enqueue_roll_up(session: Session) -> None:
    """Every quarter hour: enqueue counting, rolling up and pruning the series."""
    if jobs.is_due(session, "metrics.roll_up", dt.timedelta(minutes=15)):
        jobs.enqueue(session, "metrics.roll_up", {})


@registry.job_kind("metrics.roll_up")
def roll_up(session: Session, args: dict[str, Any]) -> dict[str, int]:
    """Count the desk's last hours, write export series of runs that have none (runs finished
    before these series were written at a run's end), roll the points of the last two days up
    by hour and day, and delete what is past its retention."""
    now = dt.datetime.fromisoformat(args["now"]) if args.get("now") else utcnow()
    this_hour = service.bucket_start(now, Period.hour)
    collected = sum(
        _collect.collect_hour(session, this_hour - dt.timedelta(hours=back))
        for back in range(1, COLLECT_HOURS + 1)
    )
    runs = _export.backfill(session, now - dt.timedelta(days=get_settings().metrics_raw_days))
    session.flush()
    hourly = service.roll_up(session, Period.hour, now - REDO, now)
    daily = service.roll_up(session, Period.day, now - REDO, now)
    pruned = service.prune(session, now=now)
    forgotten = heartbeats.forget_old(session, now=now)
    return {
        "collected": collected,
        "runs": runs,
        "hourly": hourly,
        "daily": daily,
        "pruned": sum(pruned.values()),
        "heartbeats_forgotten": forgotten,
    }
