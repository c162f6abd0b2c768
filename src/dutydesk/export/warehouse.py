"""The warehouse: a local folder or any fsspec URL (`s3://bucket/prefix` included).

Layout: `<warehouse>/<study>/<table key>/exportDate=<date>/part-<run key>.parquet`, and each
table's attachment files under `<warehouse>/<study>/<table key>/attachments/`. Every file is
written under a temporary name and then moved to its own (a local attachment file is written
unnamed and then linked in, so a killed export leaves no trace of it), so readers never see
half a file and a re-run replaces its files instead of adding rows. DuckDB reads and writes a remote
warehouse through the same fsspec filesystem (`register_filesystem`); S3 credentials, region
and endpoint come from the usual AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`,
`AWS_ENDPOINT_URL`, ...).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import fsspec
from fsspec.utils import get_protocol

from dutydesk.export._sql import quote_literal


@dataclass(frozen=True)
class Warehouse:
    """Where tables are written and read; `location` is a folder path or an fsspec URL."""

    location: str
    _filesystems: dict[str, fsspec.AbstractFileSystem] = field(
        default_factory=dict, compare=False, repr=False
    )
    _folders: set[str] = field(default_factory=set, compare=False, repr=False)  # made already

    @classmethod
    def at(cls, location: str | Path) -> Warehouse:
        """The warehouse at `location`; a plain path is made absolute."""
        text = str(location)
        if get_protocol(text) in ("file", "local"):
            text = str(Path(text.removeprefix("file://")).expanduser().absolute())
        return cls(text.rstrip("/") or "/")

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine."""
        return get_protocol(self.location) in ("file", "local")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of a remote warehouse (made once per warehouse)."""
        protocol = get_protocol(self.location)
        if protocol not in self._filesystems:
            self._filesystems[protocol] = fsspec.filesystem(protocol)
        return self._filesystems[protocol]

    def url(self, *parts: str) -> str:
        """The location of `parts` joined under the warehouse."""
        return "/".join([self.location, *parts])

    def table_url(self, study_id: str, key: str) -> str:
        """Where a table's files live: `<warehouse>/<study>/<table key>`."""
        return self.url(study_id, key)

    def attach(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Let DuckDB on `connection` read and write this warehouse's URLs."""
        if self.is_local:
            return
        protocols = self.fs.protocol
        name = protocols if isinstance(protocols, str) else protocols[0]
        if not connection.filesystem_is_registered(name):
            connection.register_filesystem(self.fs)

    def write_parquet(
        self,
        connection: duckdb.DuckDBPyConnection,
        select: str,
        target: str,
        *,
        before_move: Callable[[str], None] | None = None,
    ) -> int:
        """Write the rows of `select` as the Parquet file `target`; returns the rows written.

        `before_move` is called with the written file's temporary location before the file
        takes its name (to write what the file refers to first).
        """
        folder, _, name = target.rpartition("/")
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        if self.is_local:
            Path(folder).mkdir(parents=True, exist_ok=True)
        else:
            self.attach(connection)
        try:
            rows = _copy_to_parquet(connection, select, temporary)
            if before_move is not None:
                before_move(temporary)
            self._move(temporary, target)
        except BaseException:
            self._remove(temporary)
            raise
        return rows

    def rewrite_parquet(
        self, connection: duckdb.DuckDBPyConnection, target: str, select: Callable[[str], str]
    ) -> None:
        """Replace the Parquet file `target` by the rows of `select(reader)`, where `reader`
        is a FROM item reading the file as it is (its folders' names are not read as columns).
        """
        folder, _, name = target.rpartition("/")
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        reader = f"read_parquet({quote_literal(target)}, hive_partitioning = false)"
        try:
            _copy_to_parquet(connection, select(reader), temporary)
            self._move(temporary, target)
        except BaseException:
            self._remove(temporary)
            raise

    def write_file(self, target: str, data: bytes, *, known_missing: bool = False) -> bool:
        """Write `data` as the file `target` unless it exists; True when it was written.

        `known_missing`: the caller has just seen that `target` does not exist (one look at
        its folder for many files), so it is not looked up again.
        """
        if not known_missing and self.exists(target):
            return False
        folder, _, name = target.rpartition("/")
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        if self.is_local:
            self._make_folder(folder)
            Path(temporary).write_bytes(data)
        else:
            self.fs.pipe_file(temporary, data)
        try:
            self._move(temporary, target)
        except BaseException:
            self._remove(temporary)
            raise
        return True

    def write_new_files(self, folder: str, files: Iterable[tuple[str, bytes]]) -> int:
        """Write each (name, data) of `files` as the file `name` in `folder`, unless a file of
        that name is there already; returns how many were written.

        The caller has looked at `folder` (one listing for many files), so a remote file is
        not looked up again. No file is ever seen half-written under its name, even if the
        process is killed: a local file is written unnamed (O_TMPFILE) and linked in whole,
        which also leaves nothing behind; where the file system cannot, as for a remote
        warehouse, under a temporary name that is then moved.
        """
        if not self.is_local:
            return sum(
                self.write_file(f"{folder}/{name}", data, known_missing=True)
                for name, data in files
            )
        self._make_folder(folder)
        written = 0
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name, data in files:
                written += _write_new_local_file(folder, directory, name, data)
        finally:
            os.close(directory)
        return written

    def _make_folder(self, folder: str) -> None:
        if folder not in self._folders:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)

    def exists(self, target: str) -> bool:
        """Whether the file `target` exists."""
        return Path(target).exists() if self.is_local else bool(self.fs.exists(target))

    def local_file_names(self, folder: str) -> set[str] | None:
        """The names of the files in the local `folder` (empty when it does not exist); None
        for a remote warehouse, whose files are looked up one by one."""
        if not self.is_local:
            return None
        try:
            with os.scandir(folder) as entries:
                return {entry.name for entry in entries}
        except FileNotFoundError:
            return set()

    def has_parquet(self, folder: str) -> bool:
        """Whether `folder` holds any Parquet file (at any depth)."""
        if self.is_local:
            return Path(folder).is_dir() and any(Path(folder).rglob("*.parquet"))
        self.fs.invalidate_cache()
        return bool(self.fs.glob(f"{folder}/**/*.parquet"))

    def _move(self, source: str, target: str) -> None:
        if self.is_local:
            os.replace(source, target)
        else:
            self.fs.mv(source, target)

    def _remove(self, target: str) -> None:
        try:
            if self.is_local:
                Path(target).unlink(missing_ok=True)
            elif self.fs.exists(target):
                self.fs.rm(target)
        except OSError:
            pass  # the temporary file is gone already or cannot be seen: nothing to undo


