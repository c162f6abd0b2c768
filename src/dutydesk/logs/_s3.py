"""S3 for log queries: listing and reading objects through DuckDB's httpfs, within the roots."""

from __future__ import annotations

import re
from typing import Any, BinaryIO

import duckdb

from dutydesk.logs import _engine
from dutydesk.logs._sources import STREAM_BYTES, FileList, Problem, Roots, SourceError
from dutydesk.settings import Settings


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


class S3:
    """S3 listing and reading through DuckDB's httpfs, on a connection limited to the roots."""

    def __init__(self, settings: Settings, roots: Roots) -> None:
        self._access = s3_access(settings)
        self.connection = _engine.connect(roots, s3=self._access)
        self.roots = roots
        self._fs: Any = None

    def list_into(self, pattern: str, found: FileList) -> None:
        base = pattern.split("*", 1)[0].split("?", 1)[0]
        if not self.roots.holds_url(base.rsplit("/", 1)[0] + "/"):
            raise SourceError(
                f"{pattern} is outside the allowed log roots ({self.roots.describe()}); "
                "set DUTYDESK_LOG_ROOTS to allow it"
            )
        listed = pattern.rstrip("/") + "/**" if not re.search(r"[*?\[]", pattern) else pattern
        try:
            rows = self.connection.execute("SELECT file FROM glob(?)", [listed]).fetchall()
            if not rows and listed != pattern:
                rows = self.connection.execute("SELECT file FROM glob(?)", [pattern]).fetchall()
        except duckdb.Error as error:
            raise SourceError(f"cannot list {pattern}: {error}") from None
        if not rows:
            raise SourceError(f"no files match {pattern}")
        inside = []
        for (url,) in sorted(rows):
            if self.roots.holds_url(url):
                inside.append(url)
            else:
                found.problems.append(Problem(url, "outside the allowed log roots"))
        sizes = self._sizes(inside)
        for url in inside:
            found.add(url, sizes.get(url, 0))

    def _sizes(self, urls: list[str]) -> dict[str, int]:
        """Each object's size (without reading it: DuckDB asks only for what is projected);
        an object whose size cannot be had is read whole, as a small one."""
        if not urls:
            return {}
        try:
            rows = self.connection.execute(
                "SELECT filename, size FROM read_blob(?)", [urls]
            ).fetchall()
        except duckdb.Error:
            return {}
        return {name: int(size or 0) for name, size in rows}

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
        try:
            rows = self.connection.execute(
                "SELECT filename, content FROM read_blob(?)", [urls]
            ).fetchall()
            by_name = {name: bytes(content) for name, content in rows}
            return [by_name.get(url, Problem(url, "not found")) for url in urls]
        except duckdb.Error:
            if len(urls) == 1:
                return [self._fetch_one(urls[0])]
            return [self._fetch_one(url) for url in urls]

    def _fetch_one(self, url: str) -> bytes | Problem:
        try:
            rows = self.connection.execute("SELECT content FROM read_blob(?)", [url]).fetchall()
        except duckdb.Error as error:
            return Problem(url, str(error).split("\n")[0])
        return bytes(rows[0][0]) if rows else Problem(url, "not found")
