"""A small S3 REST client: GetObject and ListObjectsV2, signed (SigV4), on one event loop.

Log queries fetch tens of thousands of small objects, hundreds at once. botocore spends about
a millisecond of Python per request, and a thread per request in flight fights the query's own
threads for the interpreter; so this client does only what those two calls need, on asyncio
streams in one thread (uvloop when installed): sign with the standard library's `hmac`, keep
connections alive in a pool, read bodies of a known length or chunked, parse listings with
ElementTree. Its coroutines run on the loop of `Loop`, which other threads submit to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import hmac
import re
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote
from xml.etree import ElementTree

from dutydesk.logs._engine import S3Access

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ATTEMPTS = 4  # tries of a request that failed on the connection or with a 5xx
TIMEOUT = 60.0  # seconds a request may take
_RETRY_STATUSES = {500, 502, 503, 504}
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
T = TypeVar("T")
# What a request that broke on the way raises: the connection, a bad or cut-off answer, time.
_BROKEN = (OSError, EOFError, ValueError, TimeoutError, asyncio.LimitOverrunError)
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class S3Error(Exception):
    """A request the store refused or could not answer (the message says why)."""


@dataclass(frozen=True)
class Listed:
    """One entry of a listing: an object (size and ETag) or a folder (`folder`, key ends in /)."""

    key: str
    size: int = 0
    etag: str = ""
    folder: bool = False


class Loop:
    """An event loop in a daemon thread, for other threads to run coroutines on."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:  # uvloop is optional (not on every platform)
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="s3", daemon=True)
        self._thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `work` on the loop; its future."""
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop and wait for its result."""
        return self.submit(work).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def _encode(text: str, safe: str = "") -> str:
    return quote(text, safe="-_.~" + safe)


