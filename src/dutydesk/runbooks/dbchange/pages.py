"""The database-change console: targets, the list of scripts with a form for a new one, and a
change's page with its script (highlighted), dry run and apply side by side."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import SqlLexer  # type: ignore[import-untyped]
from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.runbooks import rules_met
from dutydesk.runbooks._rules import may_sign
from dutydesk.runbooks._web import ChangeId, caller, person
from dutydesk.runbooks.dbchange import service
from dutydesk.runbooks.dbchange.schemas import TargetOut
from dutydesk.runbooks.models import ChangeRequest
from dutydesk.settings import get_settings
from dutydesk.web.access import AdminPage, Db, OperatorPage, ViewerPage
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("DB changes", "/dbchanges", order=79))

ACTIONS = ("dry-run", "edit", "apply")
_FORMATTER = HtmlFormatter(noclasses=True, nowrap=True, style="friendly")


def _error(error: service.DbChangeError) -> HTTPException:
    return HTTPException(error.status, str(error))


def highlighted(script: str) -> Markup:
    """The script as HTML with SQL syntax highlighting (pygments escapes the text)."""
    html: str = highlight(script, SqlLexer(), _FORMATTER)
    return Markup(html)  # noqa: S704 - pygments escapes the script's text


async def _form(request: Request) -> dict[str, Any]:
    return dict((await request.form()).items())


def _text(form: dict[str, Any], name: str, limit: int = 1000) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise HTTPException(422, f"{name} must be text")
    if len(value) > limit:
        raise HTTPException(422, f"{name} may have at most {limit} characters")
    return value


def _number(form: dict[str, Any], name: str, default: int) -> int:
    value = _text(form, name, 20).strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise HTTPException(422, f"{name} must be a whole number of milliseconds") from None


@router.get("/dbchanges", response_class=HTMLResponse)
def changes_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Every database change, newest first, and the form for a new one."""
    return render(
        request,
        "dbchange/list.html",
        {
            "changes": service.list_changes(db),
            "targets": service.list_targets(db),
            "tasks_folder": bool(get_settings().dbchange_tasks_dir),
        },
    )


@router.get("/dbchanges/targets", response_class=HTMLResponse)
def targets_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The target databases (passwords redacted), with their last connection test."""
    targets = [TargetOut.of(target) for target in service.list_targets(db)]
    return render(request, "dbchange/targets.html", {"targets": targets})


@router.post("/dbchanges/targets")
async def add_target_form(request: Request, who: AdminPage, db: Db) -> Response:
    """Register a target from the targets page."""
    form = await _form(request)
    try:
        service.save_target(
            db,
            name=_text(form, "name", 100),
            url=_text(form, "url"),
            read_user=_text(form, "read_user", 200),
            read_password=_text(form, "read_password"),
            write_user=_text(form, "write_user", 200),
            write_password=_text(form, "write_password"),
            statement_timeout_ms=_number(form, "statement_timeout_ms", 30_000),
            lock_timeout_ms=_number(form, "lock_timeout_ms", 5_000),
            backup_target=_text(form, "backup_target", 100),
            replace=_text(form, "replace", 10) == "yes",
            actor=who.name,
        )
    except service.DbChangeError as error:
        raise _error(error) from None
    return RedirectResponse("/dbchanges/targets", status_code=303)


@router.post("/dbchanges/targets/{name}/test")
def test_target_form(name: str, _who: AdminPage, db: Db) -> Response:
    """Test connection: both logins, a rolled-back transaction; shown on the targets page."""
    try:
        service.test_target(db, service.get_target(db, name))
    except service.DbChangeError as error:
        raise _error(error) from None
    return RedirectResponse("/dbchanges/targets", status_code=303)


async def _uploaded_script(value: Any) -> str | None:
    """The text of an uploaded .sql file (None when no file was chosen)."""
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    data = await value.read(service.MAX_SCRIPT_BYTES + 1)
    if len(data) > service.MAX_SCRIPT_BYTES:
        raise HTTPException(413, f"the file is over {service.MAX_SCRIPT_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, f"{value.filename} is not UTF-8 text") from None


@router.post("/dbchanges")
async def new_change_form(request: Request, who: OperatorPage, db: Db) -> Response:
    """A new change from a pasted script, an uploaded .sql file or a task path."""
    form = await _form(request)
    pasted = _text(form, "script", service.MAX_SCRIPT_BYTES)
    uploaded = await _uploaded_script(form.get("file"))
    task = _text(form, "task", 500).strip()
    given = [bool(pasted.strip()), uploaded is not None, bool(task)]
    if sum(given) != 1:
        raise HTTPException(422, "give exactly one of: a pasted script, a .sql file, a task path")
    try:
        target = service.get_target(db, _text(form, "target", 100))
        if task:
            script, source = service.read_task(task)
        elif uploaded is not None:
            file = form["file"]
            script, source = uploaded, f"upload {getattr(file, 'filename', '')}"[:200]
        else:
            script, source = pasted, "pasted"
        change = service.new_change(
            db,
            target=target,
            script=script,
            author=person(db, who),
            title=_text(form, "title", 300),
            source=source,
        )
    except service.DbChangeError as error:
        raise _error(error) from None
    return RedirectResponse(f"/dbchanges/{change.id}", status_code=303)


def _change_or_404(db: Db, change_id: int) -> ChangeRequest:
    try:
        return service.change_of(db, change_id)
    except service.DbChangeError as error:
        raise _error(error) from None


@router.get("/dbchanges/{change_id}", response_class=HTMLResponse)
def change_page(request: Request, who: ViewerPage, db: Db, change_id: ChangeId) -> HTMLResponse:
    """The script, its latest dry run (the evidence signers sign) and its apply, side by side."""
    change = _change_or_404(db, change_id)
    me = caller(db, who)
    met, missing = rules_met(db, change)
    apply = service.latest_apply(db, change)
    dry_run = (change.evidence or {}).get("dry_run")
    editable = change.state in ("draft", "pending", "approved")
    return render(
        request,
        "dbchange/change.html",
        {
            "change": change,
            "script_html": highlighted(change.payload.get("script", "")),
            "dry_run": dry_run,
            "apply": apply.figures if apply is not None else None,
            "runs": service.runs(db, change),
            "queued_dry_run": service.queued_dry_run(db, change),
            "met": met,
            "missing": missing,
            "can_sign": bool(
                me is not None
                and change.state == "pending"
                and dry_run
                and dry_run.get("ok")
                and me.id not in (change.author_id, change.revised_by_id)
                and may_sign(db, change, me)
            ),
            "editable": editable,
            "can_apply": change.state == "approved" and met,
        },
    )


@router.post("/dbchanges/{change_id}/{action}")
async def change_action(
    request: Request, who: OperatorPage, db: Db, change_id: ChangeId, action: str
) -> Response:
    """dry-run, edit (new script text) or apply, from the change's page."""
    if action not in ACTIONS:
        raise HTTPException(404, f"unknown action {action!r}; use {', '.join(ACTIONS)}")
    form = await _form(request)
    change = _change_or_404(db, change_id)
    me = person(db, who)
    try:
        if action == "dry-run":
            service.queue_dry_run(db, change, me)
        elif action == "edit":
            service.edit_script(db, change, _text(form, "script", service.MAX_SCRIPT_BYTES), me)
        else:
            service.request_apply(db, change, me)
    except service.DbChangeError as error:
        raise _error(error) from None
    return RedirectResponse(f"/dbchanges/{change.id}", status_code=303)
