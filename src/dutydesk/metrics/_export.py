"""An export run's metrics as series per study and table, written as the run ends."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.export.models import ExportRun, StudyPart
from dutydesk.metrics.models import MetricPoint
from dutydesk.metrics.service import Point, record

# `accepted[scope]` and `excluded[scope]` count records by the study's sharing scope.
VERDICT = re.compile(r"^(accepted|excluded)\[(.+)\]$")


def run_points(session: Session, run: ExportRun) -> list[Point]:
    """The run's points: per study its counters (`export.lineCount` and `export.errorCount` by
    table, `export.accepted`/`export.excluded` by scope, `export.numTotal`, ...), its unique
    health codes and its duration; the run's duration as `export.duration`."""
    started = run.started_at
    # A study split in slices has a part per slice: its series are the sum of its slices'
    # counters, its unique health codes its slice 0's, its time its last slice's end.
    by_study: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    unique: dict[str, float] = {}
    ended: dict[str, dt.datetime] = {}
    for part in session.scalars(select(StudyPart).where(StudyPart.run_id == run.id)):
        sums = by_study.setdefault(part.study_id, {})
        for name, count in (part.metrics or {}).get("counters", {}).items():
            verdict = VERDICT.match(name)
            series: tuple[str, tuple[tuple[str, str], ...]]
            if verdict:
                series = (f"export.{verdict.group(1)}", (("scope", verdict.group(2)),))
            elif name.endswith((".lineCount", ".errorCount")):
                table, _, counter = name.rpartition(".")
                series = (f"export.{counter}", (("table", table),))
            elif "[" not in name and "." not in name:
                series = (f"export.{name}", ())
            else:
                continue
            sums[series] = sums.get(series, 0.0) + float(count)
        found = (part.metrics or {}).get("uniqueHealthCodes")
        if found is not None:
            unique[part.study_id] = float(found)
        if part.finished_at is not None:
            last = ended.get(part.study_id)
            ended[part.study_id] = max(part.finished_at, last) if last else part.finished_at
    points: list[Point] = []
    for study_id, sums in by_study.items():
        study = {"study": study_id}
        for (name, labels), value in sums.items():
            points.append(Point(name, value, {**study, **dict(labels)}))
        if study_id in unique:
            points.append(Point("export.uniqueHealthCodes", unique[study_id], study))
        if started is not None and study_id in ended:
            seconds = (ended[study_id] - started).total_seconds()
            points.append(Point("export.studySeconds", seconds, study))
    if started is not None and run.finished_at is not None:
        points.append(Point("export.duration", (run.finished_at - started).total_seconds()))
    return points


def record_run(session: Session, run: ExportRun) -> int:
    """Write the run's points at the time its other points have (its request's end), else at
    its end; a re-run replaces them. Returns how many."""
    source = f"export:{run.run_key}"
    session.flush()
    at = session.scalar(
        select(MetricPoint.at).where(MetricPoint.source == source).order_by(MetricPoint.at).limit(1)
    )
    at = at or run.finished_at or run.created_at
    return record(session, source, at, run_points(session, run))


def when_run_ends(session: Session, run: ExportRun, _records_url: str) -> None:
    """The export's run-end listener: write the run's series."""
    record_run(session, run)


def backfill(session: Session, since: dt.datetime) -> int:
    """Write the points of finished runs since `since` that have none of these series yet (runs
    finished before these series were written at a run's end); returns how many runs."""
    done = set(
        session.scalars(
            select(MetricPoint.source).where(MetricPoint.name.like("export.%")).distinct()
        )
    )
    runs = session.scalars(
        select(ExportRun).where(ExportRun.finished_at >= since, ExportRun.finished_at.is_not(None))
    )
    count = 0
    for run in runs:
        if f"export:{run.run_key}" not in done:
            record_run(session, run)
            count += 1
    return count
