"""S3 for log queries: objects listed and fetched many at once, within the roots.

A bucket answers each request after tens of milliseconds (another region, a FUSE mount), so
tens of thousands of small objects read one after another take minutes. Here listing and
fetching go through a small S3 REST client (`_rest`) on one event loop with kept-alive
connections: folders are listed concurrently where the glob allows, and up to
`DUTYDESK_LOG_S3_CONCURRENCY` objects are fetched at once (and un-gzipped), handed on in
listing order with only a bounded number of bytes fetched ahead. An object that cannot be read
is reported and skipped. A big object is streamed (fsspec's S3 file), never held whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, BinaryIO

from dutydesk.logs import _engine
from dutydesk.logs._files import (
    STREAM_BYTES,
    UNREADABLE_GZIP,
    FileList,
    Problem,
    Roots,
    SourceError,
    text_of,
)
from dutydesk.logs._rest import Listed, Loop, S3Error, S3Rest
from dutydesk.settings import Settings

AHEAD_BYTES = 32 << 20  # object bytes fetched ahead of the reader, at most (bounded memory)
FETCH_GROUP = 16  # objects handed to the fetching loop together
_MAGIC = re.compile(r"[*?\[]")


def s3_access(settings: Settings) -> _engine.S3Access:
    """Credentials from the usual AWS environment or profile, and the configured endpoint."""
    import botocore.session

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    endpoint = settings.log_s3_endpoint.strip()
    use_ssl = not endpoint.startswith("http://")
    host = endpoint.split("://", 1)[-1].rstrip("/")
    return _engine.S3Access(
        key_id=frozen.access_key if frozen else "",
        secret=frozen.secret_key if frozen else "",
        session_token=(frozen.token or "") if frozen else "",
        region=str(session.get_config_variable("region") or "us-east-1"),
        endpoint=host,
        use_ssl=use_ssl,
    )


def etag_version(etag: str) -> int:
    """An object's ETag as a number standing for its mtime (-1 without one): the parsed cache
    keys a local file by size and mtime, so an object by size and ETag."""
    if not etag:
        return -1
    return int.from_bytes(hashlib.blake2b(etag.encode(), digest_size=7).digest(), "big")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The keys a glob matches: `*` and `?` within a folder, `**` across folders, `[...]`."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            inside = pattern[i + 1 : end]
            out.append("[" + ("^" + inside[1:] if inside.startswith("!") else inside) + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _bucket_key(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


class S3:
    """Listing and reading objects for one query, limited to the roots."""

    def __init__(self, settings: Settings, roots: Roots) -> None:
        self._access = s3_access(settings)
        self.roots = roots
        self.concurrency = settings.log_s3_concurrency
        self.rest = S3Rest(self._access, pool=self.concurrency)
        self._loop: Loop | None = None
        self._fs: Any = None

    @property
    def loop(self) -> Loop:
        if self._loop is None:
            self._loop = Loop()
        return self._loop

    def close(self) -> None:
        """Close the kept-alive connections and the loop."""
        if self._loop is not None:
            self._loop.run(self.rest.close())
            self._loop.close()
            self._loop = None

    def list_into(self, pattern: str, found: FileList) -> None:
        """Add the objects `pattern` names (a folder: all below it, or a glob) to `found`,
        with their sizes and ETags; objects outside the roots are reported, not added."""
        wildcard = _MAGIC.search(pattern)
        base = pattern[: wildcard.start()].rsplit("/", 1)[0] + "/" if wildcard else pattern
        if not self.roots.holds_url(base):
            raise SourceError(
                f"{pattern} is outside the allowed log roots ({self.roots.describe()}); "
                "set DUTYDESK_LOG_ROOTS to allow it"
            )
        bucket, key_pattern = _bucket_key(pattern)
        try:
            listed = self.loop.run(self._listing(bucket, key_pattern))
        except S3Error as error:
            raise SourceError(f"cannot list {pattern}: {error}") from None
        if not listed:
            raise SourceError(f"no files match {pattern}")
        for item in sorted(listed, key=lambda item: item.key):
            url = f"s3://{bucket}/{item.key}"
            if self.roots.holds_url(url):
                found.add(url, item.size, item.etag, mtime_ns=etag_version(item.etag))
            else:
                found.problems.append(Problem(url, "outside the allowed log roots"))

    async def _listing(self, bucket: str, key_pattern: str) -> list[Listed]:
        if _MAGIC.search(key_pattern):
            return await self._glob(bucket, key_pattern)
        if not key_pattern.strip("/"):
            return await self._below(bucket, "")
        listed = await self._below(bucket, key_pattern.rstrip("/") + "/")
        if listed:
            return listed
        return [
            item for item in await self.rest.list(bucket, key_pattern) if item.key == key_pattern
        ]

    async def _below(self, bucket: str, folder: str) -> list[Listed]:
        """Every object below `folder`: its first level listed by folders, then each sub-folder
        listed whole, all at once (the pages of one listing come one after another)."""
        top = await self.rest.list(bucket, folder, delimiter="/")
        objects = [item for item in top if not item.folder]
        below = [self.rest.list(bucket, item.key) for item in top if item.folder]
        for part in await asyncio.gather(*below):
            objects += part
        return objects

    async def _glob(self, bucket: str, key_pattern: str) -> list[Listed]:
        """The objects matching a glob: folders named by wildcards are found level by level
        (each level's folders listed at once); the last part is matched on a whole listing."""
        regex = glob_regex(key_pattern)
        parts = key_pattern.split("/")
        prefixes = [""]
        level = 0
        while level < len(parts) - 1 and "**" not in parts[level]:
            part = parts[level]
            if not _MAGIC.search(part):
                prefixes = [prefix + part + "/" for prefix in prefixes]
            else:
                matches = glob_regex(part)
                listed = await asyncio.gather(
                    *(self.rest.list(bucket, prefix, delimiter="/") for prefix in prefixes)
                )
                prefixes = [
                    item.key
                    for items in listed
                    for item in items
                    if item.folder and matches.match(item.key.rstrip("/").rsplit("/", 1)[-1])
                ]
            level += 1
        rest = "/".join(parts[level:])
        wildcard = _MAGIC.search(rest)
        fixed = rest[: wildcard.start()] if wildcard else rest
        # A last part without `**` or `/` matches within one folder: list just that level.
        delimiter = "/" if "/" not in rest and "**" not in rest else ""
        listed = await asyncio.gather(
            *(self.rest.list(bucket, prefix + fixed, delimiter) for prefix in prefixes)
        )
        return [
            item for items in listed for item in items if not item.folder and regex.match(item.key)
        ]

    def open(self, url: str) -> BinaryIO:
        """An object opened for reading as it streams (a big file: never held whole)."""
        if self._fs is None:
            import fsspec

            access = self._access
            client: dict[str, str] = {"region_name": access.region}
            if access.endpoint:
                scheme = "https" if access.use_ssl else "http"
                client["endpoint_url"] = f"{scheme}://{access.endpoint}"
            self._fs = fsspec.filesystem(
                "s3",
                key=access.key_id or None,
                secret=access.secret or None,
                token=access.session_token or None,
                client_kwargs=client,
            )
        opened: BinaryIO = self._fs.open(url, "rb", block_size=STREAM_BYTES)
        return opened

    def fetch(self, urls: list[str]) -> list[bytes | Problem]:
        """The objects' bytes as stored (or why not), fetched at once."""
        return list(self.fetch_each(urls, [0] * len(urls), inflate=False))

    def fetch_each(
        self, urls: list[str], sizes: list[int], inflate: bool = True
    ) -> Iterator[bytes | Problem]:
        """Each object's text (un-gzipped) or why it cannot be read, in the order of `urls`.

        Up to `concurrency` objects are fetched at once; no more than AHEAD_BYTES (by `sizes`)
        and about four times `concurrency` objects are fetched ahead of the caller, so memory
        stays bounded however many objects there are.
        """
        if not urls:
            return
        # Objects go to the loop in small groups (one hand-over between threads per group, not
        # per object); a group's objects are fetched at once.
        group = max(1, min(FETCH_GROUP, self.concurrency // 4))
        window = max(1, 4 * self.concurrency // group)
        pending: deque[tuple[Future[list[bytes | Problem]], int]] = deque()
        ahead = 0
        start = 0
        try:
            while True:
                while (
                    start < len(urls)
                    and len(pending) < window
                    and (ahead < AHEAD_BYTES or not pending)
                ):
                    size = sum(sizes[start : start + group])
                    work = self._fetch_group(urls[start : start + group], inflate)
                    pending.append((self.loop.submit(work), size))
                    ahead += size
                    start += group
                if not pending:
                    return
                future, size = pending.popleft()
                ahead -= size
                yield from future.result()
        finally:
            for future, _ in pending:  # the reader stopped early
                future.cancel()

    async def _fetch_group(self, urls: list[str], inflate: bool) -> list[bytes | Problem]:
        return await asyncio.gather(*(self._fetch_one(url, inflate) for url in urls))

    async def _fetch_one(self, url: str, inflate: bool) -> bytes | Problem:
        if not self.roots.holds_url(url):
            return Problem(url, "outside the allowed log roots")
        bucket, key = _bucket_key(url)
        try:
            raw = await self.rest.get(bucket, key)
        except S3Error as error:
            return Problem(url, str(error))
        if not inflate:
            return raw
        try:
            return text_of(raw)
        except UNREADABLE_GZIP as error:
            return Problem(url, f"not a readable gzip file ({error})")
