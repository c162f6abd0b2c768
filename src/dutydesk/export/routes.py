"""The Exports console and API: runs and their progress, starting a run, the table registry,
table previews and downloads.

Table files are only ever read through a path made of the registry row's study and key, both
checked against `TABLE_KEY`; text from the URL only selects the row.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import duckdb
from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.export import service
from dutydesk.export._run_chart import run_history
from dutydesk.export._sql import quote_literal
from dutydesk.export.models import ExportRun, RunState, StudyPart, WarehouseTable
from dutydesk.export.request import InvalidRequest, SharingMode, format_datetime
from dutydesk.export.schedule_routes import router as schedules_router
from dutydesk.web.access import Db, Operator, OperatorPage, Viewer, ViewerPage
from dutydesk.web.params import Before, RowId
from dutydesk.web.templating import render

router = APIRouter()
# Included first: /exports/schedules must win over /exports/{run_id}.
router.include_router(schedules_router)
registry.add_nav(registry.NavItem("Exports", "/exports", order=100))

TABLE_KEY = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,299}$"
TableKey = Annotated[str, Path(pattern=TABLE_KEY)]
StateFilter = Annotated[RunState | None, Query()]
UNFINISHED = frozenset({RunState.queued.value, RunState.running.value, "finishing"})
# The sharing scopes every record is counted under once (the study and table whitelists count
# the same records again under their own names, so they are left out of the totals).
SCOPES = ("NO_SHARING", "SPONSORS_AND_PARTNERS", "ALL_QUALIFIED_RESEARCHERS")
PAGE_SIZE = 50
PREVIEW_ROWS = 50
PREVIEW_CELL_CHARS = 200
DOWNLOADS = {
    "tsv": ("text/tab-separated-values", "(FORMAT csv, HEADER true, DELIMITER '\t')"),
    "csv": ("text/csv", "(FORMAT csv, HEADER true)"),
    "parquet": ("application/vnd.apache.parquet", "(FORMAT parquet)"),
}
REQUEST_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "The exporter's request JSON (see docs/export.md).",
    }
}


class PartOut(BaseModel):
    """One study of a run, or one slice of a study split by table (slice `slice_no + 1` of
    `slices`, writing `slice_tables`; slice 1 also the summary and default tables)."""

    study_id: str
    slice_no: int = 0
    slices: int = 1
    slice_tables: list[str] = []
    start: dt.datetime | None
    end: dt.datetime | None
    state: str
    records: int
    failed_tables: list[str]
    error: str | None
    finished_at: dt.datetime | None


class RunSummaryOut(BaseModel):
    """A run as the runs list shows it."""

    id: int
    state: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_seconds: float | None
    created_by: str
    request_text: str
    studies: list[str]
    parts_done: int
    parts_total: int
    records_in: int
    accepted: int
    excluded: int
    tables_failed: int
    error: str | None
    parent_run_id: int | None

    @property
    def unfinished(self) -> bool:
        """Whether the run may still change (the console polls its progress)."""
        return self.state in UNFINISHED


class RunDetailOut(RunSummaryOut):
    """A run with its request, parts, metrics, table line counts and log."""

    request: dict[str, Any]
    run_key: str
    export_date: str
    parts: list[PartOut]
    metrics: dict[str, Any]
    table_lines: dict[str, int]
    log: str
    final_line: str | None


class TableOut(BaseModel):
    """A table of the registry."""

    key: str
    study_id: str
    kind: str
    columns: list[dict[str, Any]]
    created_at: dt.datetime
    updated_at: dt.datetime


class RunStartedOut(BaseModel):
    """The answer to a started run: its id to poll and its state."""

    id: int
    state: str


# Runs


def _merged_counters(run: ExportRun, parts: list[StudyPart]) -> dict[str, int]:
    """The run's counters; while it runs, the sum of what its finished parts counted."""
    counters = run.metrics.get("counters")
    if counters is not None:
        return {name: int(value) for name, value in counters.items()}
    merged: dict[str, int] = {}
    for part in parts:
        for name, value in part.metrics.get("counters", {}).items():
            merged[name] = merged.get(name, 0) + int(value)
    return merged


