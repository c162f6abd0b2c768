"""Which files a query reads, and each small file's text: no numpy, Arrow or DuckDB here.

Globs are checked against the allowed roots before anything is listed, and every file found is
checked again after resolving symlinks. The line stream (`_sources`) and the small-input path
(`_small`) both list and read files through this module.
"""

from __future__ import annotations

import glob as globbing
import operator
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from isal import isal_zlib

STREAM_BYTES = 8 << 20  # files larger than this are read in chunks of this size
GZIP_MAGIC = b"\x1f\x8b"
# Small files are inflated with ISA-L (isal), about a third faster than zlib on these; what a
# damaged or truncated gzip file raises (ISA-L's errors are not zlib's).
UNREADABLE_GZIP: tuple[type[Exception], ...] = (
    zlib.error,
    cast("type[Exception]", isal_zlib.error),
    EOFError,
)


class SourceError(ValueError):
    """A glob that may not or cannot be read (outside the roots, nothing matches)."""


@dataclass(frozen=True)
class Roots:
    """Where queries may read: local folders (resolved) and S3 prefixes."""

    local: tuple[Path, ...]
    s3: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Roots:
        """Roots from the comma-separated `DUTYDESK_LOG_ROOTS` value."""
        local, s3 = [], []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            if item.startswith("s3://"):
                s3.append(item.rstrip("/") + "/")
            else:
                local.append(Path(item).expanduser().resolve())
        return cls(tuple(local), tuple(s3))

    def describe(self) -> str:
        """The roots as the error messages name them."""
        return ", ".join([*(str(path) for path in self.local), *self.s3]) or "(none)"

    def holds_path(self, path: Path) -> bool:
        """Whether resolved `path` lies inside a local root."""
        return any(path == root or path.is_relative_to(root) for root in self.local)

    def holds_url(self, url: str) -> bool:
        """Whether the S3 `url` lies under an S3 prefix (whole path segments, no `..`)."""
        if "/../" in url + "/" or "/./" in url + "/":
            return False
        return any((url.rstrip("/") + "/").startswith(prefix) for prefix in self.s3)


@dataclass
class Problem:
    """A file that was not (fully) read, and why."""

    file: str
    reason: str


@dataclass
class FileList:
    """The files a query reads: local paths and S3 URLs, with their sizes where known."""

    files: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    # Local files' modification times (ns) as listed, -1 where not known: the parsed cache
    # checks a file by its size and mtime without a second `stat`.
    mtimes: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    etags: dict[str, str] = field(default_factory=dict)  # S3 objects' ETags, by URL

    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, name: str, size: int, etag: str = "", *, mtime_ns: int = -1) -> None:
        """Add a file once (a glob and a folder, or two globs, may both name it)."""
        if name not in self._seen:
            self._seen.add(name)
            self.files.append(name)
            self.sizes.append(size)
            self.mtimes.append(mtime_ns)
            if etag:
                self.etags[name] = etag

    def extend(self, names: list[str], sizes: list[int], mtimes: list[int]) -> None:
        """Add local files (with their sizes and mtimes), each once."""
        if not self._seen.isdisjoint(names):
            for name, size, mtime in zip(names, sizes, mtimes, strict=True):
                self.add(name, size, mtime_ns=mtime)
            return
        self._seen.update(names)
        self.files += names
        self.sizes += sizes
        self.mtimes += mtimes

    @property
    def total_bytes(self) -> int:
        """Bytes on disk or in the bucket (as listed)."""
        return sum(self.sizes)


_MAGIC = re.compile(r"[*?\[]")
_BY_NAME = operator.attrgetter("name")


def _literal_base(pattern: str) -> str:
    """The part of a glob before its first wildcard, cut at a path separator."""
    match = _MAGIC.search(pattern)
    if match is None:
        return pattern
    return pattern[: match.start()].rsplit("/", 1)[0] or "/"


