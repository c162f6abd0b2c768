"""Export runs: a request becomes a run, the run fans out one part per study, the last part
to finish ends the run (the exporter's end of stream): status rows, export times, metrics,
redrives and the final log line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import closing
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import transaction, utcnow, write_phase
from dutydesk.export import _engine, _slices
from dutydesk.export._columns import Column
from dutydesk.export._migration import plan_migration
from dutydesk.export.models import ExportRun, ExportTime, RunState, StudyPart, WarehouseTable
from dutydesk.export.request import ExportRequest, parse_request
from dutydesk.export.schedule import StudyInfo, select_studies, study_start
from dutydesk.export.warehouse import Warehouse
from dutydesk.jobs import service as jobs
from dutydesk.metrics.service import record_points
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)
FINISHED = (RunState.succeeded.value, RunState.partial.value, RunState.failed.value)
# The job row a run in the foreground heartbeats through (`dutydesk export run` without --queue).
FOREGROUND_JOB = "export.foreground"
# Told of every run that ends (status rows, metrics and final line written), in the session
# that ends it, with the record store's URL: re-drive batches verify their runs here and collect
# the records a run failed.
RunListener = Callable[[Session, ExportRun, str], None]
when_run_ends: list[RunListener] = []


class ExportError(ValueError):
    """An export that cannot be started; the message says why."""


def warehouse() -> Warehouse:
    """The warehouse (`DUTYDESK_WAREHOUSE`: a folder or an fsspec URL such as `s3://b/p`;
    default `$DUTYDESK_HOME/warehouse`)."""
    settings = get_settings()
    return Warehouse.at(settings.warehouse or settings.home_path / "warehouse")


def export_date(now: dt.datetime | None = None) -> str:
    """The exporter's run date: today in `DUTYDESK_EXPORT_TIME_ZONE`, as yyyy-MM-dd."""
    zone = ZoneInfo(get_settings().export_time_zone)
    return (now or utcnow()).astimezone(zone).date().isoformat()


