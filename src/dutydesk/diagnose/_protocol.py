"""Sentry's ingestion protocol, read: the auth header, compressed bodies, envelopes.

An envelope is newline-separated: a JSON header, then items, each a JSON item header and a
payload of `length` bytes (or up to the next newline when the header has no length). See
Sentry's developer documentation, "Envelopes" and "Store endpoint"."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any


class ProtocolError(Exception):
    """A request the desk cannot read: `status` (4xx) and a reason naming what was wrong."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sentry_key(auth_header: str, query: dict[str, str]) -> str | None:
    """The public key from `X-Sentry-Auth: Sentry sentry_key=..., ...` or `?sentry_key=`."""
    header = auth_header.strip()
    if header[:7].lower() == "sentry ":
        header = header[7:]
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "sentry_key" and value.strip():
            return value.strip()
    key = query.get("sentry_key", "").strip()
    return key or None


def decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its `Content-Encoding` (gzip, deflate or none), refused with 413 when
    it inflates past `limit` bytes (a small body may unpack to gigabytes)."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        if len(body) > limit:
            raise ProtocolError(413, f"the body is {len(body)} bytes, over the limit of {limit}")
        return body
    if name in ("gzip", "x-gzip"):
        windows = [16 + zlib.MAX_WBITS]
    elif name == "deflate":
        windows = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # zlib-wrapped, as the RFC says, or raw
    else:
        raise ProtocolError(415, f"content encoding {name!r} is not gzip, deflate or identity")
    problem = ""
    for window in windows:
        inflater = zlib.decompressobj(window)
        try:
            plain = inflater.decompress(body, limit + 1)
        except zlib.error as error:
            problem = str(error)
            continue
        if len(plain) > limit or inflater.unconsumed_tail:
            raise ProtocolError(413, f"the body inflates to more than the limit of {limit} bytes")
        return plain
    raise ProtocolError(400, f"the body is not valid {name} data: {problem}")


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """`data` as a JSON object, or a 400 naming `what` was not one."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(400, f"{what} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ProtocolError(400, f"{what} is not a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class Envelope:
    """An envelope read: its header, its event payloads, the other items counted by type,
    and the items that could not be read (each with why)."""

    header: dict[str, Any]
    events: list[tuple[int, bytes]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)


def read_envelope(data: bytes) -> Envelope:
    """Split an envelope into its items. A broken item is listed and the rest still read;
    a broken item header ends the reading (nothing after it can be framed)."""
    first, newline, rest = data.partition(b"\n")
    envelope = Envelope(json_object(first, "the envelope header"))
    position = 0
    index = 0
    while newline and position < len(rest):
        end = rest.find(b"\n", position)
        line = rest[position:] if end < 0 else rest[position:end]
        position = len(rest) if end < 0 else end + 1
        if not line.strip():
            continue
        try:
            item = json_object(line, f"item {index}'s header")
        except ProtocolError as error:
            envelope.broken.append(error.reason)
            break
        length = item.get("length")
        if length is None:
            end = rest.find(b"\n", position)
            payload = rest[position:] if end < 0 else rest[position:end]
            position = len(rest) if end < 0 else end + 1
        elif isinstance(length, int) and not isinstance(length, bool) and length >= 0:
            if position + length > len(rest):
                envelope.broken.append(f"item {index}'s length {length} runs past the body")
                break
            payload = rest[position : position + length]
            position += length
            if rest[position : position + 1] == b"\n":
                position += 1
        else:
            envelope.broken.append(f"item {index}'s length is not a non-negative integer")
            break
        kind = item.get("type")
        if kind == "event":
            envelope.events.append((index, payload))
        else:
            name = kind if isinstance(kind, str) else "unknown"
            envelope.skipped[name[:40]] = envelope.skipped.get(name[:40], 0) + 1
        index += 1
    return envelope
