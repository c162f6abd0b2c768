"""The re-drive console: the batches, one batch (IDs paged, counts, evidence, signoffs, run,
verification report, CSV), and its forms: paste or upload IDs, submit, approve, run, verify."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.export.models import ExportRun
from dutydesk.records.deps import RecordsDb
from dutydesk.runbooks.redrive import service
from dutydesk.runbooks.redrive._verify import OUTCOMES
from dutydesk.runbooks.redrive._web import (
    batch_or_404,
    batch_view,
    change_error,
    http_error,
    maybe_person,
    person,
    report_csv,
)
from dutydesk.runbooks.redrive.models import EDITABLE, RedriveBatch
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import ApproverPage, Db, OperatorPage, ViewerPage
from dutydesk.web.params import Page, RowId
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Re-drives", "/redrives", order=102))

PAGE_SIZE = 100
# The most bytes an uploaded ID list may have (a million IDs of UUID length is about 37 MB).
MAX_UPLOAD_BYTES = 40 * 1024 * 1024


@router.get("/redrives", response_class=HTMLResponse)
def batches_page(request: Request, _who: ViewerPage, db: Db, page: Page = 1) -> HTMLResponse:
    """Every batch, newest first, with its state and ID count."""
    offset = (page - 1) * PAGE_SIZE
    batches = service.list_batches(db, limit=PAGE_SIZE + 1, offset=offset)
    counts = service.item_counts(db, [batch.id for batch in batches])
    return render(
        request,
        "redrive/batches.html",
        {
            "batches": batches[:PAGE_SIZE],
            "counts": counts,
            "page": page,
            "more": len(batches) > PAGE_SIZE,
            "month": service.month_of(),
        },
    )


@router.post("/redrives/open")
async def open_page(request: Request, who: OperatorPage, db: Db) -> Response:
    """Open this month's batch (or go to it) and show it."""
    batch = service.open_batch(db, actor=caller_name(who))
    return RedirectResponse(f"/redrives/{batch.id}", status_code=303)