def run_key(request: ExportRequest) -> str:
    """A name for the run's files that is the same whenever the same request runs again."""
    canonical = json.dumps(request.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def start_run(
    session: Session,
    body: str | bytes | dict[str, Any],
    *,
    created_by: str,
    queue: bool = True,
    now: dt.datetime | None = None,
) -> ExportRun:
    """Validate a request and create its run; with `queue`, a job plans and runs it.

    `now` is when the run counts as made (its export date); the demo replays past nights.
    """
    request = parse_request(body)
    run = ExportRun(
        request=request.to_json(),
        request_text=str(request),
        run_key=run_key(request),
        state=RunState.queued.value,
        export_date=export_date(now),
        created_by=created_by,
    )
    session.add(run)
    session.flush()
    _log(run, f"Received request {request}")
    if queue:
        jobs.enqueue(session, "export.run", {"run_id": run.id})
    return run


def _log(run: ExportRun, line: str) -> None:
    stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S")
    run.log = f"{run.log}{stamp} {line}\n"
    log.info("export run %s: %s", run.id, line)


def candidate_studies(connection: Any) -> list[StudyInfo]:
    """Every study of the record store as the scheduler sees it."""
    rows = connection.execute(
        "SELECT id, project, data_access_team, disable_export, uses_custom_export_schedule, "
        "study_id_excluded_in_export FROM rs.studies ORDER BY id"
    ).fetchall()
    return [
        StudyInfo(
            study_id=row[0],
            configured=bool(row[1]) and bool(row[2]),
            disable_export=bool(row[3]),
            uses_custom_export_schedule=bool(row[4]),
            study_id_excluded_in_export=bool(row[5]),
        )
        for row in rows
    ]


def read_record_ids(location: str) -> list[str]:
    """The record IDs of an override file (one per line), from a path or fsspec URL."""
    import fsspec

    try:
        with fsspec.open(location, "rt") as file:
            return [line.strip() for line in file if line.strip()]
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read record ID list {location}: {error}") from None


def plan_run(
    session: Session,
    run: ExportRun,
    records_url: str,
    *,
    database: duckdb.DuckDBPyConnection | None = None,
) -> list[StudyPart]:
    """Choose the studies and their windows (spec §2.2, §2.3) and make one part per study,
    or one per slice of a study split by table (`_slices`).

    `database` is the run's DuckDB database (`_engine.open_database`), when it has one.
    """
    request = parse_request(run.request)
    run_id = run.id
    parts: list[StudyPart] = []
    metrics: dict[str, Any] | None = None
    times = {t.study_id: t.last_export_ms for t in session.scalars(select(ExportTime))}
    session.commit()  # nothing is held while the record store is read
    with _engine.connect(records_url, threads=1, database=database) as connection:
        if request.shape == "C":
            ids = read_record_ids(str(request.record_id_override))
            by_study: dict[str, list[str]] = {}
            for record_id, study in connection.execute(
                "SELECT id, study_id FROM rs.records WHERE id IN (SELECT unnest(?)) ORDER BY id",
                [ids],
            ).fetchall():
                by_study.setdefault(study, []).append(record_id)
            found = {record_id for listed in by_study.values() for record_id in listed}
            metrics = {
                "record_ids": by_study,
                "missing_record_ids": sorted(set(ids) - found),
            }
            parts = [StudyPart(run_id=run_id, study_id=study) for study in sorted(by_study)]
        else:
            chosen = select_studies(request, candidate_studies(connection))
            for study in chosen:
                last = times.get(study)
                last_dt = None if last is None else dt.datetime.fromtimestamp(last / 1000, dt.UTC)
                start = study_start(request, last_dt)
                if start is None:
                    continue
                parts.extend(_study_parts(run_id, study, start, request, records_url))
    write_phase(session)
    run = session.get(ExportRun, run_id, populate_existing=True) or run
    run.state = RunState.running.value
    run.started_at = utcnow()
    if metrics is not None:
        run.metrics = metrics
    run.studies = list(dict.fromkeys(part.study_id for part in parts))
    session.add_all(parts)
    session.flush()
    _log(run, f"Exporting the following studies: {', '.join(run.studies)}")
    return parts


def _study_parts(
    run_id: int, study: str, start: dt.datetime, request: ExportRequest, records_url: str
) -> list[StudyPart]:
    """The study's part, or its slices when it holds more than `DUTYDESK_EXPORT_SLICE_RECORDS`
    records in the window."""
    start_ms, end_ms = _ms(start), _ms(request.end_date_time)
    slice_records = get_settings().export_slice_records
    slices: list[list[_slices.SchemaTable]] = []
    if slice_records and start_ms is not None and end_ms is not None:
        counts = _slices.table_counts(records_url, study, start_ms, end_ms, slice_records)
        slices = _slices.split_tables(study, counts, slice_records, request.table_whitelist)
    if not slices:
        return [StudyPart(run_id=run_id, study_id=study, start_ms=start_ms, end_ms=end_ms)]
    return [
        StudyPart(
            run_id=run_id,
            study_id=study,
            slice_no=number,
            slice_tables=[list(table) for table in tables],
            start_ms=start_ms,
            end_ms=end_ms,
        )
        for number, tables in enumerate(slices)
    ]


def _slice_job_tables(
    session: Session, part: StudyPart
) -> tuple[frozenset[tuple[str, int]] | None, frozenset[tuple[str, int]]]:
    """A part's `StudyJob.only_tables` and `skip_tables` (None and nothing for a whole study)."""
    if part.slice_no:
        return frozenset((str(s), int(r)) for s, r in part.slice_tables or []), frozenset()
    others = session.scalars(
        select(StudyPart.slice_tables).where(
            StudyPart.run_id == part.run_id,
            StudyPart.study_id == part.study_id,
            StudyPart.slice_no != 0,
        )
    )
    return None, frozenset((str(s), int(r)) for tables in others for s, r in tables or [])


def known_columns(session: Session, keys: list[str] | None = None) -> dict[str, list[Column]]:
    """The registered columns of warehouse tables (name, type, size)."""
    from dutydesk.export._columns import ColumnType

    query = select(WarehouseTable)
    if keys is not None:
        query = query.where(WarehouseTable.key.in_(keys))
    return {
        table.key: [
            Column(c["name"], ColumnType[c["type"]], c.get("max_length")) for c in table.columns
        ]
        for table in session.scalars(query)
    }


def check_columns(key: str, columns: list[Column], old: list[Column] | None) -> str | None:
    """None when the table may take these columns (spec §10), else the error text."""
    if old is None:
        return None
    plan = plan_migration(key, old, columns)
    return plan.error


def export_part(
    session: Session,
    part: StudyPart,
    records_url: str,
    *,
    threads: int | None = None,
    database: duckdb.DuckDBPyConnection | None = None,
) -> _engine.StudyResult:
    """Export one study of a run and record its outcome on the part (idempotent).

    `threads` caps DuckDB's threads (default: one per core) of a database of its own;
    `database` is the run's, shared with the parts exported beside this one.
    """
    run = session.get(ExportRun, part.run_id)
    assert run is not None
    part_id = part.id
    request = parse_request(run.request)
    record_ids = run.metrics["record_ids"].get(part.study_id) if request.shape == "C" else None
    only_tables, skip_tables = _slice_job_tables(session, part)
    job = _engine.StudyJob(
        study_id=part.study_id,
        export_date=run.export_date,
        run_key=run.run_key,
        sharing_mode=request.sharing_mode,
        start_ms=part.start_ms,
        end_ms=part.end_ms,
        record_ids=tuple(record_ids) if record_ids is not None else None,
        study_whitelist=request.study_whitelist,
        table_whitelist=request.table_whitelist,
        summary_tables=not (request.redrive_count and request.table_whitelist),
        only_tables=only_tables,
        skip_tables=skip_tables,
    )
    columns = known_columns(session)
    session.commit()  # the export itself holds no transaction of the ops database
    with _engine.connect(records_url, threads=threads, database=database) as connection:
        result = _engine.export_study(
            connection, job, warehouse(), known_columns=columns, check_columns=check_columns
        )
    write_phase(session)
    part = session.get(StudyPart, part_id, populate_existing=True) or part
    _register_tables(session, part.study_id, result.tables)
    part.metrics = {
        "counters": result.counters,
        # A later slice of a study counts no records: the study's distinct values are slice 0's.
        **(
            {
                "uniqueHealthCodes": result.unique_health_codes,
                "uniqueAppVersions": sorted(result.app_versions),
            }
            if job.record_level
            else {}
        ),
        "schemasNotFound": sorted(result.schemas_not_found),
        "log": result.log,
        "log_places": [list(place) for place in result.log_places],
        "redrive_tables": [
            list(table.schema)
            for table in result.tables
            if table.error and table.retryable and table.schema is not None
        ],
    }
    part.failed_tables = [table.key for table in result.tables if table.error]
    part.error = "; ".join(table.error for table in result.tables if table.error) or None
    part.state = RunState.partial.value if part.failed_tables else RunState.succeeded.value
    part.finished_at = utcnow()
    return result


def _register_tables(session: Session, study: str, tables: list[_engine.TableResult]) -> None:
    for table in tables:
        if table.error:
            continue
        columns = [
            {"name": c.name, "type": c.type.name, "max_length": c.max_length} for c in table.columns
        ]
        row = session.get(WarehouseTable, table.key)
        if row is None:
            session.add(
                WarehouseTable(
                    key=table.key,
                    study_id=study,
                    kind=table.kind,
                    columns=columns,
                    row_count=table.rows,
                )
            )
            continue
        known = {c["name"] for c in columns}
        row.columns = columns + [c for c in row.columns if c["name"] not in known]
        row.updated_at = utcnow()


def finish_run_if_done(session: Session, run_id: int, records_url: str) -> bool:
    """End the run when every part has finished; only one caller ever does (a claimed update)."""
    write_phase(session)
    unfinished = session.scalar(
        select(func.count()).where(StudyPart.run_id == run_id, StudyPart.state.not_in(FINISHED))
    )
    if unfinished:
        return False
    claimed = session.execute(
        update(ExportRun)
        .where(ExportRun.id == run_id, ExportRun.state == RunState.running.value)
        .values(state="finishing")
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return False
    run = session.get(ExportRun, run_id, populate_existing=True)
    assert run is not None
    _end_of_stream(session, run, records_url)
    return True


def _end_of_stream(session: Session, run: ExportRun, records_url: str) -> None:
    request = parse_request(run.request)
    parts = list(
        session.scalars(
            select(StudyPart)
            .where(StudyPart.run_id == run.id)
            .order_by(StudyPart.id, StudyPart.slice_no)
        )
    )
    studies = list(dict.fromkeys(part.study_id for part in parts))
    target = warehouse()
    # A status row reads nothing from the record store: a bare DuckDB writes it.
    with closing(duckdb.connect(config={"threads": 1})) as connection:
        for study in studies:
            status = _engine.write_status_row(
                connection, study, run.export_date, run.run_key, target
            )
            if status.error:
                _log(run, f"Error writing to status table for study={study}: {status.error}")
            else:
                _register_tables(session, study, [status])
    metrics = _merge_metrics(parts)
    missing = run.metrics.get("missing_record_ids", [])
    for record_id in missing:
        _log(run, f"Missing health data record for ID {record_id}")
    if missing:
        counters = metrics["counters"]
        counters["numTotal"] = counters.get("numTotal", 0) + len(missing)
    for line in metrics.pop("log"):
        _log(run, line)
    run.metrics = metrics
    failed = [key for part in parts for key in part.failed_tables]
    if failed:
        _log(run, f"Redriving tables: {', '.join(sorted(failed))}")
        _redrive_tables(session, run, request, parts)
    if request.shape == "A" and request.end_date_time is not None:
        end_ms = _ms(request.end_date_time)
        for study in studies:
            existing = session.get(ExportTime, study)
            if existing is None:
                session.add(ExportTime(study_id=study, last_export_ms=end_ms))
            else:
                existing.last_export_ms = int(end_ms or 0)
    # A point stands for the window it measured: it is dated at the request's end.
    at = request.end_date_time.astimezone(dt.UTC) if request.end_date_time else utcnow()
    points = dict(metrics["set_counters"])
    points.update({name: value for name, value in metrics["counters"].items()})
    record_points(session, f"export:{run.run_key}", at, points)
    run.finished_at = utcnow()
    run.state = RunState.partial.value if failed else RunState.succeeded.value
    seconds = int((run.finished_at - (run.started_at or run.finished_at)).total_seconds())
    for line in metric_lines(metrics):
        _log(run, line)
    run.final_line = f"Finished processing request in {seconds} seconds, {run.request_text}"
    _log(run, run.final_line)
    for listener in when_run_ends:
        listener(session, run, records_url)


def _merge_metrics(parts: list[StudyPart]) -> dict[str, Any]:
    counters: dict[str, int] = {}
    sets: dict[str, int] = {}
    values: dict[str, list[str]] = {}
    lines: list[str] = []
    not_found: set[str] = set()
    for part in parts:
        for name, count in part.metrics.get("counters", {}).items():
            counters[name] = counters.get(name, 0) + int(count)
        if part.slice_no == 0:  # a study's distinct values are counted by its slice 0
            sets[f"uniqueHealthCodes[{part.study_id}]"] = int(
                part.metrics.get("uniqueHealthCodes", 0)
            )
            values[f"uniqueAppVersions[{part.study_id}]"] = part.metrics.get(
                "uniqueAppVersions", []
            )
        not_found |= set(part.metrics.get("schemasNotFound", []))
    by_study: dict[str, list[StudyPart]] = {}
    for part in parts:
        by_study.setdefault(part.study_id, []).append(part)
    for slices in by_study.values():
        lines.extend(_study_lines(sorted(slices, key=lambda p: p.slice_no)))
    if not_found:
        values["schemasNotFound"] = sorted(not_found)
    return {"counters": counters, "set_counters": sets, "key_values": values, "log": lines}


def _study_lines(slices: list[StudyPart]) -> list[str]:
    """A study's log lines in the order the study exported whole gives them: its slices'
    lines merged by where each stands (`_engine.LogPlace`)."""
    if len(slices) == 1:
        return list(slices[0].metrics.get("log", []))
    placed: list[tuple[tuple[int, str, int], str]] = []
    for part in slices:
        lines = part.metrics.get("log", [])
        places = part.metrics.get("log_places") or [list(_engine.RECORD_LINES)] * len(lines)
        placed.extend(
            ((int(p[0]), str(p[1]), int(p[2])), line) for p, line in zip(places, lines, strict=True)
        )
    # Stable: lines at the same place keep their order (each place is one slice's).
    return [line for _place, line in sorted(placed, key=lambda item: item[0])]


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """The metrics as the exporter published them: counters, set counters, key values."""
    lines = [f"{k}: {v}" for k, v in sorted(metrics["counters"].items())]
    lines += [f"{k}: {v}" for k, v in sorted(metrics["set_counters"].items())]
    lines += [f"{k}: {', '.join(sorted(v))}" for k, v in sorted(metrics["key_values"].items())]
    return lines


def _redrive_tables(
    session: Session, run: ExportRun, request: ExportRequest, parts: list[StudyPart]
) -> None:
    """Queue one redrive per study with failed tables, up to the redrive limit (spec §11)."""
    from dutydesk.export.request import SchemaKey

    settings = get_settings()
    if request.redrive_count >= settings.export_redrive_max:
        return
    by_study: dict[str, list[StudyPart]] = {}
    for part in sorted(parts, key=lambda p: (p.study_id, p.slice_no)):
        by_study.setdefault(part.study_id, []).append(part)
    for slices in by_study.values():
        part = slices[0]
        # Only schema tables that may succeed when tried again: a column conflict would not.
        # A study split in slices is re-driven once, with the failed tables of every slice.
        keys = sorted(
            (
                SchemaKey(part.study_id, schema_id, int(revision))
                for each in slices
                for schema_id, revision in each.metrics.get("redrive_tables", [])
            ),
            key=lambda key: (key.schema_id, key.revision),
        )
        if not keys:
            continue
        start = (
            None
            if part.start_ms is None
            else dt.datetime.fromtimestamp(part.start_ms / 1000, dt.UTC)
        )
        copy = request.redrive_copy(study_id=part.study_id, tables=keys, study_start=start)
        child = start_run(session, copy.to_json(), created_by="redrive", queue=False)
        child.parent_run_id = run.id
        jobs.enqueue(
            session,
            "export.run",
            {"run_id": child.id},
            delay_seconds=settings.export_redrive_delay_seconds,
        )


def fail_run(session: Session, run_id: int, reason: str) -> bool:
    """Mark a run that has not ended as failed with `reason`, and its unfinished parts with it;
    False when the run had already ended (nothing changes then)."""
    failed = session.execute(
        update(ExportRun)
        .where(ExportRun.id == run_id, ExportRun.state.not_in(FINISHED))
        .values(state=RunState.failed.value, error=reason, finished_at=utcnow())
    )
    if getattr(failed, "rowcount", 0) != 1:
        return False
    session.execute(
        update(StudyPart)
        .where(StudyPart.run_id == run_id, StudyPart.state.not_in(FINISHED))
        .values(state=RunState.failed.value, error=reason, finished_at=utcnow())
    )
    run = session.get(ExportRun, run_id, populate_existing=True)
    assert run is not None
    _log(run, f"Failed: {reason}")
    return True


def run_in_foreground(
    session_factory: sessionmaker[Session],
    run_id: int,
    records_url: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExportRun:
    """Plan and export a run here, committing as it goes.

    The run heartbeats like a job while it goes (an `export.foreground` job row held by this
    process): if the process dies, the sweep marks the run failed once the heartbeat is older
    than `DUTYDESK_JOB_STALE_SECONDS`, or at its next tick on this machine, where it sees the
    process gone. If the run raises here (Ctrl-C too), it is marked failed at once.
    """
    runner = jobs.holder_name()
    with transaction(session_factory, actor="export:foreground") as session:
        job_id = jobs.run_here(session, FOREGROUND_JOB, {"run_id": run_id}, runner).id
    try:
        with jobs.Heartbeat(session_factory, job_id, runner):
            _run_here(session_factory, run_id, records_url, progress)
    except BaseException as error:
        reason = f"the run stopped in the foreground process {runner}: {error!r}"
        with transaction(session_factory, immediate=True) as session:
            fail_run(session, run_id, reason)
        jobs.end_here(session_factory, job_id, runner, reason)
        raise
    jobs.end_here(session_factory, job_id, runner)
    with session_factory() as session:
        done = session.get(ExportRun, run_id)
        assert done is not None
        return done


def _run_here(
    session_factory: sessionmaker[Session],
    run_id: int,
    records_url: str,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Plan the run, export its studies and end it.

    Studies are exported side by side, as workers would run their jobs: up to
    `DUTYDESK_WORKER_CONCURRENCY` at once and no more than there are cores, the cores shared
    among them. The run opens one DuckDB database (the record store's extension is loaded
    once) and each study gets its own connection to it.
    """
    cores = os.cpu_count() or 2
    with closing(_engine.open_database(records_url, threads=1)) as database:
        with session_factory() as session:
            run = session.get(ExportRun, run_id)
            assert run is not None
            parts = plan_run(session, run, records_url, database=database)
            part_ids = [part.id for part in parts]
            session.commit()
        side_by_side = max(1, min(len(part_ids), get_settings().worker_concurrency, cores))
        # One DuckDB database for the run, a connection to it per study: its threads serve
        # every query, the calling thread of each among them.
        threads = get_settings().export_threads or max(1, cores // side_by_side)
        database.execute(f"SET threads = {threads}")

        def export_one(part_id: int) -> str:
            started = time.perf_counter()
            with session_factory() as session:
                part = session.get(StudyPart, part_id)
                assert part is not None
                export_part(session, part, records_url, database=database)
                session.commit()
                study_id = part.study_id
            log.info("study part %s took %.1f s", part_id, time.perf_counter() - started)
            return study_id

        with ThreadPoolExecutor(max_workers=side_by_side, thread_name_prefix="export") as pool:
            futures = [pool.submit(export_one, part_id) for part_id in part_ids]
            for index, future in enumerate(as_completed(futures), start=1):
                study_id = future.result()
                if progress:
                    progress(study_id, index, len(part_ids))
    with session_factory() as session:
        finish_run_if_done(session, run_id, records_url)
        session.commit()