# Linking an unnamed file in by its /proc path (linkat with AT_SYMLINK_FOLLOW) is Linux's way;
# elsewhere, or on a file system without unnamed files, a file is written under a temporary
# name and moved.
_UNNAMED_FILES = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_NO_UNNAMED_FILES = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def _write_new_local_file(folder: str, directory: int, name: str, data: bytes) -> bool:
    """Write `data` as the file `name` of `folder` (open as `directory`) unless it exists;
    True when it was written. The file takes its name only once all of it is written: one
    step fewer in the folder than a temporary name and a move, and a process killed part-way
    leaves no file at all (the kernel frees an unnamed file when its last descriptor closes).
    """
    if _UNNAMED_FILES:
        try:
            unnamed = os.open(folder, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
        except OSError as error:
            if error.errno not in _NO_UNNAMED_FILES:
                raise
        else:
            try:
                _write_all(unnamed, data)
                os.link(f"/proc/self/fd/{unnamed}", name, dst_dir_fd=directory)
            except FileExistsError:
                return False  # written by an earlier run or another worker: the same content
            finally:
                os.close(unnamed)
            return True
    temporary = f".{name}.{uuid.uuid4().hex}.tmp"
    handle = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=directory
    )
    try:
        try:
            _write_all(handle, data)
        finally:
            os.close(handle)
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)
        raise
    return True


def _write_all(handle: int, data: bytes) -> None:
    """Write all of `data` to the open file `handle` (one write call writes it, nearly always)."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


# Distinct values a column of a row group may have and still be written with a dictionary
# (DuckDB's own limit lets a dictionary grow past 20,000 values).
DICTIONARY_SIZE_LIMIT = 1024


def _copy_to_parquet(connection: duckdb.DuckDBPyConnection, select: str, target: str) -> int:
    """Write the rows of `select` as the Parquet file `target`; returns the rows written."""
    # zstd at level 1: a third faster to write than the default level 3. Format version 2
    # (data page v2, delta encodings; read by Arrow, pandas, R's arrow, DuckDB and Spark): a
    # tenth faster to write than version 1, files 12% smaller. A column of more than
    # DICTIONARY_SIZE_LIMIT distinct values in a row group is written without a dictionary:
    # the ids, stamps and answers of a table are mostly distinct, and hashing each into a
    # dictionary that is then dropped took a fifth of the writing (the files come out within
    # 2% of the size). COPY answers with the number of rows it wrote.
    row = connection.execute(
        f"COPY ({select}) TO {quote_literal(target)} "
        "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION v2, "
        f"DICTIONARY_SIZE_LIMIT {DICTIONARY_SIZE_LIMIT})"
    ).fetchone()
    return int(row[0]) if row else 0
