"""The run page's chart data: records and unique participants per study for a run and the
finished runs before it, so a glance says whether tonight's numbers look like the usual ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.export.models import ExportRun, RunState, StudyPart

# How many runs (this one included) the chart shows.
RUNS = 30


def run_history(session: Session, run: ExportRun, *, runs: int = RUNS) -> dict[str, Any]:
    """Per study, its records (`numTotal`) and unique participants (`uniqueHealthCodes`) in
    `run` and the succeeded runs made before it, oldest first; None where a run had no part
    for the study. `times` are the runs' creation times (epoch seconds), `current` the index
    of `run`."""
    earlier = list(
        session.scalars(
            select(ExportRun)
            .where(
                ExportRun.created_at <= run.created_at,
                ExportRun.id != run.id,
                ExportRun.state == RunState.succeeded.value,
            )
            .order_by(ExportRun.created_at.desc(), ExportRun.id.desc())
            .limit(runs - 1)
        )
    )
    chosen = [*reversed(earlier), run]
    records: dict[int, dict[str, float]] = {item.id: {} for item in chosen}
    for run_id, study, metrics in session.execute(
        select(StudyPart.run_id, StudyPart.study_id, StudyPart.metrics).where(
            StudyPart.run_id.in_(list(records))
        )
    ):
        total = float(((metrics or {}).get("counters") or {}).get("numTotal", 0))
        records[run_id][study] = records[run_id].get(study, 0.0) + total
    studies = sorted({study for per_run in records.values() for study in per_run})
    unique: dict[int, dict[str, float]] = {}
    for item in chosen:
        set_counters = (item.metrics or {}).get("set_counters") or {}
        unique[item.id] = {
            study: float(set_counters[f"uniqueHealthCodes[{study}]"])
            for study in studies
            if f"uniqueHealthCodes[{study}]" in set_counters
        }
    return {
        "times": [int(item.created_at.timestamp()) for item in chosen],
        "runs": [item.id for item in chosen],
        "current": len(chosen) - 1,
        "studies": studies,
        "records": {s: [records[item.id].get(s) for item in chosen] for s in studies},
        "unique": {s: [unique[item.id].get(s) for item in chosen] for s in studies},
    }