def _moment(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _summary_fields(run: ExportRun, parts: list[StudyPart]) -> dict[str, Any]:
    counters = _merged_counters(run, parts)
    duration = None
    if run.started_at is not None:
        duration = ((run.finished_at or utcnow()) - run.started_at).total_seconds()
    part_errors = [f"{part.study_id}: {part.error}" for part in parts if part.error]
    return {
        "id": run.id,
        "state": run.state,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": duration,
        "created_by": run.created_by,
        "request_text": run.request_text,
        "studies": list(run.studies),
        "parts_done": sum(part.state in service.FINISHED for part in parts),
        "parts_total": len(parts),
        "records_in": counters.get("numTotal", 0),
        "accepted": sum(counters.get(f"accepted[{scope}]", 0) for scope in SCOPES),
        "excluded": sum(counters.get(f"excluded[{scope}]", 0) for scope in SCOPES),
        "tables_failed": sum(len(part.failed_tables) for part in parts),
        "error": run.error or ("; ".join(part_errors) or None),
        "parent_run_id": run.parent_run_id,
    }


def _parts_of(db: Session, run_ids: list[int]) -> dict[int, list[StudyPart]]:
    found: dict[int, list[StudyPart]] = {run_id: [] for run_id in run_ids}
    query = (
        select(StudyPart)
        .where(StudyPart.run_id.in_(run_ids))
        .order_by(StudyPart.study_id, StudyPart.slice_no)
    )
    for part in db.scalars(query):
        found[part.run_id].append(part)
    return found


def list_runs(
    db: Session, *, state: RunState | None = None, before: int | None = None, limit: int = 50
) -> list[RunSummaryOut]:
    """Runs, newest first, with their summary numbers."""
    query = select(ExportRun).order_by(ExportRun.id.desc()).limit(limit)
    if state is not None:
        query = query.where(ExportRun.state == state.value)
    if before is not None:
        query = query.where(ExportRun.id < before)
    runs = list(db.scalars(query))
    parts = _parts_of(db, [run.id for run in runs])
    return [RunSummaryOut(**_summary_fields(run, parts[run.id])) for run in runs]


def _get_run(db: Session, run_id: int) -> ExportRun:
    run = db.get(ExportRun, run_id)
    if run is None:
        raise HTTPException(404, f"no export run with id {run_id}")
    return run


def run_summary(db: Session, run_id: int) -> RunSummaryOut:
    """One run's summary; 404 when there is no such run."""
    run = _get_run(db, run_id)
    return RunSummaryOut(**_summary_fields(run, _parts_of(db, [run.id])[run.id]))


def run_detail(db: Session, run_id: int) -> RunDetailOut:
    """One run with everything known about it; 404 when there is no such run."""
    run = _get_run(db, run_id)
    parts = _parts_of(db, [run.id])[run.id]
    counters = _merged_counters(run, parts)
    lines = {
        name.removesuffix(".lineCount"): count
        for name, count in sorted(counters.items())
        if name.endswith(".lineCount")
    }
    return RunDetailOut(
        **_summary_fields(run, parts),
        request=run.request,
        run_key=run.run_key,
        export_date=run.export_date,
        parts=[
            PartOut(
                study_id=part.study_id,
                slice_no=part.slice_no,
                slices=sum(other.study_id == part.study_id for other in parts),
                slice_tables=[
                    f"{part.study_id}-{schema_id}-v{revision}"
                    for schema_id, revision in part.slice_tables or []
                ],
                start=_moment(part.start_ms),
                end=_moment(part.end_ms),
                state=part.state,
                records=int(part.metrics.get("counters", {}).get("numTotal", 0)),
                failed_tables=list(part.failed_tables),
                error=part.error,
                finished_at=part.finished_at,
            )
            for part in parts
        ],
        metrics=run.metrics,
        table_lines=lines,
        log=run.log,
        final_line=run.final_line,
    )


def _state_counts(db: Session) -> dict[str, int]:
    rows = db.execute(select(ExportRun.state, func.count()).group_by(ExportRun.state)).all()
    counted = {str(state): int(count) for state, count in rows}
    return {state.value: counted[state.value] for state in RunState if state.value in counted}


@cache
def _time_zones() -> list[str]:
    return ["UTC", *sorted(zone for zone in available_timezones() if zone != "UTC")]


def _runs_page(
    request: Request,
    db: Session,
    *,
    state: RunState | None = None,
    before: int | None = None,
    form: dict[str, str] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    runs = list_runs(db, state=state, before=before, limit=PAGE_SIZE)
    return render(
        request,
        "export/runs.html",
        {
            "runs": runs,
            "counts": _state_counts(db),
            "states": list(RunState),
            "filters": {"state": state.value if state else ""},
            "older": runs[-1].id if len(runs) == PAGE_SIZE else None,
            "form": form or {"time_zone": "UTC", "sharing_mode": SharingMode.SHARED.value},
            "error": error,
            "time_zones": _time_zones(),
            "sharing_modes": list(SharingMode),
        },
        status_code=400 if error else 200,
    )


@router.get("/exports", response_class=HTMLResponse)
def runs_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    state: StateFilter = None,
    before: Before = None,
) -> HTMLResponse:
    """Recent export runs with their numbers; operators can start one."""
    return _runs_page(request, db, state=state, before=before)


def _form_moment(text: str, field: str, zone: ZoneInfo) -> str:
    """A datetime-local value (or ISO text, with or without offset) as the request writes it."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{field} is not a date and time: {text!r} (expected e.g. 2026-11-10T00:00)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return format_datetime(moment)


def request_from_form(
    start: str, end: str, time_zone: str, studies: str, sharing_mode: str
) -> dict[str, Any]:
    """The exporter request the form describes; no start means each study from its last export."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"Unknown time zone {time_zone!r}.") from None
    body: dict[str, Any] = {"useLastExportTime": not start.strip(), "sharingMode": sharing_mode}
    if start.strip():
        body["startDateTime"] = _form_moment(start.strip(), "startDateTime", zone)
    if end.strip():
        body["endDateTime"] = _form_moment(end.strip(), "endDateTime", zone)
    chosen = [study.strip() for study in studies.replace(",", " ").split() if study.strip()]
    if chosen:
        body["studyWhitelist"] = chosen
    return body


@router.post("/exports", response_class=HTMLResponse)
def start_run_form(
    request: Request,
    who: OperatorPage,
    db: Db,
    start: Annotated[str, Form(max_length=64)] = "",
    end: Annotated[str, Form(max_length=64)] = "",
    time_zone: Annotated[str, Form(max_length=64)] = "UTC",
    studies: Annotated[str, Form(max_length=2000)] = "",
    sharing_mode: Annotated[str, Form(max_length=32)] = SharingMode.SHARED.value,
) -> Response:
    """Queue an export from the console's form and show its run."""
    form = {
        "start": start,
        "end": end,
        "time_zone": time_zone,
        "studies": studies,
        "sharing_mode": sharing_mode,
    }
    try:
        body = request_from_form(start, end, time_zone, studies, sharing_mode)
        run = service.start_run(db, body, created_by=who.name, queue=True)
    except InvalidRequest as error:
        return _runs_page(request, db, form=form, error=str(error))
    return RedirectResponse(f"/exports/{run.id}", status_code=303)


# Tables (declared before /exports/{run_id} so that "tables" is never read as a run id)


def _table_row(db: Session, key: str) -> WarehouseTable:
    row = db.get(WarehouseTable, key)
    if row is None:
        raise HTTPException(404, f"no warehouse table {key!r}")
    return row


def table_folder(row: WarehouseTable) -> str:
    """The table's folder, from the registry row's own study and key, inside the warehouse."""
    if not (re.fullmatch(TABLE_KEY, row.study_id) and re.fullmatch(TABLE_KEY, row.key)):
        raise HTTPException(404, f"table {row.key!r} has a name that is not a folder name")
    return service.warehouse().table_url(row.study_id, row.key)


def _has_files(folder: str) -> bool:
    return service.warehouse().has_parquet(folder)


def _parquet_source(folder: str) -> str:
    pattern = quote_literal(f"{folder}/**/*.parquet")
    return f"read_parquet({pattern}, hive_partitioning = true, union_by_name = true)"


@contextmanager
def _duckdb() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 2})
    try:
        connection.execute("SET TimeZone = 'UTC'")
        service.warehouse().attach(connection)
        yield connection
    finally:
        connection.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def _tables_by_study(db: Session) -> dict[str, list[WarehouseTable]]:
    grouped: dict[str, list[WarehouseTable]] = {}
    query = select(WarehouseTable).order_by(WarehouseTable.study_id, WarehouseTable.key)
    for row in db.scalars(query):
        grouped.setdefault(row.study_id, []).append(row)
    return grouped


