"""How an HTTP signal is received: body read within the limit, the raw request stored,
the token checked, the rate limit taken, then the kind's handler run; every refusal is
stored with its reason before it is answered."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.alarms.service import Signal, land_signal
from dutydesk.db import session_memo, transaction, utcnow
from dutydesk.intake import service
from dutydesk.intake._batch import writer_of
from dutydesk.intake._parse import Rejected
from dutydesk.intake._payload import storable
from dutydesk.intake.models import Integration, Kind, Outcome
from dutydesk.settings import get_settings
from dutydesk.web.metrics import intake_outcome

log = logging.getLogger(__name__)
ACTOR = "intake"
# Refused items an answer lists (its `refused_count` counts them all).
MAX_REFUSALS_SHOWN = 100


@dataclass
class Inbound:
    """An inbound request as the handlers see it: body, all headers, method, path extras."""

    body: bytes
    headers: dict[str, str]
    method: str
    client: str | None
    action: str = ""
    query: dict[str, str] = field(default_factory=dict)
    # The body's whole size (more than `body` holds when it was over the inbox limit).
    size: int = 0


@dataclass
class Reply:
    """A handler's answer: status and JSON (or text) content, and what it touched."""

    status: int
    content: Any
    alarm_ids: list[int] = field(default_factory=list)
    ticket_ids: list[int] = field(default_factory=list)
    text: bool = False
    # Why the request was refused (kept with it in the inbox); None when it was accepted.
    refused: str | None = None
    # What an accepted request should be remembered for: items of it refused, text repaired.
    note: str | None = None
    integration: str = ""  # the integration's name, for the desk's metrics


Handler = Callable[[Session, Integration, Inbound], Reply]


@dataclass(frozen=True)
class Refusal:
    """One item of a batch refused while the others land: which, its own key, and why."""

    item: str
    reason: str
    fingerprint: str | None = None

    def shown(self) -> dict[str, str]:
        """As the answer lists it."""
        shown = {"item": self.item, "reason": self.reason}
        return shown | ({"fingerprint": self.fingerprint} if self.fingerprint else {})

    def __str__(self) -> str:
        key = f" (fingerprint {self.fingerprint})" if self.fingerprint else ""
        return f"{self.item}{key}: {self.reason}"


def batch_note(refused: Sequence[Refusal], repaired: Sequence[str]) -> str | None:
    """What the inbox remembers of a batch's refused items and repaired text (None if none)."""
    parts = []
    if refused:
        shown = "; ".join(str(refusal) for refusal in refused[:MAX_REFUSALS_SHOWN])
        more = len(refused) - MAX_REFUSALS_SHOWN
        parts.append(f"refused {shown}" + (f" and {more} more" if more > 0 else ""))
    if repaired:
        parts.append("NUL or lone surrogates stored as U+FFFD at " + ", ".join(repaired[:20]))
    return storable(" | ".join(parts)) if parts else None


def land(
    session: Session,
    signals: list[Signal],
    *,
    refused: Sequence[Refusal] = (),
    repaired: Sequence[str] = (),
) -> Reply:
    """Raise each signal; the reply lists the alarms and tickets, and the items refused.

    200 when something landed or nothing was sent; 422 when every item was refused.
    """
    alarm_ids: list[int] = []
    ticket_ids: list[int] = []
    for signal in signals:
        landed = land_signal(session, signal)
        alarm_ids.append(landed.alarm_id)
        if landed.told and landed.ticket_id is not None and landed.ticket_id not in ticket_ids:
            ticket_ids.append(landed.ticket_id)
    content: dict[str, Any] = {
        "accepted": len(signals),
        "alert_ids": alarm_ids,
        "ticket_ids": ticket_ids,
        "refused_count": len(refused),
        "refused": [refusal.shown() for refusal in refused[:MAX_REFUSALS_SHOWN]],
    }
    if repaired:
        content["repaired"] = list(repaired)
    note = batch_note(refused, repaired)
    if refused and not signals:
        content["detail"] = f"all {len(refused)} items were refused"
        return Reply(422, content, refused=note)
    return Reply(200, content, alarm_ids, ticket_ids, note=note)


async def _read_body(
    request: Request, limit: int, sample: int = service.OVERSIZED_SAMPLE_BYTES
) -> tuple[bytes, int, bool]:
    """The body up to `limit` bytes: (kept bytes, size seen, whether it was over the limit).
    Of a body over the limit, at least its first `sample` bytes are kept."""
    kept = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            kept.extend(chunk[: max(0, sample - len(kept))])
            declared = request.headers.get("content-length", "")
            return bytes(kept), int(declared) if declared.isdigit() else size, True
        kept.extend(chunk)
    return bytes(kept), size, False


def _answer(reply: Reply) -> Response:
    if reply.text:
        return PlainTextResponse(str(reply.content), status_code=reply.status)
    return JSONResponse(reply.content, status_code=reply.status)


def _refuse(status: int, reason: str, **details: Any) -> Reply:
    return Reply(status, {"detail": reason, **details}, refused=reason)


