"""Which files a query reads, and each small file's text: no numpy or DuckDB here. Folders are
read and their files looked up by `_liststat` (C), or, where it was not built, by `os.scandir`
and, for a big listing, Arrow.

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
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

from isal import isal_zlib

native: ModuleType | None
try:  # the listing's `readdir` and `fstatat` in C, without the GIL (see `_liststat.c`)
    from dutydesk.logs import _liststat as native
except ImportError:  # built without a C compiler: folders are listed in Python and Arrow
    native = None

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

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

    # The names added, to add each once: made when first needed (a walk's listing is known to
    # hold each name once, and is usually the only one).
    _seen: set[str] | None = field(default=None, repr=False)

    def _names(self) -> set[str]:
        if self._seen is None:
            self._seen = set(self.files)
        return self._seen

    def add(self, name: str, size: int, etag: str = "", *, mtime_ns: int = -1) -> None:
        """Add a file once (a glob and a folder, or two globs, may both name it)."""
        seen = self._names()
        if name not in seen:
            seen.add(name)
            self.files.append(name)
            self.sizes.append(size)
            self.mtimes.append(mtime_ns)
            if etag:
                self.etags[name] = etag

    def extend(
        self, names: list[str], sizes: list[int], mtimes: list[int], *, unique: bool = False
    ) -> None:
        """Add local files (with their sizes and mtimes), each once; `unique`: `names` holds
        each name once (not checked)."""
        if not self.files:  # the first listing
            if not unique:  # one pass to find a name given twice
                seen = set(names)
                if len(seen) != len(names):
                    self._seen = set()
                    self._add_each(names, sizes, mtimes)
                    return
                self._seen = seen
            self.files += names
            self.sizes += sizes
            self.mtimes += mtimes
            return
        seen = self._names()
        if seen.isdisjoint(names):
            before = len(seen)
            seen.update(names)
            if len(seen) - before == len(names):  # no name twice: nearly always
                self.files += names
                self.sizes += sizes
                self.mtimes += mtimes
                return
            seen.difference_update(names)
        self._add_each(names, sizes, mtimes)

    def _add_each(self, names: list[str], sizes: list[int], mtimes: list[int]) -> None:
        for name, size, mtime in zip(names, sizes, mtimes, strict=True):
            self.add(name, size, mtime_ns=mtime)

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


# A walk that finds more plain files than this looks up their sizes and mtimes in threads that
# run without the GIL (the lookups then go side by side; a Python loop of them cannot), a
# batch at a time while the walk goes on: `_liststat.stats` a folder at a time, or, without it,
# Arrow's file system. Fewer are looked up in the walk's own thread (no threads to start, no
# Arrow to import).
BULK_STAT_FILES = 2048
STAT_BATCH = 1024  # files per lookup handed to a thread once a walk has found that many

# A batch of plain files to look up: a folder and names in it.
_Batch = tuple[str, list[str]]


def _paths_in(folder: str, names: list[str]) -> list[str]:
    prefix = folder if folder.endswith("/") else folder + "/"
    return list(map(prefix.__add__, names))


class _Lookups:
    """Sizes and mtimes of batches of plain files, looked up in threads as they are handed in."""

    # The threads, started by the first big listing, stay for the next ones (each query lists
    # again); they are idle between listings. A forked child starts its own (threads do not
    # survive a fork; see `forget_threads`).
    _threads: ThreadPoolExecutor | None = None
    _threads_lock = threading.Lock()

    def __init__(self) -> None:
        self.batches: list[Future[tuple[list[int], list[int]]]] = []

    @classmethod
    def threads(cls) -> ThreadPoolExecutor:
        with cls._threads_lock:
            if cls._threads is None:
                from concurrent.futures import ThreadPoolExecutor

                cls._threads = ThreadPoolExecutor(min(4, os.cpu_count() or 1), "log-stat")
            return cls._threads

    @classmethod
    def forget_threads(cls) -> None:
        """In a forked child: the parent's threads (and the lock, maybe held then) are not
        there."""
        cls._threads = None
        cls._threads_lock = threading.Lock()

    def hand_in(self, batches: list[_Batch]) -> None:
        self.batches.append(self.threads().submit(_look_up, batches, True))

    def results(self) -> tuple[list[int], list[int]]:
        """Every batch's sizes and mtimes, in the order handed in."""
        sizes: list[int] = []
        mtimes: list[int] = []
        try:
            for batch in self.batches:
                found = batch.result()
                sizes += found[0]
                mtimes += found[1]
        finally:
            for batch in self.batches:
                batch.cancel()
        return sizes, mtimes


os.register_at_fork(after_in_child=_Lookups.forget_threads)