@router.get("/exports/tables", response_class=HTMLResponse)
def tables_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The warehouse's tables, grouped by study."""
    return render(request, "export/tables.html", {"studies": _tables_by_study(db)})


@router.get("/exports/tables/{key}", response_class=HTMLResponse)
def table_page(request: Request, _who: ViewerPage, db: Db, key: TableKey) -> HTMLResponse:
    """One table: its columns, its rows per export date, a preview and downloads."""
    row = _table_row(db, key)
    folder = table_folder(row)
    names: list[str] = []
    preview: list[list[str]] = []
    partitions: list[tuple[str, int]] = []
    if _has_files(folder):
        source = _parquet_source(folder)
        with _duckdb() as connection:
            found = connection.execute(f"SELECT * FROM {source} LIMIT {PREVIEW_ROWS}")  # noqa: S608 (a quoted literal path)
            names = [column[0] for column in found.description or []]
            preview = [[_cell(value) for value in values] for values in found.fetchall()]
            partitions = [
                (str(date), int(count))
                for date, count in connection.execute(
                    f"SELECT exportDate, count(*) FROM {source} GROUP BY 1 ORDER BY 1 DESC"  # noqa: S608 (a quoted literal path)
                ).fetchall()
            ]
    recent = db.scalars(
        select(ExportRun)
        .where(ExportRun.state.in_(service.FINISHED))
        .order_by(ExportRun.id.desc())
        .limit(200)
    )
    line_count = f"{row.key}.lineCount"
    runs = [
        (run, int(run.metrics["counters"][line_count]))
        for run in recent
        if line_count in run.metrics.get("counters", {})
    ][:20]
    return render(
        request,
        "export/table.html",
        {
            "table": row,
            "names": names,
            "preview": preview,
            "partitions": partitions,
            "row_count": sum(count for _, count in partitions),
            "runs": runs,
            "preview_rows": PREVIEW_ROWS,
            "formats": list(DOWNLOADS),
        },
    )


