"""The change requests console: the list (waiting for my signoff first), one request with its
forms, and the signoff rules (admins). Forms post back and redirect to the page."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.people.models import Role, User
from dutydesk.runbooks import _rules, service
from dutydesk.runbooks._rules import RULE_ROLES
from dutydesk.runbooks._web import ChangeId, caller, change_or_404, detail_path, http_error, person
from dutydesk.runbooks.models import ChangeRequest, ChangeState
from dutydesk.web.access import AdminPage, Db, OperatorPage, Principal, ViewerPage
from dutydesk.web.templating import render

router = APIRouter()
registry.add_nav(registry.NavItem("Changes", "/changes", order=78))

ACTIONS = ("submit", "approve", "reject", "run", "comment", "cancel")
LIST_SIZE = 100


def waiting_for(db: Session, user: User | None) -> list[ChangeRequest]:
    """Pending requests this person could sign and has not: theirs to look at first."""
    if user is None:
        return []
    pending = service.list_changes(db, state=ChangeState.pending.value, limit=500)
    return [
        change
        for change in pending
        if user.id not in (change.author_id, change.revised_by_id)
        and all(s.user_id != user.id for s in change.active_signoffs)
        and change.kind in service.known_kinds()
        and _rules.may_sign(db, change, user)
    ]


@router.get("/changes", response_class=HTMLResponse)
def changes_page(request: Request, who: ViewerPage, db: Db) -> HTMLResponse:
    """Requests waiting for my signoff first, then mine, then every request, newest first."""
    me = caller(db, who)
    mine = (
        []
        if me is None
        else list(
            db.scalars(
                select(ChangeRequest)
                .where(ChangeRequest.author_id == me.id)
                .order_by(ChangeRequest.id.desc())
                .limit(LIST_SIZE)
            )
        )
    )
    return render(
        request,
        "runbooks/changes.html",
        {
            "waiting": waiting_for(db, me),
            "mine": mine,
            "changes": service.list_changes(db, limit=LIST_SIZE),
            "kinds": service.known_kinds(),
        },
    )


@router.get("/changes/rules", response_class=HTMLResponse)
def rules_page(request: Request, _who: AdminPage, db: Db) -> HTMLResponse:
    """The signoff rules in force per kind, and forms to set and remove them."""
    return render(
        request,
        "runbooks/rules.html",
        {
            "rules": _rules.all_rules(db),
            "kinds": service.known_kinds(),
            "roles": [role.value for role in RULE_ROLES],
        },
    )


async def _form(request: Request) -> dict[str, str]:
    return {name: str(value) for name, value in (await request.form()).items()}


def _count(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise HTTPException(422, f"count {value!r} is not a whole number") from None


@router.post("/changes/rules")
async def set_rule_form(request: Request, _who: AdminPage, db: Db) -> Response:
    """Set one rule from the rules page."""
    form = await _form(request)
    try:
        _rules.set_rule(
            db,
            kind=form.get("kind", ""),
            role=form.get("role", ""),
            count=_count(form.get("count", "")),
        )
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return RedirectResponse("/changes/rules", status_code=303)


@router.post("/changes/rules/remove")
async def remove_rule_form(request: Request, _who: AdminPage, db: Db) -> Response:
    """Remove one rule from the rules page."""
    form = await _form(request)
    try:
        _rules.remove_rule(db, kind=form.get("kind", ""), role=form.get("role", ""))
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return RedirectResponse("/changes/rules", status_code=303)


@router.get("/changes/{change_id}", response_class=HTMLResponse)
def change_page(request: Request, who: ViewerPage, db: Db, change_id: ChangeId) -> HTMLResponse:
    """One request: payload, evidence with its hash, rules and what is missing, signoffs,
    timeline, and the forms for what the caller may do."""
    change = change_or_404(db, change_id)
    me = caller(db, who)
    met, missing = service.rules_met(db, change)
    known = change.kind in service.known_kinds()
    return render(
        request,
        "runbooks/change.html",
        {
            "change": change,
            "label": service.known_kinds()[change.kind].label if known else change.kind,
            "detail_path": detail_path(change),
            "rules": _rules.rules_for(db, change.kind) if known else [],
            "met": met,
            "missing": missing,
            "events": service.timeline(db, change),
            "can": _can(db, change, me),
        },
    )


def _can(db: Session, change: ChangeRequest, me: User | None) -> dict[str, bool]:
    """Which forms to show this person (the service decides again when they post)."""
    if me is None or not Role(me.role).includes(Role.operator):
        return dict.fromkeys(ACTIONS, False)
    author = me.id == change.author_id
    operator_or_author = author or Role(me.role).includes(Role.operator)
    signer = (
        not author
        and me.id != change.revised_by_id
        and change.kind in service.known_kinds()
        and _rules.may_sign(db, change, me)
    )
    state = change.state
    return {
        "submit": state == ChangeState.draft and operator_or_author,
        "approve": state == ChangeState.pending
        and signer
        and all(s.user_id != me.id for s in change.active_signoffs),
        "reject": state == ChangeState.pending and signer,
        "run": state == ChangeState.approved and operator_or_author,
        "comment": True,
        "cancel": state in (ChangeState.draft, ChangeState.pending, ChangeState.approved)
        and (author or Role(me.role).includes(Role.admin)),
    }


def _act(
    db: Session, who: Principal, change: ChangeRequest, action: str, form: dict[str, str]
) -> None:
    me = person(db, who)
    if action == "submit":
        service.submit_change(db, change, me)
    elif action == "approve":
        try:
            version = int(form.get("data_version", ""))
        except ValueError:
            raise HTTPException(422, "data_version must be a whole number") from None
        service.sign_off(
            db,
            change,
            me,
            data_version=version,
            evidence_hash=form.get("evidence_hash", ""),
            comment=form.get("comment", ""),
        )
    elif action == "reject":
        service.reject_change(db, change, me, comment=form.get("comment", ""))
    elif action == "run":
        service.run_change(db, change, me)
    elif action == "comment":
        service.comment_change(db, change, me, form.get("text", ""))
    elif action == "cancel":
        service.cancel_change(db, change, me, comment=form.get("comment", ""))
    else:
        raise HTTPException(404, f"unknown action {action!r}; use {', '.join(ACTIONS)}")


@router.post("/changes/{change_id}/{action}")
async def change_action(
    request: Request, who: OperatorPage, db: Db, change_id: ChangeId, action: str
) -> Response:
    """submit, approve, reject, run, comment or cancel from the request's page."""
    form = await _form(request)
    change = change_or_404(db, change_id)
    try:
        _act(db, who, change, action, form)
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return RedirectResponse(f"/changes/{change.id}", status_code=303)