def _look_up(batches: list[_Batch], bulk: bool) -> tuple[list[int], list[int]]:
    """The sizes and mtimes (ns) of the batches' plain files, in order, -1 and -1 for one gone
    or not plain: by `_liststat` a folder at a time, or, where it was not built, by Arrow
    (`bulk`, in a lookup thread: all the paths in one call) or `os.stat` one by one."""
    sizes: list[int] = []
    mtimes: list[int] = []
    if native is not None:
        for folder, names in batches:
            found = cast("tuple[list[int], list[int]]", native.stats(folder, names))
            sizes += found[0]
            mtimes += found[1]
        return sizes, mtimes
    paths = [path for folder, names in batches for path in _paths_in(folder, names)]
    if not bulk:
        _stat_each(paths, sizes, mtimes)
        return sizes, mtimes
    from pyarrow import fs

    try:
        infos = fs.LocalFileSystem().get_file_info(paths)
    # Looked up one by one, each with its own answer: an unreadable folder, or a name that is
    # not UTF-8 (Arrow takes only UTF-8 paths).
    except (OSError, UnicodeError):
        _stat_each(paths, sizes, mtimes)
        return sizes, mtimes
    # Arrow gives a size only to a plain file (its lookup follows a link; the listing said each
    # of these was plain).
    for info in infos:
        size = info.size
        sizes.append(-1 if size is None else size)
        mtimes.append(-1 if size is None else info.mtime_ns)
    return sizes, mtimes


@dataclass
class _Listing:
    """The files a walk found, in order: plain files' sizes and mtimes are looked up as the
    walk goes on, in threads, once it has found many (a folder of 20,000 small logs is listed
    again on every query, the cached ones too), or in the walk's thread at the end."""

    paths: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # positions still to look up
    waiting: list[_Batch] = field(default_factory=list)  # batches not yet handed in, in order
    waiting_files: int = 0
    lookups: _Lookups | None = None
    ahead: dict[str, Future[_Folder]] = field(default_factory=dict)  # folders read ahead
    # Whether a file was added as `known` (a glob's match, a link's target): only folders'
    # walks, each folder walked once, give each path once.
    named: bool = False

    def plain_in(self, folder: str, names: list[str]) -> None:
        """Plain files `names` in `folder`, to look up."""
        paths = _paths_in(folder, names)
        for start in range(0, len(names), STAT_BATCH):
            self._add_pending(
                paths[start : start + STAT_BATCH], (folder, names[start : start + STAT_BATCH])
            )

    def looked_up(self, folder: str, names: list[str], sizes: list[int], mtimes: list[int]) -> None:
        """Files `names` in `folder` with their sizes and mtimes (-1 and -1: gone, not plain)."""
        self.paths += _paths_in(folder, names)
        self.sizes += sizes
        self.mtimes += mtimes

    def read_ahead(self, folders: list[str]) -> None:
        """Have `folders` read (and their files looked up) in the lookup threads, for `_walk`
        to take in its order."""
        threads = _Lookups.threads()
        for folder in folders:
            self.ahead[folder] = threads.submit(_read_folder, folder, True)

    def _add_pending(self, paths: list[str], batch: _Batch) -> None:
        if not paths:
            return
        start = len(self.paths)
        self.paths += paths
        self.sizes += [-1] * len(paths)
        self.mtimes += [-1] * len(paths)
        self.pending += range(start, start + len(paths))
        self.waiting.append(batch)
        self.waiting_files += len(paths)
        if self.lookups is None and len(self.pending) >= BULK_STAT_FILES:
            self.lookups = _Lookups()
        if self.lookups is not None and self.waiting_files >= STAT_BATCH:
            self._hand_in()

    def _hand_in(self) -> None:
        """Hand the waiting batches to the threads."""
        assert self.lookups is not None
        self.lookups.hand_in(self.waiting)
        self.waiting, self.waiting_files = [], 0

    def known(self, path: str, size: int, mtime_ns: int) -> None:
        self.named = True
        self.paths.append(path)
        self.sizes.append(size)
        self.mtimes.append(mtime_ns)

    def add_to(self, found: FileList) -> None:
        """Look the pending files up and add every file to `found`, in order; a file gone (or
        no longer plain) since it was listed is a problem."""
        if self.lookups is not None:  # started by `_add_pending` once the walk found many
            if self.waiting:
                self._hand_in()
            sizes, mtimes = self.lookups.results()
        else:
            sizes, mtimes = _look_up(self.waiting, False)
            self.waiting, self.waiting_files = [], 0
        if len(self.pending) == len(self.paths):  # only plain files: nearly always
            self.sizes, self.mtimes = sizes, mtimes
        else:
            for i, size, mtime in zip(self.pending, sizes, mtimes, strict=True):
                self.sizes[i], self.mtimes[i] = size, mtime
        if -1 in self.sizes:
            kept = [i for i, size in enumerate(self.sizes) if size >= 0]
            for i, size in enumerate(self.sizes):
                if size < 0:
                    found.problems.append(Problem(self.paths[i], _why_not_plain(self.paths[i])))
            self.paths = [self.paths[i] for i in kept]
            self.sizes = [self.sizes[i] for i in kept]
            self.mtimes = [self.mtimes[i] for i in kept]
        found.extend(self.paths, self.sizes, self.mtimes, unique=not self.named)