def _batch_page(
    request: Request,
    db: Db,
    batch: RedriveBatch,
    page: int,
    *,
    reports: list[tuple[str, service.AddReport]] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    view = batch_view(db, batch)
    offset = (page - 1) * PAGE_SIZE
    shown = service.items(db, batch, limit=PAGE_SIZE + 1, offset=offset)
    verification: dict[str, Any] = batch.verification or {}
    run = db.get(ExportRun, batch.export_run_id) if batch.export_run_id else None
    return render(
        request,
        "redrive/batch.html",
        {
            "batch": batch,
            "view": view,
            "items": shown[:PAGE_SIZE],
            "page": page,
            "more": len(shown) > PAGE_SIZE,
            "editable": batch.state in EDITABLE,
            "verification": verification,
            "outcomes": [o for o in OUTCOMES if o in verification.get("counts", {})],
            "run": run,
            "reports": reports or [],
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("/redrives/{batch_id:int}", response_class=HTMLResponse)
def batch_page(
    request: Request, _who: ViewerPage, db: Db, batch_id: RowId, page: Page = 1
) -> HTMLResponse:
    """One batch: facts, evidence, counts per study and reason, signoffs, run, report, IDs."""
    return _batch_page(request, db, batch_or_404(db, batch_id), page)


async def _uploaded_lines(value: Any) -> list[str]:
    """The lines of an uploaded text file (none when no file was chosen)."""
    if not isinstance(value, UploadFile) or not value.filename:
        return []
    data = await value.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, f"{value.filename} is not UTF-8 text") from None
    return text.splitlines()


@router.post("/redrives/{batch_id:int}/add", response_class=HTMLResponse)
async def add_page(
    request: Request, who: OperatorPage, db: Db, records: RecordsDb, batch_id: RowId
) -> HTMLResponse:
    """Add the pasted IDs and the uploaded file's IDs; the page shows what was added, merged
    and refused (each refused line by its number)."""
    batch = batch_or_404(db, batch_id)
    form = await request.form()
    pasted = str(form.get("ids") or "")
    study = str(form.get("study") or "").strip() or None
    reason = str(form.get("reason") or "")
    lists = [
        ("pasted list", pasted.splitlines()),
        ("file", await _uploaded_lines(form.get("file"))),
    ]
    lists = [(name, lines) for name, lines in lists if any(line.strip() for line in lines)]
    if not lists:
        return _batch_page(
            request, db, batch, 1, problem="Paste IDs or choose a file.", status_code=422
        )
    reports: list[tuple[str, service.AddReport]] = []
    try:
        for name, lines in lists:
            report = service.add_ids(
                db,
                records,
                batch,
                lines,
                study=study,
                reason=reason,
                source="form" if name == "pasted list" else "file",
                actor=caller_name(who),
                user=maybe_person(db, who),
            )
            reports.append((name, report))
    except service.RedriveError as error:
        return _batch_page(request, db, batch, 1, problem=str(error), status_code=error.status)
    return _batch_page(request, db, batch, 1, reports=reports)


@router.post("/redrives/{batch_id:int}/submit")
async def submit_page(request: Request, who: OperatorPage, db: Db, batch_id: RowId) -> Response:
    """Submit the open batch for signoff."""
    batch = batch_or_404(db, batch_id)
    try:
        service.submit(db, batch, person(db, who, "submitting a batch"))
    except service.RedriveError as error:
        raise http_error(error) from None
    return RedirectResponse(f"/redrives/{batch.id}", status_code=303)


def _change(db: Db, batch: RedriveBatch) -> Any:
    from dutydesk.runbooks import get_change

    if batch.change_id is None:
        raise HTTPException(409, f"batch {batch.id} is not submitted yet")
    return get_change(db, batch.change_id)


@router.post("/redrives/{batch_id:int}/approve")
async def approve_page(request: Request, who: ApproverPage, db: Db, batch_id: RowId) -> Response:
    """Sign off the batch's change request at the version and evidence the page showed."""
    from dutydesk.runbooks import ChangeRefused, sign_off

    batch = batch_or_404(db, batch_id)
    change = _change(db, batch)
    form = await request.form()
    try:
        version = int(str(form.get("data_version") or "0"))
    except ValueError:
        raise HTTPException(422, "data_version must be a whole number") from None
    try:
        sign_off(
            db,
            change,
            person(db, who, "a signoff"),
            data_version=version,
            evidence_hash=str(form.get("evidence_hash") or ""),
            comment=str(form.get("comment") or "")[:2000],
        )
    except ChangeRefused as error:
        raise change_error(error) from None
    return RedirectResponse(f"/redrives/{batch.id}", status_code=303)


@router.post("/redrives/{batch_id:int}/run")
async def run_page(request: Request, who: OperatorPage, db: Db, batch_id: RowId) -> Response:
    """Queue the run of the approved batch (its export, then its verification)."""
    from dutydesk.runbooks import ChangeRefused, run_change

    batch = batch_or_404(db, batch_id)
    change = _change(db, batch)
    try:
        run_change(db, change, person(db, who, "running a change"))
    except ChangeRefused as error:
        raise change_error(error) from None
    return RedirectResponse(f"/redrives/{batch.id}", status_code=303)


@router.post("/redrives/{batch_id:int}/export-again")
async def export_again_page(
    request: Request, who: OperatorPage, db: Db, batch_id: RowId
) -> Response:
    """Export the batch's approved list once more (replacing the earlier run's rows)."""
    from dutydesk.runbooks.redrive import _run

    batch = batch_or_404(db, batch_id)
    try:
        _run.export_again(db, batch, person(db, who, "exporting a batch again"))
    except service.RedriveError as error:
        raise http_error(error) from None
    return RedirectResponse(f"/redrives/{batch.id}", status_code=303)


@router.post("/redrives/{batch_id:int}/verify")
async def verify_page(
    request: Request, _who: OperatorPage, db: Db, records: RecordsDb, batch_id: RowId
) -> Response:
    """Verify the batch against its export run again."""
    from dutydesk.runbooks.redrive.routes import verify_now

    batch = batch_or_404(db, batch_id)
    verify_now(db, records, batch)
    return RedirectResponse(f"/redrives/{batch.id}", status_code=303)


@router.get("/redrives/{batch_id:int}/report.csv")
def report_page(_who: ViewerPage, db: Db, batch_id: RowId) -> StreamingResponse:
    """The verification report as CSV: every ID with its study, outcome and detail."""
    batch = batch_or_404(db, batch_id)
    rows = list(report_csv(db, batch))
    return StreamingResponse(
        iter(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="redrive-{batch.id}-report.csv"'},
    )
