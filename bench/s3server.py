"""A minimal S3-compatible file server and a latency proxy, for the S3 log benchmark and tests.

`S3FileServer` serves a folder as buckets (its sub-folders), path-style: GET and HEAD of an
object (with a `Range` of bytes), and ListObjectsV2 (`prefix`, `delimiter`, `max-keys`,
`continuation-token`, `start-after`). Requests are not checked for a signature: any, or none,
is accepted. ETags are the objects' MD5s, as S3 gives for objects uploaded whole, so
tools that check them (rclone) are satisfied. The folder is indexed when the server starts and
again on `reindex()`.

`LatencyProxy` forwards every request to an upstream server after waiting `latency` seconds,
as a bucket in another region does: many client connections at once, kept alive, each with
its own kept-alive connection upstream.

Both speak just enough HTTP/1.1 by hand on asyncio streams (uvloop when installed), one event
loop thread each, so neither is what bounds a client at thousands of requests a second; a
thread per connection and `http.server`'s header parsing cost several times more CPU, which a
loaded two-core machine does not have to spare. Run alone: `python bench/s3server.py FOLDER`
serves a folder, `python bench/s3server.py --proxy http://127.0.0.1:PORT --latency-ms 50`
delays requests to it.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = ["LatencyProxy", "S3FileServer"]


def _parse_head(raw: bytes) -> tuple[str, str, dict[str, str]]:
    """(method or status, target, headers in lower case) of a request's or response's head."""
    lines = raw.decode("latin-1").split("\r\n")
    first, second, _ = (lines[0] + "  ").split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return first, second, headers


def _response(status: str, headers: dict[str, str], body: bytes, head_only: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name != "Content-Length"]
    lines.append(f"Content-Length: {headers.get('Content-Length', len(body))}")
    text = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    return text if head_only else text + body


@dataclass(frozen=True)
class _Object:
    path: Path
    size: int
    etag: str
    modified: float

    @property
    def head(self) -> bytes:
        """The head of a whole GET's response."""
        fields = {
            "ETag": f'"{self.etag}"',
            "Last-Modified": formatdate(self.modified, usegmt=True),
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Content-Length": str(self.size),
        }
        return _response("200 OK", fields, b"", True)


class _Background:
    """An asyncio server on a loopback port, run by its own event loop in a background thread
    (uvloop when installed: one thread serves hundreds of kept-alive connections for less
    CPU than a thread each)."""

    def __init__(self, port: int) -> None:
        self.requests: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            self._loop = uvloop.new_event_loop()
        except ImportError:
            self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            # reuse_port: several processes may serve one port, the kernel spreading connections
            asyncio.start_server(self._serve, "127.0.0.1", port, backlog=1024, reuse_port=True)
        )
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1  # on the loop's thread only

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                method, target, headers = _parse_head(raw[:-4])
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                writer.write(await self.respond(method, target, headers, raw + body))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            await self.closed()

    async def respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> bytes:
        raise NotImplementedError

    async def closed(self) -> None:
        """One client connection ended."""


