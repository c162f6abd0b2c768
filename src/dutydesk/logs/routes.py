"""The Logs console: saved extracts, the query form, results as a table and a time chart.

Anyone who may view runs queries from the form (a GET: it changes nothing); saving an extract
needs the operate permission; the raw-SQL page is for admins only and runs one SELECT on a
read-only DuckDB limited to the log roots and the extracts.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
import pyarrow as pa
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.logs import _engine
from dutydesk.logs import query as log_query
from dutydesk.logs._queryreport import query_report
from dutydesk.logs._s3 import s3_access
from dutydesk.logs.cli import cell
from dutydesk.logs.extracts import list_extracts
from dutydesk.logs.formats import FORMAT_NAMES
from dutydesk.settings import Settings, get_settings
from dutydesk.web.access import AdminPage, Db, OperatorPage, ViewerPage
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Logs", "/logs", order=110))

PAGE_ROWS = 500  # rows a page shows when the query asks for rows, not counts
SQL_ROWS = 1000
Text = Annotated[str, Query(max_length=2000)]
FormText = Annotated[str, Form(max_length=2000)]


ERROR_GROUPS_SHOWN = 50  # the most recently seen; all of them on /alarms/log-groups


@dataclass
class QueryForm:
    """The query form's fields, as typed (all text)."""

    extract: str = ""
    root: str = ""
    pattern: str = ""
    format: str = "auto"
    where: str = ""
    group_by: str = ""
    since: str = ""
    until: str = ""
    top: str = ""
    percentiles: str = ""
    errors: list[str] = field(default_factory=list)

    def to_query(self, *, save: str | None = None, for_page: bool = False) -> log_query.Query:
        """The query the form asks; QueryError for what is malformed."""
        if self.extract:
            sources: tuple[str, ...] = (f"@{self.extract}",)
        else:
            if not self.root:
                raise log_query.QueryError("choose a log root")
            joined = self.root if not self.pattern else _join(self.root, self.pattern)
            sources = (joined,)
        top = None
        if self.top.strip():
            if not self.top.strip().isdigit():
                raise log_query.QueryError("top must be a whole number")
            top = int(self.top)
        group_by = tuple(name.strip() for name in self.group_by.split(",") if name.strip())
        if for_page and not group_by and not self.percentiles and save is None:
            top = min(top or PAGE_ROWS, PAGE_ROWS)
        return log_query.Query(
            sources=sources,
            format=self.format or "auto",
            since=self.since.strip() or None,
            until=self.until.strip() or None,
            where=tuple(line.strip() for line in self.where.splitlines() if line.strip()),
            group_by=group_by,
            top=top,
            percentiles=self.percentiles.strip() or None,
            save=save,
        )


def _join(root: str, pattern: str) -> str:
    if root.startswith("s3://"):
        return root.rstrip("/") + "/" + pattern.lstrip("/")
    return str(Path(root) / pattern.lstrip("/"))


def _roots(settings: Settings) -> list[str]:
    roots = log_query.roots_of(settings)
    return [*(str(path) for path in roots.local), *roots.s3]


def _chart(table: pa.Table, group_by: tuple[str, ...]) -> dict[str, Any] | None:
    """uPlot data for a time-bucketed answer: one series per value of the other keys."""
    bucket = next((name for name in group_by if name in _engine.TIME_BUCKETS), None)
    if bucket is None or table.num_rows == 0:
        return None
    others = [name for name in group_by if name != bucket]
    counts: dict[str, dict[int, int]] = {}
    for row in table.to_pylist():
        moment = row[bucket]
        if not isinstance(moment, dt.datetime):
            continue
        label = " ".join(f"{name}={cell(row[name])}" for name in others) or "count"
        counts.setdefault(label, {})[int(moment.timestamp())] = int(row["count"])
    xs = sorted({x for series in counts.values() for x in series})
    return {
        "x": xs,
        "series": [
            {"label": label, "values": [series.get(x) for x in xs]}
            for label, series in sorted(counts.items())
        ],
    }


