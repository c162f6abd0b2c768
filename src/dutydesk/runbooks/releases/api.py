"""Releases API: templates, windows, releases and their steps, broadcasts, and the public
`GET /api/v1/broadcasts/active` the team's own application reads."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from dutydesk.runbooks.releases import _windows, broadcasts, service
from dutydesk.runbooks.releases._actions import act_on_release, act_on_step, person
from dutydesk.runbooks.releases.models import Release
from dutydesk.runbooks.releases.schemas import (
    ActiveBroadcasts,
    BroadcastIn,
    BroadcastOut,
    ReasonIn,
    ReleaseIn,
    ReleaseOut,
    TemplateIn,
    TemplateOut,
    WindowIn,
    WindowOut,
)
from dutydesk.settings import get_settings
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Anyone, Db, Operator, Viewer
from dutydesk.web.openapi import answers
from dutydesk.web.params import RowId

router = APIRouter()
StepPosition = RowId


def _http(error: service.ReleaseError) -> HTTPException:
    return HTTPException(error.status, str(error))


def _release(db: Db, release_id: int) -> Release:
    try:
        return service.get_release(db, release_id)
    except service.ReleaseError as error:
        raise _http(error) from None


# --- public broadcasts --------------------------------------------------------------------------

CACHE_CONTROL = "public, no-cache"  # caches keep it but ask again (a 304 is cheap)


def _cors(request: Request) -> dict[str, str]:
    origins = {o.strip() for o in get_settings().broadcast_cors_origins.split(",") if o.strip()}
    origin = request.headers.get("origin", "")
    headers = {"Vary": "Origin"}
    if "*" in origins:
        headers["Access-Control-Allow-Origin"] = "*"
    elif origin and origin in origins:
        headers["Access-Control-Allow-Origin"] = origin
    if "Access-Control-Allow-Origin" in headers:
        headers["Access-Control-Expose-Headers"] = "ETag"
    return headers


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


@router.get(
    "/api/v1/broadcasts/active",
    response_model=ActiveBroadcasts,
    responses={304: {"description": "Not modified: the broadcasts are those of the ETag sent."}},
)
def active_broadcasts(request: Request, _who: Anyone, db: Db) -> Response:
    """The broadcasts showing now, for the team's application (no login). Send the ETag of
    the last answer as `If-None-Match` to get 304 while nothing changed; CORS is allowed for
    the origins in DUTYDESK_BROADCAST_CORS_ORIGINS."""
    document, etag = broadcasts.active_document(db)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, **_cors(request)}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(document, headers=headers)


@router.options("/api/v1/broadcasts/active", status_code=204, include_in_schema=False)
def active_broadcasts_preflight(request: Request, _who: Anyone) -> Response:
    """The CORS preflight of the public endpoint, for the configured origins."""
    headers = _cors(request)
    if "Access-Control-Allow-Origin" in headers:
        headers["Access-Control-Allow-Methods"] = "GET"
        headers["Access-Control-Allow-Headers"] = "If-None-Match"
        headers["Access-Control-Max-Age"] = "600"
    return Response(status_code=204, headers=headers)


# --- broadcasts ---------------------------------------------------------------------------------


@router.get("/api/v1/broadcasts")
def list_broadcasts(_who: Viewer, db: Db) -> list[BroadcastOut]:
    """The latest broadcasts, active or ended, newest first."""
    return [BroadcastOut.of(item) for item in broadcasts.list_broadcasts(db)]


@router.post("/api/v1/broadcasts", status_code=201)
def create_broadcast(who: Operator, db: Db, body: BroadcastIn) -> BroadcastOut:
    """Start a broadcast."""
    try:
        made = broadcasts.create_broadcast(
            db,
            message=body.message,
            level=body.level,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            actor=caller_name(who),
        )
    except broadcasts.BroadcastError as error:
        raise HTTPException(422, str(error)) from None
    return BroadcastOut.of(made)


@router.post("/api/v1/broadcasts/{broadcast_id}/end", responses=answers(409))
def end_broadcast(who: Operator, db: Db, broadcast_id: RowId) -> BroadcastOut:
    """End a broadcast now."""
    try:
        found = broadcasts.get_broadcast(db, broadcast_id)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    try:
        broadcasts.end_broadcast(db, found, actor=caller_name(who))
    except broadcasts.BroadcastError as error:
        raise HTTPException(409, str(error)) from None
    return BroadcastOut.of(found)


# --- templates and windows ----------------------------------------------------------------------


@router.get("/api/v1/release-templates")
def list_templates(_who: Viewer, db: Db) -> list[TemplateOut]:
    """Every checklist template."""
    return [TemplateOut.of(template) for template in service.list_templates(db)]


@router.post("/api/v1/release-templates", status_code=201)
def save_template(who: Operator, db: Db, body: TemplateIn) -> TemplateOut:
    """Make a template, or replace the one of the same name; 422 names a wrong step (such as a
    command not listed in DUTYDESK_RELEASE_COMMANDS)."""
    try:
        template = service.save_template(
            db, body.model_dump(exclude_none=True), actor=caller_name(who)
        )
    except service.ReleaseError as error:
        raise _http(error) from None
    return TemplateOut.of(template)


@router.get("/api/v1/release-templates/{ident}")
def get_template(_who: Viewer, db: Db, ident: str) -> TemplateOut:
    """One template by id or name."""
    try:
        return TemplateOut.of(service.get_template(db, ident))
    except service.ReleaseError as error:
        raise _http(error) from None


@router.get("/api/v1/release-windows")
def list_windows(_who: Viewer, db: Db) -> list[WindowOut]:
    """Every release window."""
    return [WindowOut.model_validate(window) for window in _windows.list_windows(db)]


@router.post("/api/v1/release-windows", status_code=201)
def create_window(who: Operator, db: Db, body: WindowIn) -> WindowOut:
    """Make a weekly release window."""
    try:
        window = _windows.create_window(db, **body.model_dump(), actor=caller_name(who))
    except _windows.WindowError as error:
        raise HTTPException(422, str(error)) from None
    return WindowOut.model_validate(window)


# --- releases -----------------------------------------------------------------------------------


@router.get("/api/v1/releases")
def list_releases(_who: Viewer, db: Db) -> list[ReleaseOut]:
    """The latest releases, newest first."""
    return [ReleaseOut.of(release) for release in service.list_releases(db, limit=50)]


@router.post("/api/v1/releases", status_code=201)
def create_release(who: Operator, db: Db, body: ReleaseIn) -> ReleaseOut:
    """Plan a release of a template (a PATCH version skips the `skip_for_patch` steps)."""
    try:
        template = service.get_template(db, body.template)
        release = service.create_release(
            db,
            template,
            version=body.version,
            title=body.title,
            previous_version=body.previous_version,
            window=body.window,
            planned_start=body.planned_start,
            planned_end=body.planned_end,
            inputs={"db_change_id": body.db_change_id} if body.db_change_id else {},
            author=person(db, who),
            actor=caller_name(who),
        )
    except service.ReleaseError as error:
        raise HTTPException(422, str(error)) from None
    return ReleaseOut.of(release)


@router.get("/api/v1/releases/{release_id}")
def get_release(_who: Viewer, db: Db, release_id: RowId) -> ReleaseOut:
    """A release with its steps, timeline and its pipelines' events."""
    release = _release(db, release_id)
    return ReleaseOut.of(
        release, service.timeline(db, release), service.release_pipeline_events(db, release)
    )


@router.post("/api/v1/releases/{release_id}/{action}", responses=answers(409))
def release_action(
    who: Operator, db: Db, release_id: RowId, action: str, body: ReasonIn | None = None
) -> ReleaseOut:
    """`start`, `rollback` (the text is the reason) or `cancel` a release."""
    release = _release(db, release_id)
    try:
        act_on_release(db, release, action, who, body.text if body else "")
    except service.ReleaseError as error:
        raise _http(error) from None
    return ReleaseOut.of(release)


@router.post("/api/v1/releases/{release_id}/steps/{position}/{action}", responses=answers(409))
def step_action(
    who: Operator,
    db: Db,
    release_id: RowId,
    position: StepPosition,
    action: str,
    body: ReasonIn | None = None,
) -> ReleaseOut:
    """`tick` a manual step (text: a note), `sign` a signoff step (text: a comment), `retry` a
    failed step, `skip` one (text: the reason), or `override` the release window for a blocked
    step (an approver; text: the reason)."""
    release = _release(db, release_id)
    try:
        act_on_step(db, release, position, action, who, body.text if body else "")
    except service.ReleaseError as error:
        raise _http(error) from None
    return ReleaseOut.of(release)
