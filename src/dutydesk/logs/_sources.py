"""The lines of a query's files as Arrow batches, in bounded memory.

Files are listed and checked against the allowed roots in `_files`. They are read here rather
than by DuckDB's CSV reader: the CSV reader spends about 0.2 ms opening each of tens of
thousands of small gzip files, and one damaged file aborts its whole query. Here each file is
read (and un-gzipped) on its own, a file that cannot be read is reported and skipped, and the
lines reach DuckDB as a stream of Arrow batches (`file_id`, `line`) cut at newlines with numpy,
without a Python object per line.
"""

from __future__ import annotations

import ctypes
import functools
import gzip
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from dutydesk.logs._files import (
    GZIP_MAGIC,
    STREAM_BYTES,
    UNREADABLE_GZIP,
    FileList,
    Problem,
    Roots,
    SourceError,
    gunzip,
    list_local,
    read_small,
    text_of,
)
from dutydesk.logs.formats import JAVA_EVENTS

__all__ = [
    "GZIP_MAGIC",
    "SCHEMA",
    "STREAM_BYTES",
    "UNREADABLE_GZIP",
    "FileList",
    "LineStream",
    "Problem",
    "Roots",
    "SourceError",
    "gunzip",
    "lines_batch",
    "list_local",
    "read_small",
    "text_of",
]

BATCH_BYTES = 2 << 20  # text per Arrow batch: several per window, spread over DuckDB threads
GROUP_BYTES = 1 << 20  # small files on disk read by one thread task
SCHEMA = pa.schema([("file_id", pa.int32()), ("line", pa.large_string())])
Progress = Callable[[int], None]
Opener = Callable[[str], BinaryIO]
# Fetches objects (URLs, listed sizes): each one's text, un-gzipped, or why not, in that order.
Fetch = Callable[[list[str], list[int]], Iterator[bytes | Problem]]


def _read_chunks(
    path: str, problems: list[Problem], progress: Progress | None, opener: Opener | None = None
) -> Iterator[bytes]:
    """A big file in chunks of about STREAM_BYTES, each ending at a newline.

    Progress counts bytes of the file on disk (compressed bytes for a gzip file). `opener`
    opens what is not a local path (an S3 object, read as it streams).
    """
    try:
        with opener(path) if opener is not None else open(path, "rb") as raw:
            zipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            handle = gzip.GzipFile(fileobj=raw, mode="rb") if zipped else raw
            rest, done = b"", 0
            while chunk := handle.read(STREAM_BYTES):
                if progress:
                    position = raw.tell()
                    progress(position - done)
                    done = position
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    rest += chunk
                    continue
                yield rest + chunk[: cut + 1]
                rest = chunk[cut + 1 :]
            if rest:
                yield rest
    except OSError as error:
        problems.append(Problem(path, f"stopped reading: {error.strerror or error}"))
    except UNREADABLE_GZIP as error:
        problems.append(Problem(path, f"stopped reading: damaged gzip data ({error})"))


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


@functools.cache
def steady_malloc() -> None:
    """Give big buffers back to the system as soon as they are freed (glibc only).

    glibc raises its mmap threshold each time a big block is freed, after which the few-MB
    buffers a log read makes come from the heap, which fragments and keeps growing with the
    file's size. A fixed threshold of 4 MiB keeps reading a huge file in constant memory.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 4 << 20)
    except (OSError, AttributeError):  # not glibc: its allocator has its own policy
        return


def _utf8(data: bytes) -> bytes:
    """`data` as valid UTF-8: bytes that are not become U+FFFD (DuckDB needs valid text)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")
    return data


def lines_batch(texts: list[bytes], file_ids: list[int]) -> pa.RecordBatch:
    """One Arrow batch of the non-empty lines of `texts` (without line ends) and their file ids.

    Lines never run across texts: each text gets a final newline if it lacks one. The line
    bytes are copied once (newlines dropped by `bytes.replace`); offsets and ids are numpy.
    """
    texts = [text if text.endswith(b"\n") else text + b"\n" for text in texts]
    joined = b"".join(texts)
    if not joined.isascii() or b"\r" in joined:  # rare: fix each text, keeping its bounds
        texts = [_utf8(text).replace(b"\r\n", b"\n") for text in texts]
        joined = b"".join(texts)
    newlines = np.flatnonzero(np.frombuffer(joined, dtype=np.uint8) == 10)
    starts = np.empty(len(newlines), dtype=np.int64)
    if len(newlines):
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
    lengths = newlines - starts
    keep = lengths > 0
    text_ends = np.cumsum(np.fromiter((len(text) for text in texts), np.int64, len(texts)))
    ids = np.asarray(file_ids, dtype=np.int32)[np.searchsorted(text_ends, newlines, side="right")]
    ids = np.ascontiguousarray(ids[keep])
    lengths = lengths[keep]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    body = joined.replace(b"\n", b"")
    line_array = pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(offsets), pa.py_buffer(body)
    )
    id_array = pa.Array.from_buffers(pa.int32(), len(ids), [None, pa.py_buffer(ids)])
    return pa.record_batch([id_array, line_array], schema=SCHEMA)


def _events_batch(events: list[str], file_id: int) -> pa.RecordBatch:
    kept = [event for event in events if event.strip()]
    return pa.record_batch(
        [pa.array([file_id] * len(kept), pa.int32()), pa.array(kept, pa.large_string())],
        schema=SCHEMA,
    )


