"""Change requests API: list, one request, signoffs, reject, run, comments, cancel; the
signoff rules. The signer is always the caller: no route takes a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from dutydesk.runbooks import _rules, service
from dutydesk.runbooks._pages import router as pages_router
from dutydesk.runbooks._web import (
    ChangeId,
    caller,
    change_or_404,
    change_out,
    http_error,
    person,
    rules_out,
)
from dutydesk.runbooks.models import ChangeState
from dutydesk.runbooks.schemas import (
    CancelIn,
    ChangeOut,
    ChangeSummary,
    CommentIn,
    RejectIn,
    RuleIn,
    RuleOut,
    RunOut,
    SignoffIn,
)
from dutydesk.web.access import Admin, Db, Operator, Viewer
from dutydesk.web.openapi import answers
from dutydesk.web.params import Offset

router = APIRouter()
router.include_router(pages_router)

StateParam = Annotated[
    str | None, Query(pattern="^(" + "|".join(ChangeState) + ")$", description="Only this state.")
]
KindParam = Annotated[str | None, Query(max_length=32, description="Only this kind.")]
Acted = answers(404, 409, 422)


@router.get("/api/v1/changes")
def list_changes(
    _who: Viewer,
    db: Db,
    state: StateParam = None,
    kind: KindParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[ChangeSummary]:
    """Change requests, newest first."""
    found = service.list_changes(db, state=state, kind=kind, limit=limit, offset=offset)
    return [ChangeSummary.of(change) for change in found]


@router.get("/api/v1/changes/{change_id}", responses=answers(404))
def show_change(_who: Viewer, db: Db, change_id: ChangeId) -> ChangeOut:
    """One request: payload, evidence and its hash, rules and what is missing, signoffs,
    timeline."""
    return change_out(db, change_or_404(db, change_id))


@router.post("/api/v1/changes/{change_id}/submit", responses=Acted)
def submit_change(who: Operator, db: Db, change_id: ChangeId) -> ChangeOut:
    """A draft becomes pending; everyone whose signoff is needed is notified."""
    change = change_or_404(db, change_id)
    try:
        service.submit_change(db, change, person(db, who))
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.post("/api/v1/changes/{change_id}/signoffs", status_code=201, responses=Acted)
def sign_off(who: Operator, db: Db, change_id: ChangeId, body: SignoffIn) -> ChangeOut:
    """Approve the version and evidence you reviewed. Refused (403) for the author, for a
    token without a user and for a role no rule accepts; refused (409, with the reason) for a
    stale data_version or evidence hash. Approval queues nothing: running is a separate step."""
    change = change_or_404(db, change_id)
    try:
        service.sign_off(
            db,
            change,
            caller(db, who),
            data_version=body.data_version,
            evidence_hash=body.evidence_hash,
            comment=body.comment,
        )
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.post("/api/v1/changes/{change_id}/reject", responses=Acted)
def reject_change(who: Operator, db: Db, change_id: ChangeId, body: RejectIn) -> ChangeOut:
    """Reject a pending request (a signer, not its author), saying why."""
    change = change_or_404(db, change_id)
    try:
        service.reject_change(db, change, person(db, who), comment=body.comment)
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.post("/api/v1/changes/{change_id}/run", status_code=202, responses=Acted)
def run_change(who: Operator, db: Db, change_id: ChangeId) -> RunOut:
    """Queue the run job of an approved request (its author or an operator); refused (409)
    until the signoff rules are met."""
    change = change_or_404(db, change_id)
    try:
        job_id = service.run_change(db, change, person(db, who))
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return RunOut(change_id=change.id, job_id=job_id)


@router.post("/api/v1/changes/{change_id}/comments", status_code=201, responses=Acted)
def comment_change(who: Operator, db: Db, change_id: ChangeId, body: CommentIn) -> ChangeOut:
    """Add a comment to the request's timeline."""
    change = change_or_404(db, change_id)
    try:
        service.comment_change(db, change, person(db, who), body.text)
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.post("/api/v1/changes/{change_id}/cancel", responses=Acted)
def cancel_change(who: Operator, db: Db, change_id: ChangeId, body: CancelIn) -> ChangeOut:
    """Withdraw a request that has not run (its author or an admin)."""
    change = change_or_404(db, change_id)
    try:
        service.cancel_change(db, change, person(db, who), comment=body.comment)
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return change_out(db, change)


@router.get("/api/v1/change-rules")
def list_rules(_who: Viewer, db: Db) -> list[RuleOut]:
    """The signoff rules in force for every kind (a kind's defaults until an admin sets one)."""
    return rules_out(_rules.all_rules(db))


@router.put("/api/v1/change-rules", responses=answers(422))
def set_rule(_who: Admin, db: Db, body: RuleIn) -> list[RuleOut]:
    """Ask for `count` signoffs from `role` (or higher) on `kind`; the kind's rules after."""
    try:
        _rules.set_rule(db, kind=body.kind, role=body.role, count=body.count)
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return rules_out(_rules.rules_for(db, body.kind))


@router.delete("/api/v1/change-rules/{kind}/{role}", status_code=204, responses=answers(404, 422))
def remove_rule(
    _who: Admin,
    db: Db,
    kind: Annotated[str, Path(max_length=32)],
    role: Annotated[str, Path(max_length=16)],
) -> Response:
    """Drop a rule; with none left for the kind, its defaults apply again."""
    try:
        _rules.remove_rule(db, kind=kind, role=role)
    except service.ChangeRefused as error:
        raise http_error(error) from None
    return Response(status_code=204)