class S3FileServer(_Background):
    """A folder served as S3 buckets on loopback (each sub-folder a bucket)."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        super().__init__(port)
        self.folder = folder
        self.reindex()

    async def respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> bytes:
        return self.answer(method, target, headers)

    def reindex(self) -> None:
        """Index every object again (after files were written, changed or removed)."""
        objects: dict[str, dict[str, _Object]] = {}
        for bucket in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            found = {}
            for path in bucket.rglob("*"):
                if path.is_file():
                    data = path.read_bytes()
                    key = path.relative_to(bucket).as_posix()
                    found[key] = _Object(
                        path, len(data), hashlib.md5(data).hexdigest(), path.stat().st_mtime
                    )
            objects[bucket.name] = found
        self._objects = objects
        self._keys = {bucket: sorted(found) for bucket, found in objects.items()}
        self._heads = {
            f"/{bucket}/{quote(key)}": (item, item.head)
            for bucket, found in objects.items()
            for key, item in found.items()
        }

    def answer(self, method: str, target: str, headers: dict[str, str]) -> bytes:
        """The whole response to one request."""
        whole = self._heads.get(target) if method == "GET" and "range" not in headers else None
        if whole is not None:  # the common case first: a whole object
            try:
                data = whole[0].path.read_bytes()
            except OSError:
                return self._error("404 Not Found", "NoSuchKey", False)
            self.count("GET")
            return whole[1] + data
        parts = urlsplit(target)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        head = method == "HEAD"
        if bucket not in self._objects:
            return self._error("404 Not Found", "NoSuchBucket", head)
        if not key:
            if method == "GET" and "location" in query:
                self.count("location")
                body = b'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint/>'
                return _response("200 OK", {"Content-Type": "application/xml"}, body, head)
            if head:
                self.count("HEAD")
                return _response("200 OK", {}, b"", head)
            self.count("LIST")
            return self._list(bucket, query)
        if method not in ("GET", "HEAD"):
            return self._error("405 Method Not Allowed", "MethodNotAllowed", head)
        self.count(method)
        found = self._objects[bucket].get(key)
        if found is None:
            return self._error("404 Not Found", "NoSuchKey", head)
        try:
            data = b"" if head else found.path.read_bytes()
        except OSError:
            return self._error("404 Not Found", "NoSuchKey", head)
        fields = {
            "ETag": f'"{found.etag}"',
            "Last-Modified": formatdate(found.modified, usegmt=True),
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        wanted = headers.get("range", "")
        if wanted.startswith("bytes=") and not head:
            first, _, last = wanted[6:].partition("-")
            start = int(first) if first else max(found.size - int(last), 0)
            end = min(int(last) if first and last else found.size - 1, found.size - 1)
            fields["Content-Range"] = f"bytes {start}-{end}/{found.size}"
            return _response("206 Partial Content", fields, data[start : end + 1], head)
        if head:
            fields["Content-Length"] = str(found.size)
        return _response("200 OK", fields, data, head)

    def _list(self, bucket: str, query: dict[str, str]) -> bytes:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        most = min(int(query.get("max-keys", "1000") or 1000), 1000)
        after = query.get("continuation-token") or query.get("start-after", "")
        keys = self._keys[bucket]
        index = bisect.bisect_right(keys, after) if after else bisect.bisect_left(keys, prefix)
        contents: list[str] = []
        folders: list[str] = []
        last = ""
        truncated = False
        while index < len(keys):
            key = keys[index]
            if not key.startswith(prefix):
                break
            if len(contents) + len(folders) == most:
                truncated = True
                break
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                folder = key[: cut + len(delimiter)]
                folders.append(folder)
                last = keys[bisect.bisect_left(keys, folder + "\U0010ffff") - 1]
                index = bisect.bisect_left(keys, folder + "\U0010ffff")
                continue
            found = self._objects[bucket][key]
            modified = dt.datetime.fromtimestamp(found.modified, dt.UTC)
            contents.append(
                f"<Contents><Key>{escape(key)}</Key>"
                f"<LastModified>{modified:%Y-%m-%dT%H:%M:%S.000Z}</LastModified>"
                f"<ETag>&quot;{found.etag}&quot;</ETag><Size>{found.size}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
            last = key
            index += 1
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<KeyCount>{len(contents) + len(folders)}</KeyCount><MaxKeys>{most}</MaxKeys>"
            + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
            + f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            + (
                f"<NextContinuationToken>{escape(last)}</NextContinuationToken>"
                if truncated
                else ""
            )
            + "".join(contents)
            + "".join(
                f"<CommonPrefixes><Prefix>{escape(folder)}</Prefix></CommonPrefixes>"
                for folder in folders
            )
            + "</ListBucketResult>"
        ).encode()
        return _response("200 OK", {"Content-Type": "application/xml"}, body, False)

    def _error(self, status: str, code: str, head: bool) -> bytes:
        self.count(code)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{code}</Message></Error>"
        ).encode()
        return _response(status, {"Content-Type": "application/xml"}, body, head)

    def url(self, bucket: str, key: str) -> str:
        """The path-style URL of an object (for plain HTTP clients)."""
        return f"{self.endpoint}/{bucket}/{quote(key)}"


class LatencyProxy(_Background):
    """Forwards every request to `upstream` ("http://host:port") after `latency` seconds,
    each client connection over its own kept-alive connection upstream."""

    def __init__(self, upstream: str, latency: float, port: int = 0) -> None:
        super().__init__(port)
        host, _, port_text = upstream.split("://", 1)[-1].rstrip("/").partition(":")
        self.upstream = (host, int(port_text or 80))
        self.latency = latency
        self.in_flight = 0
        self.most_in_flight = 0  # requests held at once, at the most
        self._links: dict[asyncio.Task[None] | None, tuple[Any, Any]] = {}

    async def respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> bytes:
        self.count(method)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        task = asyncio.current_task()
        link = self._links.get(task)
        if link is None:
            link = await asyncio.open_connection(*self.upstream)
            link[1].get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._links[task] = link
        reader, writer = link
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        _, _, answer = _parse_head(head[:-4])
        size = int(answer.get("content-length", "0") or 0)
        body = b"" if method == "HEAD" or not size else await reader.readexactly(size)
        return head + body

    async def closed(self) -> None:
        link = self._links.pop(asyncio.current_task(), None)
        if link is not None:
            link[1].close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve FOLDER as S3 buckets on loopback, or (--proxy URL) delay requests "
        "to a server; prints the endpoint, then serves until interrupted."
    )
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--proxy", default="", help="forward to this server instead")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the proxy's delay")
    args = parser.parse_args()
    if args.proxy:
        front: _Background = LatencyProxy(args.proxy, args.latency_ms / 1000, args.port)
    elif args.folder is not None:
        front = S3FileServer(args.folder, args.port)
    else:
        parser.error("give a FOLDER to serve or --proxy URL")
    front.start()
    print(front.endpoint, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        front.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