def _java_events(
    chunks: Iterator[bytes], file_id: int, splitter: re.Pattern[str] = JAVA_EVENTS
) -> Iterator[pa.RecordBatch]:
    """Java events: a line that does not start an event (`splitter`) joins the event above."""
    carry = ""
    for chunk in chunks:
        text = carry + _utf8(chunk).decode("utf-8").replace("\r\n", "\n")
        events = splitter.split(text.rstrip("\n"))
        carry = events.pop() + "\n"
        if events:
            yield _events_batch(events, file_id)
    if carry.strip():
        yield _events_batch([carry.rstrip("\n")], file_id)


@dataclass
class LineStream:
    """The lines of a file list as Arrow batches; problems are collected as reading goes."""

    files: FileList
    multiline: bool = False
    events: re.Pattern[str] = JAVA_EVENTS  # where a multiline format's events start
    progress: Progress | None = None
    threads: int = 1  # threads reading small local files
    fetch: Fetch | None = None  # reads S3 objects, many at once (`_s3.S3.fetch_each`)
    opener: Opener | None = None  # opens a big S3 object to stream it

    def _contents(self) -> Iterator[tuple[int, bytes | Problem | None]]:
        """(file id, whole text | problem | None for a big file to stream), in file order.

        Small files are read whole, by `threads` threads (opening and un-gzipping release the
        GIL); big ones are left to `_read_chunks`.
        """
        files = self.files.files
        if self.fetch is not None:
            yield from self._fetched(self.fetch)
            return
        if self.threads <= 1:
            for i, size in enumerate(self.files.sizes):
                yield i, (read_small(files[i]) if size <= STREAM_BYTES else None)
            return
        yield from self._contents_in_threads()

    def _fetched(self, fetch: Fetch) -> Iterator[tuple[int, bytes | Problem | None]]:
        """As `_contents`, for a list with S3 objects: small ones fetched whole, many at once,
        as the fetcher hands them on in order; a big one (by its listed size) left to stream;
        local files (a query may name both) read here."""
        files, sizes = self.files.files, self.files.sizes
        streamed = self.opener is not None
        small = [
            i
            for i in range(len(files))
            if files[i].startswith("s3://") and not (streamed and sizes[i] > STREAM_BYTES)
        ]
        contents = fetch([files[i] for i in small], [sizes[i] for i in small])
        next_small = iter(small)
        upcoming = next(next_small, None)
        for i in range(len(files)):
            if i == upcoming:
                yield i, next(contents)
                upcoming = next(next_small, None)
            elif not files[i].startswith("s3://") and sizes[i] <= STREAM_BYTES:
                yield i, read_small(files[i])
            else:
                yield i, None

    def _groups(self) -> Iterator[list[int]]:
        """File ids in order, grouped to about GROUP_BYTES on disk; a big file alone."""
        group: list[int] = []
        size = 0
        for i, file_size in enumerate(self.files.sizes):
            if file_size > STREAM_BYTES:
                if group:
                    yield group
                yield [i]
                group, size = [], 0
                continue
            group.append(i)
            size += file_size
            if size >= GROUP_BYTES:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _read_group(self, ids: list[int]) -> list[tuple[int, bytes | Problem | None]]:
        files, sizes = self.files.files, self.files.sizes
        return [(i, read_small(files[i]) if sizes[i] <= STREAM_BYTES else None) for i in ids]

    def _contents_in_threads(self) -> Iterator[tuple[int, bytes | Problem | None]]:
        """As `_contents`, groups of files read by `threads` threads, a few groups ahead."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="log-read") as pool:
            pending: deque[Future[list[tuple[int, bytes | Problem | None]]]] = deque()
            groups = self._groups()
            while True:
                while len(pending) < 2 * self.threads:
                    group = next(groups, None)
                    if group is None:
                        break
                    pending.append(pool.submit(self._read_group, group))
                if not pending:
                    return
                yield from pending.popleft().result()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The batches; problems land in `files.problems`."""
        steady_malloc()
        texts: list[bytes] = []
        ids: list[int] = []
        size = 0
        for i, content in self._contents():
            if isinstance(content, Problem):
                self.files.problems.append(content)
                continue
            if content is None:  # a big local file: streamed in chunks
                if texts:
                    yield lines_batch(texts, ids)
                    texts, ids, size = [], [], 0
                path = self.files.files[i]
                opener = self.opener if path.startswith("s3://") else None
                chunks = _read_chunks(path, self.files.problems, self.progress, opener)
                yield from self._file_batches(chunks, i)
                continue
            if self.progress:
                self.progress(self.files.sizes[i] if i < len(self.files.sizes) else len(content))
            if self.multiline:
                yield from _java_events(iter([content]), i, self.events)
                continue
            texts.append(content)
            ids.append(i)
            size += len(content)
            if size >= BATCH_BYTES:
                yield lines_batch(texts, ids)
                texts, ids, size = [], [], 0
        if texts:
            yield lines_batch(texts, ids)

    def _file_batches(self, chunks: Iterator[bytes], file_id: int) -> Iterator[pa.RecordBatch]:
        if self.multiline:
            yield from _java_events(chunks, file_id, self.events)
            return
        for chunk in chunks:
            yield lines_batch([chunk], [file_id])
