"""The demo's month of past exports, written as finished runs instead of being run.

Running thirty nightly exports at the first demo start kept a two-core laptop busy for
minutes. A past run only has to look like one: its rows (run, study parts), its metrics, its
metric points and its status rows. The counts the alarm rules watch are worked out here from
the record store the way the export counts them (see `_engine._count_filters` and
`export_study`): records per effective sharing scope, unique health codes and rows per table
of the accepted records. The attachments and app versions of a past night are not counted.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.export import _engine
from dutydesk.export._columns import app_version_table_key, default_table_key, schema_table_key
from dutydesk.export.models import ExportRun, RunState, StudyPart
from dutydesk.export.request import SharingMode, parse_request
from dutydesk.export.schedule import StudyInfo, select_studies
from dutydesk.export.service import export_date, metric_lines, run_key, warehouse
from dutydesk.metrics._export import record_run
from dutydesk.metrics.service import record_points
from dutydesk.records.models import Participant, Record, Schema, Study

# A past night's run took about this long (what the real ones took on a laptop)...
RUN_SECONDS = 41
# ...give or take this much: past nights vary as real ones do, so last night's real run, however
# fast or busy the machine, is not a shift against a flat line of identical durations.
RUN_SECONDS_SPREAD = 20


@dataclass
class StudyCounts:
    """What the export of one study's records of one window counts."""

    counters: Counter[str] = field(default_factory=Counter)
    health_codes: set[str] = field(default_factory=set)


def _window_ms(start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def exported_studies(records: Session, request_body: dict[str, object]) -> list[str]:
    """The studies the scheduler picks for this request from the record store's studies."""
    infos = [
        StudyInfo(
            study_id=study.id,
            configured=bool(study.project) and bool(study.data_access_team),
            disable_export=study.disable_export,
            uses_custom_export_schedule=study.uses_custom_export_schedule,
            study_id_excluded_in_export=study.study_id_excluded_in_export,
        )
        for study in records.scalars(select(Study).order_by(Study.id))
    ]
    return select_studies(parse_request(request_body), infos)


def count_window(
    records: Session, studies: Iterable[str], start: dt.datetime, end: dt.datetime
) -> dict[str, StudyCounts]:
    """The export's counts for each study's records uploaded in [start, end), SHARED mode."""
    studies = list(studies)
    start_ms, end_ms = _window_ms(start, end)
    known = {
        (row.study_id, row.schema_id, row.revision)
        for row in records.scalars(select(Schema).where(Schema.study_id.in_(studies)))
    }
    rows = records.execute(
        select(
            Record.study_id,
            Record.health_code,
            Record.schema_id,
            Record.schema_revision,
            Record.user_sharing_scope,
            Participant.sharing_scope,
        )
        .outerjoin(
            Participant,
            (Participant.study_id == Record.study_id)
            & (Participant.health_code == Record.health_code),
        )
        .where(
            Record.study_id.in_(studies),
            Record.uploaded_on >= start_ms,
            Record.uploaded_on < end_ms,
        )
    )
    minimum = _engine.MODE_MINIMUM[SharingMode.SHARED]
    counts = {study: StudyCounts() for study in studies}
    for study, health_code, schema_id, revision, record_scope, user_scope in rows:
        result = counts[study]
        result.counters["numTotal"] += 1
        rank = min(
            _engine.SCOPE_RANK.get(record_scope or "", 0),
            _engine.SCOPE_RANK.get(user_scope or "", 0),
        )
        accepted = rank >= minimum
        verdict = "accepted" if accepted else "excluded"
        result.counters[f"{verdict}[{_engine.SCOPE_NAMES[rank]}]"] += 1
        if not accepted:
            continue
        result.health_codes.add(health_code)
        result.counters[f"{app_version_table_key(study)}.lineCount"] += 1
        if schema_id is None or revision is None:
            result.counters[f"{default_table_key(study)}.lineCount"] += 1
        elif (study, schema_id, revision) in known:
            result.counters[f"{schema_table_key(study, schema_id, revision)}.lineCount"] += 1
    return counts


def _stamp(at: dt.datetime, line: str) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} {line}\n"


def write_past_run(
    session: Session,
    records: Session,
    body: dict[str, object],
    *,
    created_by: str,
    made_at: dt.datetime,
    seconds: int = RUN_SECONDS,
) -> ExportRun:
    """Write one finished nightly run of a fixed window, taking `seconds`, with its parts,
    metrics and points (its `export.*` series too, as a run's end writes them, so the desk's
    charts and review show the month before the first metrics roll-up)."""
    request = parse_request(body)
    assert request.start_date_time is not None and request.end_date_time is not None
    studies = exported_studies(records, body)
    counts = count_window(records, studies, request.start_date_time, request.end_date_time)
    finished = made_at + dt.timedelta(seconds=seconds)
    start_ms, end_ms = _window_ms(request.start_date_time, request.end_date_time)
    counters: Counter[str] = Counter()
    for study in studies:
        counters.update(counts[study].counters)
    metrics = {
        "counters": dict(counters),
        "set_counters": {
            f"uniqueHealthCodes[{study}]": len(counts[study].health_codes) for study in studies
        },
        "key_values": {},
    }
    run = ExportRun(
        request=request.to_json(),
        request_text=str(request),
        run_key=run_key(request),
        state=RunState.succeeded.value,
        export_date=export_date(made_at),
        created_by=created_by,
        created_at=made_at,
        started_at=made_at + dt.timedelta(seconds=1),
        finished_at=finished,
        studies=studies,
        metrics=metrics,
    )
    run.final_line = f"Finished processing request in {seconds} seconds, {run.request_text}"
    run.log = (
        _stamp(made_at, f"Received request {request}")
        + _stamp(made_at, f"Exporting the following studies: {', '.join(studies)}")
        + "".join(_stamp(finished, line) for line in metric_lines(metrics))
        + _stamp(finished, run.final_line)
    )
    session.add(run)
    session.flush()
    session.add_all(
        StudyPart(
            run_id=run.id,
            study_id=study,
            start_ms=start_ms,
            end_ms=end_ms,
            state=RunState.succeeded.value,
            metrics={
                "counters": dict(counts[study].counters),
                "uniqueHealthCodes": len(counts[study].health_codes),
            },
            finished_at=finished,
        )
        for study in studies
    )
    points: dict[str, float] = {name: float(value) for name, value in counters.items()}
    points.update(metrics["set_counters"])
    record_points(
        session, f"export:{run.run_key}", request.end_date_time.astimezone(dt.UTC), points
    )
    record_run(session, run)  # flushes the parts it reads first
    return run


def write_status_rows(runs: Iterable[ExportRun]) -> None:
    """Each past run's status rows in the warehouse, as a run's end writes them."""
    target = warehouse()
    with closing(duckdb.connect(config={"threads": 1})) as connection:
        for run in runs:
            for study in run.studies:
                _engine.write_status_row(connection, study, run.export_date, run.run_key, target)


def write_history(
    session: Session,
    records_factory: sessionmaker[Session],
    bodies: list[tuple[dict[str, object], dt.datetime]],
    *,
    created_by: str,
) -> list[ExportRun]:
    """Write a finished run for each (request, when it was made), oldest first."""
    rng = random.Random(len(bodies))
    with records_factory() as records:
        runs = [
            write_past_run(
                session,
                records,
                body,
                created_by=created_by,
                made_at=made_at,
                seconds=RUN_SECONDS + rng.randint(-RUN_SECONDS_SPREAD, RUN_SECONDS_SPREAD),
            )
            for body, made_at in bodies
        ]
    write_status_rows(runs)
    return runs