def _walk(folder: Path, roots: Roots, found: FileList, seen: set[str]) -> None:
    """Every file below `folder` (a resolved path inside the roots), symlinks checked."""
    if str(folder) in seen:
        return
    seen.add(str(folder))
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=_BY_NAME)
    except OSError as error:
        found.problems.append(Problem(str(folder), error.strerror or str(error)))
        return
    # Plain files (nearly all) are added a run at a time: a folder of 20,000 small logs is
    # listed again on every query, the cached ones too.
    names: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            info = entry.stat(follow_symlinks=False)
            names.append(entry.path)
            sizes.append(info.st_size)
            mtimes.append(info.st_mtime_ns)
            continue
        found.extend(names, sizes, mtimes)
        names, sizes, mtimes = [], [], []
        if entry.is_symlink():
            _add(Path(entry.path), roots, found, seen)
        elif entry.is_dir(follow_symlinks=False):
            _walk(Path(entry.path), roots, found, seen)
    found.extend(names, sizes, mtimes)


def _add(path: Path, roots: Roots, found: FileList, seen: set[str]) -> None:
    """Add `path` (a file, or a folder and all below it) after resolving symlinks."""
    real = path.resolve()
    if not roots.holds_path(real):
        found.problems.append(Problem(str(path), "leads outside the allowed log roots"))
    elif real.is_dir():
        _walk(real, roots, found, seen)
    else:
        try:
            info = real.stat()
        except OSError as error:
            found.problems.append(Problem(str(path), error.strerror or str(error)))
            return
        found.add(str(real), info.st_size, mtime_ns=info.st_mtime_ns)


def list_local(pattern: str, roots: Roots, found: FileList) -> None:
    """Add the files `pattern` names (a file, a folder: everything under it, or a glob).

    The glob's fixed part must lie inside a root; every match is resolved (symlinks, `..`)
    and checked again, folder by folder, so a link cannot lead out.
    """
    base = Path(_literal_base(pattern)).expanduser()
    if not roots.holds_path(base.resolve()):
        raise SourceError(
            f"{pattern} is outside the allowed log roots ({roots.describe()}); "
            "set DUTYDESK_LOG_ROOTS to allow it"
        )
    expanded = Path(pattern).expanduser()
    if _MAGIC.search(pattern):
        matches = sorted(globbing.glob(str(expanded), recursive=True))
    else:
        matches = [str(expanded)] if os.path.lexists(expanded) else []
    if not matches:
        raise SourceError(f"no files match {pattern}")
    seen: set[str] = set()
    real_folders: dict[str, str] = {}
    for match in matches:
        folder, _, _name = match.rpartition("/")
        if folder not in real_folders:
            real_folders[folder] = os.path.realpath(folder or "/")
        try:
            info = os.lstat(match)
        except OSError as error:
            found.problems.append(Problem(match, error.strerror or str(error)))
            continue
        if stat.S_ISREG(info.st_mode):
            real = os.path.join(real_folders[folder], _name)
            if roots.holds_path(Path(real)):
                found.add(real, info.st_size, mtime_ns=info.st_mtime_ns)
            else:
                found.problems.append(Problem(match, "leads outside the allowed log roots"))
        else:
            _add(Path(match), roots, found, seen)


def gunzip(raw: bytes) -> bytes:
    """All members of a gzip stream (rotated logs are often several members concatenated)."""
    parts: list[bytes] = []
    while raw:
        inflater = isal_zlib.decompressobj(47)
        parts.append(inflater.decompress(raw))
        if not inflater.eof:
            raise EOFError("the gzip stream ends early (truncated file)")
        raw = inflater.unused_data
        while raw[:1] == b"\x00":  # padding some writers leave between members
            raw = raw[1:]
    return parts[0] if len(parts) == 1 else b"".join(parts)


def text_of(raw: bytes) -> bytes:
    return gunzip(raw) if raw[:2] == GZIP_MAGIC else raw


def read_small(path: str) -> bytes | Problem:
    try:
        with open(path, "rb", buffering=0) as handle:  # one read of the whole small file
            return text_of(handle.readall())
    except OSError as error:
        return Problem(path, error.strerror or str(error))
    except UNREADABLE_GZIP as error:
        return Problem(path, f"not a readable gzip file ({error})")