@router.get("/exports/tables/{key}/download")
def download_table(
    _who: ViewerPage,
    db: Db,
    key: TableKey,
    format: Annotated[Literal["tsv", "csv", "parquet"], Query()] = "tsv",
) -> FileResponse:
    """The whole table (every export date) as one TSV, CSV or Parquet file."""
    row = _table_row(db, key)
    folder = table_folder(row)
    if not _has_files(folder):
        raise HTTPException(404, f"table {row.key!r} has no files in the warehouse yet")
    media_type, options = DOWNLOADS[format]
    workdir = FilePath(tempfile.mkdtemp(prefix="dutydesk-download-"))
    target = workdir / f"{row.key}.{format}"
    try:
        with _duckdb() as connection:
            connection.execute(
                f"COPY (SELECT * FROM {_parquet_source(folder)}) "  # noqa: S608 (quoted literal paths)
                f"TO {quote_literal(str(target))} {options}"
            )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type=media_type,
        filename=target.name,
        background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True),
    )


# One run


@router.get("/exports/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, _who: ViewerPage, db: Db, run_id: RowId) -> HTMLResponse:
    """One run: request, studies, metrics, tables written, log."""
    detail = run_detail(db, run_id)
    registered = set(
        db.scalars(select(WarehouseTable.key).where(WarehouseTable.key.in_(detail.table_lines)))
    )
    redrives = db.scalars(
        select(ExportRun.id).where(ExportRun.parent_run_id == run_id).order_by(ExportRun.id)
    ).all()
    counters = detail.metrics.get("counters") or {}
    return render(
        request,
        "export/run.html",
        {
            "run": detail,
            "request_json": json.dumps(detail.request, indent=2, sort_keys=True),
            "registered": registered,
            "redrives": redrives,
            "counters": sorted(
                (name, count) for name, count in counters.items() if not name.endswith(".lineCount")
            ),
            "set_counters": sorted((detail.metrics.get("set_counters") or {}).items()),
            "key_values": sorted((detail.metrics.get("key_values") or {}).items()),
            "history": run_history(db, _get_run(db, run_id)),
        },
    )


@router.get("/exports/{run_id}/progress", response_class=HTMLResponse)
def run_progress(
    request: Request,
    _who: ViewerPage,
    db: Db,
    run_id: RowId,
    view: Annotated[Literal["row", "panel"], Query()] = "row",
) -> HTMLResponse:
    """The run's row of the runs list (or the run page's progress panel), for HTMX polling.

    Once the run has finished, the panel asks the browser to reload the run page.
    """
    summary = run_summary(db, run_id)
    if view == "row":
        return render(request, "export/_run_row.html", {"run": summary})
    response = render(request, "export/_progress.html", {"run": summary})
    if not summary.unfinished:
        response.headers["HX-Refresh"] = "true"
    return response


# API


@router.get("/api/v1/exports")
def api_list_runs(
    _who: Viewer,
    db: Db,
    state: StateFilter = None,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunSummaryOut]:
    """Recent export runs, newest first (page with `before=<smallest id seen>`)."""
    return list_runs(db, state=state, before=before, limit=limit)


@router.get("/api/v1/exports/tables")
def api_list_tables(_who: Viewer, db: Db) -> list[TableOut]:
    """The warehouse's table registry."""
    query = select(WarehouseTable).order_by(WarehouseTable.study_id, WarehouseTable.key)
    return [TableOut.model_validate(row, from_attributes=True) for row in db.scalars(query)]


@router.get("/api/v1/exports/{run_id}")
def api_get_run(_who: Viewer, db: Db, run_id: RowId) -> RunDetailOut:
    """One run with its parts, metrics, table line counts and log."""
    return run_detail(db, run_id)


@router.post("/api/v1/exports", status_code=202, openapi_extra=REQUEST_BODY_DOC)
async def api_start_run(request: Request, who: Operator, db: Db) -> RunStartedOut:
    """Queue an export; the body is the exporter's request JSON. Answers the run id to poll."""
    body = await request.body()
    try:
        run = service.start_run(db, body, created_by=who.name, queue=True)
    except InvalidRequest as error:
        raise HTTPException(422, str(error)) from None
    return RunStartedOut(id=run.id, state=run.state)
