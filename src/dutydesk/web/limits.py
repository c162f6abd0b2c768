"""Limits every request meets before a route sees it: the size of its headers, and JSON bodies
in UTF-8 without NaN or Infinity.

Python's json module reads `NaN`, `Infinity` and `-Infinity`, which are not JSON; such a value
would be stored and then break every reader that keeps to the standard (PostgreSQL's jsonb
refuses it outright). A JSON body holding one is refused with a 422 that names it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The most bytes of request headers (names and values) the desk reads, as h11's default.
MAX_HEADER_BYTES = 16 * 1024

# Paths whose bodies are not a JSON document for a route to parse: the intake endpoints read
# theirs as a stream with their own limits and checks, an attachment is kept byte for byte.
_OWN_BODY_PREFIXES = ("/hooks/", "/ping/", "/api/v1/logs", "/api/v1/records/attachments")
# Sentry SDKs' store and envelope endpoints (`/api/<project>/store/`): their bodies may be
# compressed, and the exception intake reads, inflates and checks them itself.
_SENTRY_PATH = re.compile(r"/api/[0-9]+/(?:store|envelope)/?")
_NON_FINITE = (b"NaN", b"Infinity")


class NonFiniteNumber(ValueError):
    """A JSON text holds NaN, Infinity or -Infinity."""


def _refuse_constant(name: str) -> Any:
    raise NonFiniteNumber(name)


def non_finite_in(body: bytes) -> str | None:
    """The first NaN/Infinity constant of a JSON body, or None (also for a body that is no
    JSON: the route refuses that itself)."""
    if not any(word in body for word in _NON_FINITE):
        return None  # the common case: no need to read it twice
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except NonFiniteNumber as constant:
        return str(constant)
    except ValueError:
        return None
    return None


def _body_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before its route reads it, or None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"the body is not UTF-8 text (byte {error.start})"
    constant = non_finite_in(body)
    if constant is not None:
        return f"{constant} is not a JSON number; send a finite number or null"
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind: bytes = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


class RequestLimits:
    """Plain ASGI middleware: 431 for headers over MAX_HEADER_BYTES, 422 for a JSON body that is
    not UTF-8 or has NaN or Infinity in it."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > self.max_header_bytes:
            detail = (
                f"the request's headers are {size} bytes, over the limit of {self.max_header_bytes}"
            )
            await JSONResponse({"detail": detail}, status_code=431)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(_OWN_BODY_PREFIXES) or _SENTRY_PATH.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self._checked_json(scope, receive, send)

    async def _checked_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: nothing to answer.
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _body_problem(body)
        if problem is not None:
            answer = JSONResponse({"detail": [{"field": "body", "message": problem}]}, 422)
            await answer(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
