"""`POST /api/v1/logs?source=NAME`: text lines or JSON lines from a shipper (`dutydesk logs
tail`) with an API token of scope `intake`. Like every intake request it is kept in the inbox
first; an accepted batch keeps only its first lines there (raw lines are not kept)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.intake import log_sources, logs, service
from dutydesk.intake._receive import _read_body
from dutydesk.intake.models import InboxItem, Outcome
from dutydesk.settings import get_settings
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Admin, Db, Intake, Viewer

router = APIRouter()
KEPT_BODY_CHARS = 4_000
JSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


def _refuse(item: InboxItem, status: int, reason: str) -> tuple[int, dict[str, Any]]:
    service.settle(item, Outcome.rejected, status_code=status, reason=reason)
    return status, {"detail": reason, "inbox_id": item.id}


def handle_batch(
    db: Session,
    *,
    source: str | None,
    fmt: str,
    body: bytes,
    size: int,
    oversized: bool,
    headers: dict[str, str],
    path: str,
    client: str | None,
) -> tuple[int, dict[str, Any]]:
    """Keep the request in the inbox, check it, then count its lines; (status, answer)."""
    item = service.record(
        db,
        source="logs",
        method="POST",
        path=path,
        client=client,
        headers=service.kept_headers(headers),
        body=body,
        body_bytes=size,
        truncated=oversized,
    )
    db.flush()
    if oversized:
        limit = get_settings().inbox_max_bytes
        return _refuse(item, 413, f"body of {size} bytes is over the limit of {limit}")
    if not source:
        return _refuse(item, 400, "give the log source as ?source=NAME")
    if not logs.SOURCE_PATTERN.match(source):
        return _refuse(item, 400, f"source {source!r} must be letters, digits and ._:/- only")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return _refuse(item, 400, f"body is not UTF-8 text: invalid byte at offset {error.start}")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if fmt == "auto" and content_type in JSON_TYPES:
        fmt = "json"
    try:
        with db.begin_nested():
            counted = logs.ingest(db, source, text, fmt, utcnow(), strict=True)
    except logs.LogInputError as error:
        return _refuse(item, 400, str(error))
    service.settle(item, Outcome.accepted, status_code=200)
    if len(item.body) > KEPT_BODY_CHARS:
        item.body = item.body[:KEPT_BODY_CHARS]
        item.truncated = True
    return 200, {**counted, "inbox_id": item.id}


@router.post("/api/v1/logs")
async def post_logs(
    request: Request,
    _who: Intake,
    db: Db,
    source: Annotated[str | None, Query(max_length=200)] = None,
    format: Annotated[str, Query(max_length=20)] = "auto",
) -> JSONResponse:
    """Count a batch of log lines (text or JSON lines) from `source`; 400 names what is wrong."""
    body, size, oversized = await _read_body(request, get_settings().inbox_max_bytes)
    headers = {name.lower(): value for name, value in request.headers.items()}
    path = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    client = request.client.host if request.client else None

    def run() -> tuple[int, dict[str, Any]]:
        return handle_batch(
            db,
            source=source,
            fmt=format,
            body=body,
            size=size,
            oversized=oversized,
            headers=headers,
            path=path,
            client=client,
        )

    status, content = await anyio.to_thread.run_sync(run)
    return JSONResponse(content, status_code=status)


class LogSourceIn(BaseModel):
    """A log archive glob scanned on a schedule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    glob: str = Field(max_length=1000)
    format: str = Field(default="auto", max_length=16)


class LogSourceOut(BaseModel):
    """A scanned log source and its last scan."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    glob: str
    format: str
    enabled: bool
    last_scanned_at: dt.datetime | None
    last_result: dict[str, Any]
    created_by: str


@router.get("/api/v1/log-sources")
def list_log_sources(_who: Viewer, db: Db) -> list[LogSourceOut]:
    """The log archive globs scanned on a schedule."""
    return [LogSourceOut.model_validate(s) for s in log_sources.list_log_sources(db)]


@router.post("/api/v1/log-sources", status_code=201)
def create_log_source(who: Admin, db: Db, body: LogSourceIn) -> LogSourceOut:
    """Scan files matching a glob on the desk's machine (admins only: it reads local files)."""
    try:
        made = log_sources.create_log_source(
            db, name=body.name, glob=body.glob, fmt=body.format, actor=caller_name(who)
        )
    except log_sources.LogSourceError as error:
        raise HTTPException(422, str(error)) from None
    return LogSourceOut.model_validate(made)


@router.delete("/api/v1/log-sources/{ident}")
def delete_log_source(_who: Admin, db: Db, ident: str) -> LogSourceOut:
    """Stop scanning a source (its counts stay)."""
    try:
        found = log_sources.get_log_source(db, ident)
    except log_sources.LogSourceError as error:
        raise HTTPException(404, str(error)) from None
    shown = LogSourceOut.model_validate(found)
    log_sources.delete_log_source(db, found)
    return shown
