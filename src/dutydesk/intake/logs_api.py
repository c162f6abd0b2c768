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
from dutydesk.intake._payload import storable_bytes
from dutydesk.intake._receive import _read_body
from dutydesk.intake.models import InboxItem, Outcome
from dutydesk.settings import get_settings
from dutydesk.tickets._web import caller_name
from dutydesk.web.access import Admin, Db, Intake, Viewer
from dutydesk.web.openapi import answers

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
    text = storable_bytes(body)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if fmt == "auto" and content_type in JSON_TYPES:
        fmt = "json"
    try:
        with db.begin_nested():
            counted = logs.ingest(db, source, text, fmt, utcnow(), strict=True)
    except logs.LogInputError as error:
        return _refuse(item, 400, str(error))
    refused, count = counted["refused"], counted["refused_count"]
    if count and not counted["events"]:
        return _refuse(item, 400, f"no line could be read: {_lines_note(refused, count, [])}")
    repaired = _repaired_lines(body) if text.encode() != body else []
    if repaired:
        counted["repaired_lines"] = repaired
    note = _lines_note(refused, count, repaired) if refused or repaired else None
    service.settle(item, Outcome.accepted, status_code=200, reason=note)
    if not refused and len(item.body) > KEPT_BODY_CHARS:
        # Raw lines are not kept; a batch with refused lines keeps them all, to read them.
        item.body = item.body[:KEPT_BODY_CHARS]
        item.raw_body = None
        item.truncated = True
    return 200, {**counted, "inbox_id": item.id}


def _repaired_lines(body: bytes) -> list[int]:
    """Numbers of the lines (the first 20) that are not UTF-8 text or hold NUL."""
    found = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if storable_bytes(line).encode() != line:
            found.append(number)
            if len(found) == 20:
                break
    return found


def _lines_note(refused: list[dict[str, Any]], count: int, repaired: list[int]) -> str:
    """What the inbox remembers of a batch's refused lines and repaired text."""
    parts = []
    if refused:
        shown = "; ".join(f"line {r['line']}: {r['reason']}" for r in refused[:20])
        more = f" and {count - 20} more" if count > 20 else ""
        parts.append(f"refused lines: {shown}{more}")
    if repaired:
        lines = ", ".join(map(str, repaired))
        parts.append(f"undecodable bytes or NUL stored as U+FFFD on lines {lines}")
    return " | ".join(parts)


@router.post("/api/v1/logs", responses=answers(400, 413))
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