def _why_not_plain(path: str) -> str:
    """Why a file listed a moment ago could not be looked up as a plain file."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return error.strerror or str(error)
    return "no longer a plain file" if not stat.S_ISREG(info.st_mode) else "changed while listed"


def _stat_each(paths: list[str], sizes: list[int], mtimes: list[int]) -> None:
    """Append the size and mtime (ns) of each of `paths`, or -1 and -1 (gone, not plain)."""
    for path in paths:
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            sizes.append(-1)
            mtimes.append(-1)
            continue
        plain = stat.S_ISREG(info.st_mode)
        sizes.append(info.st_size if plain else -1)
        mtimes.append(info.st_mtime_ns if plain else -1)


# The kinds of entry `_liststat.entries` tells apart, one byte per name.
_PLAIN, _FOLDER, _LINK, _OTHER = 0, 1, 2, 3
# A folder with this many subfolders or more has them read ahead in the lookup threads (their
# names, and their files looked up), while the walk goes through them in order.
READ_AHEAD_FOLDERS = 8


@dataclass
class _Folder:
    """A folder as read: its names in the walk's order, a kind per name and, when it was read
    ahead and holds only plain files, their sizes and mtimes."""

    names: list[str]
    kinds: bytes
    sizes: list[int] | None = None
    mtimes: list[int] | None = None


def _read_folder(folder: str, look_up: bool) -> _Folder:
    """Read `folder` with `_liststat` (or `os.scandir`); with `look_up`, a folder of plain
    files (not too many for one thread) has them looked up too. OSError when it cannot be
    read."""
    if native is None:
        names, kinds = _scan(folder)
    else:
        listed: tuple[list[str], bytes, bool] = native.entries(folder)
        names, kinds, odd = listed
        if odd:  # a name that is not UTF-8: in Python's order, as `_scan` gives
            order = sorted(range(len(names)), key=names.__getitem__)
            names, kinds = [names[i] for i in order], bytes(kinds[i] for i in order)
    if look_up and not any(kinds) and len(names) <= 2 * STAT_BATCH:
        sizes, mtimes = _look_up([(folder, names)], False)
        return _Folder(names, kinds, sizes, mtimes)
    return _Folder(names, kinds)


def _walk(folder: Path, roots: Roots, listing: _Listing, found: FileList, seen: set[str]) -> None:
    """Every file below `folder` (a resolved path inside the roots), symlinks checked: names
    sorted, a subfolder's files where its name falls."""
    key = str(folder)
    ahead = listing.ahead.pop(key, None)
    if key in seen:
        if ahead is not None:
            ahead.cancel()
        return
    seen.add(key)
    try:
        read = ahead.result() if ahead is not None else _read_folder(key, False)
    except OSError as error:
        found.problems.append(Problem(key, error.strerror or str(error)))
        return
    names, kinds = read.names, read.kinds
    if read.sizes is not None and read.mtimes is not None:  # read ahead, looked up
        listing.looked_up(key, names, read.sizes, read.mtimes)
        return
    if not any(kinds):  # only plain files: nearly always
        listing.plain_in(key, names)
        return
    folders = [name for name, kind in zip(names, kinds, strict=True) if kind == _FOLDER]
    # Without `_liststat` the reading holds the GIL: the threads would only queue for it.
    if native is not None and len(folders) >= READ_AHEAD_FOLDERS:
        listing.read_ahead([str(folder / name) for name in folders])
    run: list[str] = []
    for name, kind in zip(names, kinds, strict=True):
        if kind == _PLAIN:
            run.append(name)
            continue
        listing.plain_in(key, run)
        run = []
        if kind == _LINK:
            _add(folder / name, roots, listing, found, seen)
        elif kind == _FOLDER:
            _walk(folder / name, roots, listing, found, seen)
    listing.plain_in(key, run)


def _scan(folder: str) -> tuple[list[str], bytes]:
    """`_liststat.entries` where it was not built: the names by `os.scandir`, sorted, and the
    kind of each from its entry (no `stat`)."""
    with os.scandir(folder) as entries:
        listed = sorted(entries, key=_BY_NAME)
    kinds = bytearray()
    for entry in listed:
        if entry.is_file(follow_symlinks=False):
            kinds.append(_PLAIN)
        elif entry.is_symlink():
            kinds.append(_LINK)
        elif entry.is_dir(follow_symlinks=False):
            kinds.append(_FOLDER)
        else:
            kinds.append(_OTHER)
    return [entry.name for entry in listed], bytes(kinds)


def _add(path: Path, roots: Roots, listing: _Listing, found: FileList, seen: set[str]) -> None:
    """Add `path` (a file, or a folder and all below it) after resolving symlinks."""
    real = path.resolve()
    if not roots.holds_path(real):
        found.problems.append(Problem(str(path), "leads outside the allowed log roots"))
    elif real.is_dir():
        _walk(real, roots, listing, found, seen)
    else:
        try:
            info = real.stat()
        except OSError as error:
            found.problems.append(Problem(str(path), error.strerror or str(error)))
            return
        listing.known(str(real), info.st_size, info.st_mtime_ns)


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
    listing = _Listing()
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
                listing.known(real, info.st_size, info.st_mtime_ns)
            else:
                found.problems.append(Problem(match, "leads outside the allowed log roots"))
        else:
            _add(Path(match), roots, listing, found, seen)
    listing.add_to(found)


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