class S3Rest:
    """GetObject and ListObjectsV2 against AWS or an endpoint (path-style, as MinIO and moto).

    At most `pool` requests are in flight at once; their connections are kept for the next.
    """

    def __init__(self, access: S3Access, pool: int = 64) -> None:
        self.access = access
        self.pool = pool
        self._idle: dict[tuple[str, bool], list[Stream]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._keys: dict[tuple[str, str], bytes] = {}
        self._regions: dict[str, str] = {}
        self._context: ssl.SSLContext | None = None
        self._second = 0
        self._stamped = ""

    async def close(self) -> None:
        """Close every idle connection."""
        idle = [stream for group in self._idle.values() for stream in group]
        self._idle.clear()
        for _, writer in idle:
            writer.close()

    async def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes; S3Error("not found", ...) when it cannot be had."""
        return await self._request(bucket, "/" + key, {})

    async def list(self, bucket: str, prefix: str, delimiter: str = "") -> list[Listed]:
        """Every object (and with `delimiter`, every folder) under `prefix`, all pages."""
        found: list[Listed] = []
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if delimiter:
                query["delimiter"] = delimiter
            if token:
                query["continuation-token"] = token
            body = await self._request(bucket, "/", query)
            if b"<!DOCTYPE" in body or b"<!ENTITY" in body:  # no listing declares entities
                raise S3Error("a listing that declares XML entities, refused")
            page = ElementTree.fromstring(body)  # noqa: S314 (no DTD, checked above)
            truncated, token = False, ""
            for element in page:
                name = element.tag.rsplit("}", 1)[-1]
                if name == "Contents":
                    fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
                    found.append(
                        Listed(
                            fields.get("Key", ""),
                            int(fields.get("Size") or 0),
                            fields.get("ETag", "").strip('"'),
                        )
                    )
                elif name == "CommonPrefixes":
                    found += [Listed(child.text or "", folder=True) for child in element]
                elif name == "NextContinuationToken":
                    token = element.text or ""
                elif name == "IsTruncated":
                    truncated = element.text == "true"
            if not (truncated and token):
                return found

    def _where(self, bucket: str, path: str) -> tuple[str, bool, str, str]:
        """(host[:port], TLS?, path on that host, region) of a bucket's object."""
        access = self.access
        region = self._regions.get(bucket, access.region)
        if access.endpoint:
            return access.endpoint, access.use_ssl, f"/{bucket}{path}", region
        if _DNS_BUCKET.match(bucket):
            return f"{bucket}.s3.{region}.amazonaws.com", True, path, region
        return f"s3.{region}.amazonaws.com", True, f"/{bucket}{path}", region

    async def _request(self, bucket: str, path: str, query: dict[str, str]) -> bytes:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.pool)
        async with self._slots:
            return await self._attempts(bucket, path, query)

    async def _attempts(self, bucket: str, path: str, query: dict[str, str]) -> bytes:
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt > 1:  # the first retry is on a fresh connection, at once
                await asyncio.sleep(0.05 * 2**attempt)
            host, tls, where, region = self._where(bucket, path)
            target = _encode(where, "/")
            canonical_query = "&".join(
                f"{_encode(name)}={_encode(value)}" for name, value in sorted(query.items())
            )
            headers = self._signed(host, target, canonical_query, region)
            request = "".join(
                [
                    f"GET {target}{'?' + canonical_query if query else ''} HTTP/1.1\r\n",
                    *(f"{name}: {value}\r\n" for name, value in headers.items()),
                    "\r\n",
                ]
            ).encode("latin-1")
            try:
                async with asyncio.timeout(TIMEOUT):
                    status, answer, body = await self._exchange(host, tls, request)
            except _BROKEN as error:
                last = f"cannot fetch: {error or type(error).__name__}"
                continue
            if status == 200:
                return body
            moved = answer.get("x-amz-bucket-region", "")
            if status in (301, 307, 400) and moved and moved != region:
                self._regions[bucket] = moved
                continue
            code = _error_code(body)
            if status in _RETRY_STATUSES or code == "SlowDown":
                last = f"HTTP {status} {code}".strip()
                continue
            if status == 404:
                raise S3Error("not found" if code != "NoSuchBucket" else "no such bucket")
            if status == 403:
                raise S3Error(f"access denied ({code or 'HTTP 403'})")
            raise S3Error(f"HTTP {status} {code}".strip())
        raise S3Error(f"{last} (after {ATTEMPTS} tries)")

    async def _exchange(
        self, host: str, tls: bool, request: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Send `request` on a kept-alive connection (or a new one); (status, headers, body)."""
        idle = self._idle.get((host, tls))
        stream = idle.pop() if idle else await self._open(host, tls)
        reader, writer = stream
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = await _chunked(reader)
            elif "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            else:
                body = await reader.read()
                headers["connection"] = "close"
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.setdefault((host, tls), []).append(stream)
        return status, headers, body

    async def _open(self, host: str, tls: bool) -> Stream:
        name, _, port = host.partition(":")
        if not tls:
            return await asyncio.open_connection(name, int(port or 80))
        if self._context is None:
            self._context = ssl.create_default_context()
        return await asyncio.open_connection(
            name, int(port or 443), ssl=self._context, server_hostname=name
        )

    def _signed(self, host: str, target: str, canonical_query: str, region: str) -> dict[str, str]:
        """The request's headers, with a SigV4 signature when there are credentials."""
        stamp = self._stamp()
        headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
        access = self.access
        if not access.key_id:
            return headers
        if access.session_token:
            headers["x-amz-security-token"] = access.session_token
        names = sorted(headers)
        canonical = "\n".join(
            [
                "GET",
                target,
                canonical_query,
                *(f"{name}:{headers[name]}" for name in names),
                "",
                ";".join(names),
                EMPTY_SHA256,
            ]
        )
        day = stamp[:8]
        scope = f"{day}/{region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(
            self._signing_key(day, region), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={access.key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return headers

    def _stamp(self) -> str:
        """The time as SigV4 writes it (formatted once a second, not once a request)."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamped = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return self._stamped

    def _signing_key(self, day: str, region: str) -> bytes:
        cached = self._keys.get((day, region))
        if cached is None:
            cached = ("AWS4" + self.access.secret).encode()
            for part in (day, region, "s3", "aws4_request"):
                cached = hmac.new(cached, part.encode(), hashlib.sha256).digest()
            self._keys[(day, region)] = cached
        return cached


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    """A body sent in chunks (`Transfer-Encoding: chunked`)."""
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _error_code(body: bytes) -> str:
    """The `<Code>` of an S3 error document, or empty."""
    found = re.search(rb"<Code>([^<]{1,64})</Code>", body[:4096])
    return found.group(1).decode("ascii", "replace") if found else ""