def _page(
    request: Request,
    db: Session,
    form: QueryForm,
    *,
    ran: bool,
    message: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    from dutydesk.intake.logs import error_groups

    settings = get_settings()
    context: dict[str, Any] = {
        "error_groups": error_groups(db, limit=ERROR_GROUPS_SHOWN),
        "form": form,
        "formats": FORMAT_NAMES,
        "roots": _roots(settings),
        "extracts": list_extracts(log_query.extracts_folder(settings)),
        "message": message,
        "result": None,
    }
    if ran and not form.errors:
        try:
            query = form.to_query(for_page=True)
            # The cache's fill is skipped, never run inside a request (`fill_later`).
            result = log_query.run(query, settings=settings, fill_later=True)
        except log_query.QueryError as error:
            form.errors.append(str(error))
            status_code = 422
        else:
            table = result.table
            context["result"] = {
                "columns": table.column_names,
                "rows": [[cell(v) for v in row.values()] for row in table.to_pylist()],
                "report": query_report(result.report),
                "capped": query.top == PAGE_ROWS and table.num_rows == PAGE_ROWS,
                "command": query.command_line(),
            }
            chart = _chart(table, query.group_by)
            context["chart"] = json.dumps(chart) if chart else None
    return render(request, "logs/logs.html", context, status_code=status_code)


@router.get("/logs", response_class=HTMLResponse)
def logs_page(
    request: Request,
    who: ViewerPage,
    db: Db,
    extract: Text = "",
    root: Text = "",
    pattern: Text = "",
    format: Text = "auto",
    where: Text = "",
    group_by: Text = "",
    since: Text = "",
    until: Text = "",
    top: Text = "",
    percentiles: Text = "",
    run: Annotated[bool, Query()] = False,
    saved: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    """The Logs page; with `run`, the answer to the query in the form."""
    form = QueryForm(
        extract, root, pattern, format, where, group_by, since, until, top, percentiles
    )
    message = f"Saved extract {saved}." if saved else ""
    return _page(request, db, form, ran=run, message=message)


@router.post("/logs/extracts", response_class=HTMLResponse)
def save_extract(
    request: Request,
    who: OperatorPage,
    db: Db,
    name: Annotated[str, Form(max_length=100)] = "",
    root: FormText = "",
    pattern: FormText = "",
    format: FormText = "auto",
    where: FormText = "",
    since: FormText = "",
    until: FormText = "",
) -> Response:
    """Save the rows the form's filters select as extract NAME, then query it."""
    form = QueryForm(
        root=root, pattern=pattern, format=format, where=where, since=since, until=until
    )
    try:
        if not name.strip():
            raise log_query.QueryError("give the extract a name")
        log_query.run(form.to_query(save=name.strip()))
    except log_query.QueryError as error:
        form.errors.append(str(error))
        return _page(request, db, form, ran=False, status_code=422)
    target = f"/logs?{urlencode({'extract': name.strip(), 'run': 1, 'saved': name.strip()})}"
    return RedirectResponse(target, status_code=303)


@router.get("/logs/report", response_class=HTMLResponse)
def report_page(
    request: Request,
    who: ViewerPage,
    glob: Text = "",
    format: Text = "auto",
    since: Text = "",
    until: Text = "",
    where: Text = "",
) -> HTMLResponse:
    """A report of the access logs a glob (within the log roots) names, as `logs report`
    writes it: requests, visitors, statuses, paths, referrers, agents, bytes, slow requests."""
    from dutydesk.logs import _htmlreport

    context: dict[str, Any] = {
        "glob": glob,
        "format": format,
        "since": since,
        "until": until,
        "formats": [*_htmlreport.ACCESS_FORMATS, "auto"],
        "errors": [],
        "report": None,
        "human_bytes": _htmlreport.human_bytes,
    }
    if not glob.strip():
        return render(request, "logs/report.html", context)
    ask = _htmlreport.ReportAsk(
        sources=(glob.strip(),),
        format=format or "auto",
        since=since.strip() or None,
        until=until.strip() or None,
        where=tuple(line.strip() for line in where.splitlines() if line.strip()),
    )
    try:
        context["report"] = _htmlreport.build(ask, settings=get_settings())
    except _htmlreport.ReportError as error:
        context["errors"].append(str(error))
        return render(request, "logs/report.html", context, status_code=422)
    return render(request, "logs/report.html", context)


def raw_sql_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB that may read only the log roots and the extracts."""
    folder = settings.ensure_home() / "logs-sql"
    folder.mkdir(exist_ok=True)
    database = folder / "empty.duckdb"
    if not database.exists():
        duckdb.connect(str(database)).close()
    return _engine.connect(
        log_query.roots_of(settings),
        [log_query.extracts_folder(settings)],
        s3=s3_access(settings) if log_query.roots_of(settings).s3 else None,
        database=str(database),
        read_only=True,
    )


def run_raw_sql(settings: Settings, sql: str) -> tuple[list[str], list[list[str]], bool]:
    """Run one SELECT; (columns, the first SQL_ROWS rows as text, whether there were more)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise ValueError(str(error).split("\n")[0]) from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ValueError("one SELECT statement only")
    connection = raw_sql_connection(settings)
    try:
        reader = connection.execute(sql).to_arrow_reader(SQL_ROWS + 1)
        batch = next(iter(reader), None)
    except duckdb.Error as error:
        raise ValueError(str(error).split("\n")[0]) from None
    finally:
        connection.close()
    if batch is None:
        return [], [], False
    rows = batch.to_pylist()
    return (
        batch.schema.names,
        [[cell(value) for value in row.values()] for row in rows[:SQL_ROWS]],
        len(rows) > SQL_ROWS,
    )


@router.get("/logs/sql", response_class=HTMLResponse)
def raw_sql_page(request: Request, who: AdminPage) -> HTMLResponse:
    """The admins' raw-SQL page."""
    return render(request, "logs/sql.html", {"sql": "", "roots": _roots(get_settings())})


@router.post("/logs/sql", response_class=HTMLResponse)
def raw_sql_run(
    request: Request, who: AdminPage, sql: Annotated[str, Form(max_length=20_000)] = ""
) -> HTMLResponse:
    """Run one SELECT read-only and show its first rows."""
    settings = get_settings()
    context: dict[str, Any] = {"sql": sql, "roots": _roots(settings)}
    try:
        columns, rows, more = run_raw_sql(settings, sql)
    except ValueError as error:
        context["error"] = str(error)
        return render(request, "logs/sql.html", context, status_code=422)
    context.update(columns=columns, rows=rows, more=more)
    return render(request, "logs/sql.html", context)
