"""The Sentry-compatible endpoints: `POST /api/{project_id}/store/` (one event) and
`POST /api/{project_id}/envelope/` (an envelope of items), authenticated by the project's
public key in `X-Sentry-Auth` or the `sentry_key` query parameter (no sign-in, no CSRF token:
senders are SDKs). Every refusal is a 4xx naming what was wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import transaction, utcnow
from dutydesk.diagnose import service
from dutydesk.diagnose._protocol import ProtocolError, decoded, read_envelope, sentry_key
from dutydesk.diagnose.models import ExceptionProject
from dutydesk.settings import get_settings
from dutydesk.web.access import Principal, TokenInUrl, writer_limiter
from dutydesk.web.openapi import answers
from dutydesk.web.params import INT32_MAX

log = logging.getLogger(__name__)
router = APIRouter()
Sender = Annotated[Principal, Depends(TokenInUrl())]
ProjectId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The project's id (in its DSN).")]
ACTOR = "exceptions"
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-sentry-envelope": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_ANSWERS = answers(400, 401, 403, 413, 429)
_ANSWERS[415] = {**_ANSWERS[400], "description": "The body's content encoding is not one read."}
_ACCEPTED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Taken in: `id` is the event's id."}
}


async def _bounded_body(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body up to `limit` bytes, and whether it was longer (then the rest is not read)."""
    kept = bytearray()
    async for chunk in request.stream():
        kept.extend(chunk)
        if len(kept) > limit:
            return bytes(kept[:limit]), True
    return bytes(kept), False


def _problem(error: ProtocolError, retry_after: int | None = None) -> JSONResponse:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
        # Sentry's own header: seconds, categories (none: all), scope, reason.
        headers["X-Sentry-Rate-Limits"] = f"{retry_after}::project:project_quota"
    return JSONResponse({"detail": error.reason}, status_code=error.status, headers=headers)


def _admitted(session: Session, project_id: int, request: Request, oversized: bool) -> int | None:
    """Check the request's key and size, and count it against its project's rate: the seconds
    to wait when it is over the rate, else None (any other refusal is a ProtocolError)."""
    key = sentry_key(request.headers.get("x-sentry-auth", ""), dict(request.query_params))
    project = service.authenticated(session, project_id, key)
    if oversized:
        raise ProtocolError(413, f"the body is over the limit of {_limit()} bytes")
    return service.take_rate_slot(session, project, utcnow())


def _store(session: Session, project: ExceptionProject, plain: bytes) -> dict[str, Any]:
    landed = service.Landed()
    service.take_event_bytes(session, project, plain, "the event", landed)
    return {"id": landed.event_ids[0]}


def _envelope(session: Session, project: ExceptionProject, plain: bytes) -> dict[str, Any]:
    envelope = read_envelope(plain)
    landed = service.Landed()
    refused = list(envelope.broken)
    for index, payload in envelope.events:
        try:
            with session.begin_nested():
                service.take_event_bytes(session, project, payload, f"item {index}", landed)
        except ProtocolError as error:
            refused.append(error.reason)
    if refused and not landed.event_ids and not envelope.skipped:
        raise ProtocolError(400, "no item of the envelope was taken: " + "; ".join(refused[:20]))
    header_id = str(envelope.header.get("event_id") or "").replace("-", "")
    return {
        "id": landed.event_ids[0] if landed.event_ids else header_id[:32] or None,
        "events": len(landed.event_ids),
        "skipped": envelope.skipped,
        "refused": refused[:100],
    }


def _limit() -> int:
    return get_settings().exception_max_body_bytes


Handler = Callable[[Session, ExceptionProject, bytes], dict[str, Any]]


async def _receive(request: Request, project_id: int, handle: Handler) -> JSONResponse:
    """Check, count and take in one request: the count is committed on its own first, so a
    request over the rate, or one whose body is then refused, still counts against it."""
    body, oversized = await _bounded_body(request, _limit())
    factory: sessionmaker[Session] = request.app.state.session_factory
    encoding = request.headers.get("content-encoding", "")

    def work() -> JSONResponse:
        with transaction(factory, immediate=True, actor=ACTOR) as session:
            wait = _admitted(session, project_id, request, oversized)
        if wait is not None:
            return _problem(ProtocolError(429, _rate_of(factory, project_id)), wait)
        plain = decoded(body, encoding, _limit())
        with transaction(factory, immediate=True, actor=ACTOR) as session:
            found = session.get(ExceptionProject, project_id)
            if found is None:
                raise ProtocolError(401, f"project {project_id} is gone")
            return JSONResponse(handle(session, found, plain))

    try:
        async with writer_limiter(request):
            return await run_in_threadpool(work)
    except ProtocolError as error:
        return _problem(error)


def _rate_of(factory: sessionmaker[Session], project_id: int) -> str:
    with transaction(factory, actor=ACTOR) as session:
        project = session.get(ExceptionProject, project_id)
        if project is None:
            return "rate limit reached"
        return (
            f"rate limit of {project.rate_limit} requests per "
            f"{project.rate_window_seconds} s reached"
        )


@router.post(
    "/api/{project_id:int}/store/",
    responses={**_ACCEPTED, **_ANSWERS},
    openapi_extra=_BODY,
)
async def store_endpoint(request: Request, project_id: ProjectId, _who: Sender) -> JSONResponse:
    """One event as JSON (Sentry's store endpoint); gzip or deflate bodies are read."""
    return await _receive(request, project_id, _store)


@router.post(
    "/api/{project_id:int}/envelope/",
    responses={**_ACCEPTED, **_ANSWERS},
    openapi_extra=_BODY,
)
async def envelope_endpoint(request: Request, project_id: ProjectId, _who: Sender) -> JSONResponse:
    """An envelope (Sentry's envelope endpoint): `event` items are kept, other items counted
    and skipped; an item that cannot be read is listed in `refused` while the others are kept."""
    return await _receive(request, project_id, _envelope)