def _verdict(
    session: Session,
    integration: Integration | None,
    *,
    kinds: tuple[str, ...],
    inbound: Inbound,
    size: int,
    oversized: bool,
    handler: Handler,
) -> Reply:
    if integration is None:
        return _refuse(401, "unknown or disabled integration token")
    if integration.kind not in kinds:
        return _refuse(
            404,
            f"this token is for a {integration.kind} integration; send to "
            f"{service.hook_path(integration.kind, '<token>')}",
        )
    if oversized and integration.kind != Kind.heartbeat.value:
        # A heartbeat ping over the limit still counts (as Healthchecks): its body is cut.
        limit = get_settings().inbox_max_bytes
        return _refuse(413, f"body of {size} bytes is over the limit of {limit}")
    if not service.take_rate_slot(session, integration, utcnow()):
        return _refuse(
            429,
            f"rate limit of {integration.rate_limit} requests per "
            f"{integration.rate_window_seconds} s reached",
        )
    try:
        return handler(session, integration, inbound)
    except Rejected as error:
        return _refuse(error.status, error.reason, **error.details)


def _handle(
    session: Session,
    *,
    source: str,
    kinds: tuple[str, ...],
    token: str,
    path: str,
    inbound: Inbound,
    size: int,
    oversized: bool,
    handler: Handler,
) -> Reply:
    """Handle one request and keep it in the inbox with what became of it.

    The raw request and its outcome are written together, in the transaction that does the
    work: if the work fails, nothing of it stays and the request is kept as failed instead
    (`_record_failure`).
    """
    received_at = utcnow()
    integration = session_memo(
        session, ("integration", token), lambda: service.find_by_token(session, token)
    )
    reply = _verdict(
        session,
        integration,
        kinds=kinds,
        inbound=inbound,
        size=size,
        oversized=oversized,
        handler=handler,
    )
    reply.integration = integration.name if integration is not None else ""
    arrival = service.Arrival(
        source=source,
        method=inbound.method,
        path=service.masked_path(path, token),
        client=inbound.client,
        headers=service.kept_headers(inbound.headers),
        body=inbound.body,
        body_bytes=size,
        truncated=oversized,
        integration=integration,
        received_at=received_at,
    )
    inbox_id = service.keep(
        session,
        arrival,
        outcome=Outcome.rejected if reply.refused else Outcome.accepted,
        status_code=reply.status,
        reason=reply.refused or reply.note,
        alarm_ids=reply.alarm_ids,
        ticket_ids=reply.ticket_ids,
    )
    if isinstance(reply.content, dict):
        reply.content.setdefault("inbox_id", inbox_id)
    return reply


def _record_failure(
    factory: sessionmaker[Session], source: str, path: str, inbound: Inbound, error: Exception
) -> Reply:
    """Keep a request whose handling failed (its first transaction rolled back)."""
    arrival = service.Arrival(
        source=source,
        method=inbound.method,
        path=path,
        client=inbound.client,
        headers=service.kept_headers(inbound.headers),
        body=inbound.body,
    )
    with transaction(factory, immediate=True, actor=ACTOR) as session:
        service.keep(
            session,
            arrival,
            outcome=Outcome.failed,
            status_code=500,
            reason=f"internal error: {type(error).__name__}: {error}",
            alarm_ids=[],
            ticket_ids=[],
        )
    return Reply(500, {"detail": "the desk could not handle this; it is kept in the inbox"})


async def receive(
    request: Request,
    *,
    source: str,
    kinds: tuple[str, ...],
    token: str,
    handler: Handler,
    action: str = "",
    sample: int = service.OVERSIZED_SAMPLE_BYTES,
) -> Response:
    """Receive one signal request end to end and answer it (of a body over the limit, the
    first `sample` bytes are kept)."""
    limit = get_settings().inbox_max_bytes
    body, size, oversized = await _read_body(request, limit, sample)
    inbound = Inbound(
        body=body,
        headers={name.lower(): value for name, value in request.headers.items()},
        method=request.method,
        client=request.client.host if request.client else None,
        action=action,
        query=dict(request.query_params),
        size=size,
    )
    factory: sessionmaker[Session] = request.app.state.session_factory
    work = functools.partial(
        _handle,
        source=source,
        kinds=kinds,
        token=token,
        path=request.url.path,
        inbound=inbound,
        size=size,
        oversized=oversized,
        handler=handler,
    )

    def alone() -> Reply:
        try:
            with transaction(factory, immediate=True, actor=ACTOR) as session:
                return work(session)
        except Exception as error:
            log.exception("intake of %s failed", source)
            masked = service.masked_path(request.url.path, token)
            return _record_failure(factory, source, masked, inbound, error)

    reply = await writer_of(request.app.state, factory, ACTOR).run(work, alone)
    request.app.state.metrics.intake_requests.labels(
        reply.integration, source, intake_outcome(reply.status)
    ).inc()
    return _answer(reply)
