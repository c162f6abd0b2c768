"""The parsed cache of log files: ask again, answer at once.

A query over local files parses each file once: its parsed rows (every field of its format,
typed, with `_ok` and the raw line of rows that did not parse) go to segments under
`$DUTYDESK_HOME/logcache` (Arrow IPC files, see `_segments`), and an index (SQLite) keys each
file by its resolved path, size, mtime and format to the segment holding its rows. The next
query over the same files maps only the columns it uses from the segments, without reading
or parsing a line.

The common case, the same glob asked again with nothing changed, is checked whole: each fill
is named by a digest of its files in order with their sizes and mtimes, and a query whose
listing (sizes and mtimes from the listing's own `stat`) has a fill's digest is answered from
that fill's segments without any per-file work in Python. Otherwise each file is looked up: a
file whose size or mtime changed, or that is new, is parsed again into a new segment (its old
rows are no longer served); a file that is gone drops out of the index when it is next listed
under a query's folder or when the cache is pruned (`stats` prunes). The cache serves only
files a query has listed, which `_files` checks against `DUTYDESK_LOG_ROOTS`, and checks each
again itself. Segments are evicted least recently used first when the cache grows beyond
`DUTYDESK_LOG_CACHE_BYTES`.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import os
import shutil
import sqlite3
import time
import uuid
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dutydesk.logs import _engine, _segments
from dutydesk.logs._engine import Plan
from dutydesk.logs._files import STREAM_BYTES, FileList, Roots, _literal_base

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dutydesk.logs._report import Report
    from dutydesk.logs._sources import LineStream
    from dutydesk.settings import Settings

CACHED = "log_cached"
CODES = "log_codes"  # the text of a key's dictionary codes, one table per key
VERSION = 3  # of the index and segments; a cache of another version is emptied
USED_EVERY = 60.0  # seconds: a segment's last use is written at most this often (a write is slow)
FILL_BYTES = 32 << 20  # files (bytes on disk) parsed into one segment, held in memory meanwhile
# A fill parses every field of every line, several times the work of a query that parses only
# its own fields. A query whose fill is deferred (`answer(..., later=...)`) still fills at once
# the files it lacks when they are at most this share of its bytes (a few new or changed files:
# cheaper than parsing them all without the cache); more, and it answers without the cache.
FILL_NOW_SHARE = 0.1
# A segment file the index does not name (or a temporary one), this many seconds old, is what an
# interrupted fill left; younger ones may be a running fill's.
ORPHAN_SECONDS = 3600.0
# A segment is `partial` once a file it holds is no longer served from it (parsed again into
# another segment, gone, evicted): a fill is served whole only while none of its segments is.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        format TEXT NOT NULL, segment TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS entries_segment ON entries (segment)",
    """CREATE TABLE IF NOT EXISTS segments (
        name TEXT PRIMARY KEY, bytes INTEGER NOT NULL, used REAL NOT NULL,
        files INTEGER NOT NULL, format TEXT NOT NULL, fill TEXT NOT NULL, seq INTEGER NOT NULL,
        paths BLOB NOT NULL, partial INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS segments_fill ON segments (fill)",
    """CREATE TRIGGER IF NOT EXISTS entries_replaced BEFORE INSERT ON entries BEGIN
        UPDATE segments SET partial = 1
        WHERE partial = 0 AND name = (SELECT segment FROM entries WHERE path = NEW.path);
    END""",
    """CREATE TRIGGER IF NOT EXISTS entries_deleted AFTER DELETE ON entries BEGIN
        UPDATE segments SET partial = 1 WHERE partial = 0 AND name = OLD.segment;
    END""",
)


_S3_URL = operator.methodcaller("startswith", "s3://")


def _prefixes(roots: Roots) -> tuple[str, ...]:
    """The local roots (resolved) as path prefixes, and the S3 roots as URL prefixes."""
    return tuple(str(root).rstrip("/") + "/" for root in roots.local) + roots.s3


def _inside(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether resolved local `path` lies inside a root (as `Roots.holds_path`, on text)."""
    return path.startswith(prefixes)


def _joined(paths: Sequence[str]) -> bytes:
    return "\0".join(paths).encode("utf-8", "surrogateescape")


def _packed(numbers: Sequence[int]) -> bytes:
    return array("q", numbers).tobytes()


def _fill_key(joined: bytes, sizes: Sequence[int], mtimes: Sequence[int], fmt: str) -> str:
    """What names a fill: its files in order (`joined`) with their sizes and mtimes, and its
    format. A listing with this key is exactly the fill's."""
    digest = hashlib.sha256(joined)
    for part in (b"\0", fmt.encode(), b"\0", _packed(sizes), _packed(mtimes)):
        digest.update(part)
    return digest.hexdigest()


def _all_inside(joined: bytes, count: int, prefixes: tuple[str, ...]) -> bool:
    """Whether each of the `count` paths joined by NUL in `joined` lies inside a root, counted
    without a Python step per path (roots inside roots: per path)."""
    starts = [b"\0" + prefix.encode("utf-8", "surrogateescape") for prefix in prefixes]
    nested = any(a != b and b.startswith(a) for a in starts for b in starts)
    if nested:
        paths = joined.decode("utf-8", "surrogateescape").split("\0")
        return all(_inside(path, prefixes) for path in paths)
    return sum((b"\0" + joined).count(start) for start in starts) == count


def folder_of(settings: Settings) -> Path:
    """Where the cache lives."""
    return settings.home_path / "logcache"


@dataclass(frozen=True)
class Stats:
    """What the cache holds."""

    folder: Path
    files: int
    segments: int
    bytes: int
    limit: int


@dataclass(frozen=True)
class Part:
    """Rows of one segment a query reads: `ids` maps the segment's file ids to the query's
    (-1: not served); None when they are the same and every row is served."""

    segment: str
    ids: list[int] | None


class Cache:
    """The index and segments of one cache folder."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(folder / "index.sqlite", timeout=30, isolation_level=None)
        if self.db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            self._start_over()

    def _start_over(self) -> None:
        """An empty cache of this version (an older one's index and segments removed)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self.db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
                self.db.execute("DROP TABLE IF EXISTS entries")
                self.db.execute("DROP TABLE IF EXISTS segments")
                for pattern in ("*.parquet", f"*{_segments.SUFFIX}"):
                    for path in self.folder.glob(pattern):
                        path.unlink(missing_ok=True)
                for statement in _SCHEMA:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the index."""
        self.db.close()

    def segment_path(self, name: str) -> Path:
        """The file of segment `name`."""
        return self.folder / f"{name}{_segments.SUFFIX}"

    def whole(self, files: FileList, fmt: str, roots: Roots) -> list[tuple[str, int]] | None:
        """The segments (and their file counts) of the fill whose files are exactly `files`
        (same order, sizes and mtimes as listed, every file still served from it, inside the
        roots), in order; None when there is none."""
        if not files.files or len(files.mtimes) != len(files.files) or -1 in files.mtimes:
            return None
        joined = _joined(files.files)
        rows = self.db.execute(
            "SELECT name, files, used, partial FROM segments WHERE fill = ? AND format = ? "
            "ORDER BY seq",
            (_fill_key(joined, files.sizes, files.mtimes, fmt), fmt),
        ).fetchall()
        if (
            not rows
            or sum(row[1] for row in rows) != len(files.files)  # a segment evicted
            or any(row[3] for row in rows)  # a file of it is served from elsewhere, or gone
            or not _all_inside(joined, len(files.files), _prefixes(roots))
        ):
            return None
        names = [row[0] for row in rows]
        if min(row[2] for row in rows) < time.time() - USED_EVERY:
            self._used(names)
        return [(row[0], row[1]) for row in rows]

    def holds(self, fmt: str) -> bool:
        """Whether any file is cached in format `fmt`."""
        found = self.db.execute("SELECT 1 FROM entries WHERE format = ? LIMIT 1", (fmt,))
        return found.fetchone() is not None

    def _used(self, names: Sequence[str]) -> None:
        """Mark segments `names` as used now (for least-recently-used eviction)."""
        now = time.time()
        self.db.executemany(
            "UPDATE segments SET used = ? WHERE name = ?", [(now, n) for n in names]
        )

    def lookup(
        self, files: FileList, fmt: str, roots: Roots
    ) -> tuple[dict[str, list[str]], list[int], dict[str, tuple[int, int]]]:
        """({segment: [paths served from it]}, ids of files to parse, {path: (size, mtime)}).

        A file is served only if it lies inside the roots and its size, mtime and format are
        those it was cached with."""
        known = {
            row[0]: row[1:]
            for row in self.db.execute("SELECT path, size, mtime_ns, format, segment FROM entries")
        }
        served: dict[str, list[str]] = {}
        missing: list[int] = []
        keys: dict[str, tuple[int, int]] = {}
        prefixes = _prefixes(roots)
        mtimes = files.mtimes if len(files.mtimes) == len(files.files) else []
        for i, path in enumerate(files.files):
            size, mtime = (files.sizes[i], mtimes[i]) if mtimes else (-1, -1)
            if mtime < 0:
                try:
                    stat = os.stat(path)
                except OSError:
                    missing.append(i)  # reading it reports the problem
                    continue
                size, mtime = stat.st_size, stat.st_mtime_ns
            keys[path] = (size, mtime)
            entry = known.get(path)
            if entry is not None and entry[:3] == (size, mtime, fmt) and _inside(path, prefixes):
                served.setdefault(entry[3], []).append(path)
            else:
                missing.append(i)
        self._used(list(served))
        return served, missing, keys

    def paths_of(self, segment: str) -> list[str]:
        """The files segment `segment` was written with, in the order of its file ids."""
        found = self.db.execute("SELECT paths FROM segments WHERE name = ?", (segment,))
        row = found.fetchone()
        if row is None:
            return []
        return bytes(row[0]).decode("utf-8", "surrogateescape").split("\0")

    def add(
        self,
        name: str,
        fill: tuple[str, int],
        part: FileList,
        keys: dict[str, tuple[int, int]],
        fmt: str,
        served: list[str],
    ) -> None:
        """Record segment `name` (number `fill[1]` of fill `fill[0]`) as holding the rows of
        `part`'s files, serving those of `served`."""
        size = self.segment_path(name).stat().st_size
        self.db.execute("BEGIN IMMEDIATE")
        try:
            entries = [(path, *keys[path], fmt, name) for path in served if path in keys]
            self.db.execute(
                "INSERT INTO segments (name, bytes, used, files, format, fill, seq, paths, "
                "partial) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    size,
                    time.time(),
                    len(part.files),
                    fmt,
                    *fill,
                    _joined(part.files),
                    int(len(entries) != len(part.files)),  # a file of it not served
                ),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO entries (path, size, mtime_ns, format, segment) "
                "VALUES (?, ?, ?, ?, ?)",
                entries,
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.evict()

    def drop_gone(self, folder_prefixes: list[str], listed: set[str]) -> None:
        """Forget cached files under `folder_prefixes` that are no longer there."""
        for prefix in folder_prefixes:
            rows = self.db.execute(
                "SELECT path FROM entries WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
            gone = [(path,) for (path,) in rows if path not in listed and not os.path.exists(path)]
            self.db.executemany("DELETE FROM entries WHERE path = ?", gone)
        self._drop_empty_segments()

    def prune(self) -> None:
        """Forget files that are gone and segments no file uses; remove segment files an
        interrupted fill left (written but never recorded, or half written)."""
        rows = self.db.execute("SELECT path FROM entries").fetchall()
        gone = [(path,) for (path,) in rows if not os.path.exists(path)]
        self.db.executemany("DELETE FROM entries WHERE path = ?", gone)
        self._drop_empty_segments()
        known = {name for (name,) in self.db.execute("SELECT name FROM segments")}
        old = time.time() - ORPHAN_SECONDS
        for path in self.folder.glob(f"*{_segments.SUFFIX}*"):
            name = path.name.lstrip(".").split(".", 1)[0]
            if name in known and not path.name.startswith("."):
                continue
            try:
                if path.stat().st_mtime < old:  # a fill running now writes newer ones
                    path.unlink(missing_ok=True)
            except OSError:
                continue

    def _drop_empty_segments(self) -> None:
        empty = self.db.execute(
            "SELECT name FROM segments WHERE name NOT IN (SELECT segment FROM entries)"
        ).fetchall()
        for (name,) in empty:
            self.segment_path(name).unlink(missing_ok=True)
            self.db.execute("DELETE FROM segments WHERE name = ?", (name,))

    def evict(self) -> None:
        """Drop least recently used segments until the cache fits its limit."""
        total = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM segments").fetchone()[0]
        if total <= self.limit:
            return
        for name, size in self.db.execute(
            "SELECT name, bytes FROM segments ORDER BY used"
        ).fetchall():
            if total <= self.limit:
                break
            self.db.execute("DELETE FROM entries WHERE segment = ?", (name,))
            self.db.execute("DELETE FROM segments WHERE name = ?", (name,))
            self.segment_path(name).unlink(missing_ok=True)
            total -= size

    def stats(self) -> Stats:
        """What the cache holds (gone files pruned first)."""
        self.prune()
        files = self.db.execute("SELECT count(*) FROM entries").fetchone()[0]
        segments, size = self.db.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM segments"
        ).fetchone()
        return Stats(self.folder, files, segments, size, self.limit)

    def clear(self) -> int:
        """Remove everything; the bytes freed."""
        size = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM segments").fetchone()[0]
        self.db.execute("DELETE FROM entries")
        self.db.execute("DELETE FROM segments")
        for path in self.folder.glob(f"*{_segments.SUFFIX}"):
            path.unlink(missing_ok=True)
        return int(size)


def open_cache(settings: Settings) -> Cache:
    """The cache of these settings."""
    return Cache(folder_of(settings), settings.log_cache_bytes)


def clear_folder(settings: Settings) -> None:
    """Remove the cache folder whole (for a cache whose index cannot be read)."""
    shutil.rmtree(folder_of(settings), ignore_errors=True)


def usable(plan: Plan, files: FileList, save: bool, *, remote: bool = True) -> bool:
    """Whether the cache can answer: counts or rows over local files or S3 objects of a parsed
    format, none of them bigger than STREAM_BYTES (`remote`: the query may list S3 objects)."""
    return (
        plan.fmt is not None
        and not save
        and bool(files.files)
        # An S3 object is keyed by its ETag (as its mtime): one listed without is not cached.
        and (not remote or all(files.etags.get(url) for url in filter(_S3_URL, files.files)))
        # A big file is streamed in bounded memory; the cache is for the many small ones.
        and max(files.sizes, default=0) <= STREAM_BYTES
    )


def _parse_plan(plan: Plan) -> Plan:
    """The plan that parses every field of every line (rows, no filter, no file names)."""
    return replace(
        plan,
        columns=tuple(name for name in plan.columns if name != "file"),
        where=(),
        since=None,
        until=None,
        group_by=(),
        percentiles=None,
        needs_file=False,
        params=[],
    )


def format_key(plan: Plan) -> str:
    """The format as the cache keys files by it: its name and a digest of how its lines are
    parsed (the parsing SQL, how events are cut), so rows parsed otherwise, by another
    version of the format, are not served."""
    fmt = plan.fmt
    assert fmt is not None
    events = fmt.events().pattern if fmt.multiline else ""
    parsing = f"{_engine.build_sql(_parse_plan(plan), 'lines')}\0{events}"
    return f"{fmt.name}:{hashlib.sha256(parsing.encode()).hexdigest()[:16]}"


def _chunks(part: FileList) -> Iterator[FileList]:
    """`part` cut into runs of about FILL_BYTES on disk, in order."""
    chunk, size = FileList(), 0
    for i, path in enumerate(part.files):
        if chunk.files and size + part.sizes[i] > FILL_BYTES:
            yield chunk
            chunk, size = FileList(), 0
        chunk.add(path, part.sizes[i], mtime_ns=part.mtimes[i] if part.mtimes else -1)
        size += part.sizes[i]
    if chunk.files:
        yield chunk


def _missing_part(
    files: FileList, missing: list[int], keys: dict[str, tuple[int, int]]
) -> FileList:
    """The files of `files` numbered `missing`, with their sizes and mtimes."""
    part = FileList()
    if len(missing) == len(files.files) and len(files.mtimes) == len(files.files):
        mtimes = [keys.get(path, (0, -1))[1] for path in files.files]
        part.extend(list(files.files), list(files.sizes), mtimes)
        part.etags.update(files.etags)
        return part
    for i in missing:
        path = files.files[i]
        mtime = keys.get(path, (0, -1))[1]
        part.add(path, files.sizes[i], files.etags.get(path, ""), mtime_ns=mtime)
    return part


def fill(
    settings: Settings,
    plan: Plan,
    files: FileList,
    stream_of: type[LineStream],
    stream_options: dict[str, object],
    roots: Roots,
) -> int:
    """Parse the files of `files` that are not cached yet into the cache (the fill a query
    deferred); the number of files parsed.

    Interrupted (Ctrl-C, a kill), it leaves the cache as it was plus the segments finished:
    a segment is written to a temporary file and renamed, then recorded in one transaction,
    and only recorded segments are served."""

    assert plan.fmt is not None
    key = format_key(plan)
    cache = open_cache(settings)
    connection = _engine.connect(roots, memory_limit=settings.log_query_memory)
    try:
        _, missing, keys = cache.lookup(files, key, roots)
        if missing:
            part = _missing_part(files, missing, keys)
            _fill(cache, connection, plan, part, stream_of, stream_options, keys, key)
        return len(missing)
    finally:
        connection.close()
        cache.close()


def _fill(
    cache: Cache,
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    part: FileList,
    stream_of: type[LineStream],
    stream_options: dict[str, object],
    keys: dict[str, tuple[int, int]],
    key: str,
) -> list[tuple[str, FileList]]:
    """Parse the files of `part` into new segments: [(segment, the files it holds)]; the files
    that could not be read go to `part.problems`."""
    from dutydesk.logs import _execute

    assert plan.fmt is not None
    parse = _parse_plan(plan)
    known = [keys.get(path, (-1, -1)) for path in part.files]
    sizes, mtimes = [size for size, _ in known], [mtime for _, mtime in known]
    fill = _fill_key(_joined(part.files), sizes, mtimes, key)
    written: list[tuple[str, FileList]] = []
    for seq, chunk in enumerate(_chunks(part)):
        stream = stream_of(chunk, **stream_options)  # type: ignore[arg-type]
        parts = []
        for source in _execute.windows(connection, stream, with_file=False):
            result = connection.execute(_engine.build_sql(parse, source), parse.params)
            parts.append(result.to_arrow_table().rename_columns({"_line": "line"}))
        part.problems.extend(chunk.problems)
        bad = {problem.file for problem in chunk.problems}
        served = [path for path in chunk.files if path not in bad]
        if not served:
            continue
        name = uuid.uuid4().hex
        _segments.write(cache.segment_path(name), parts)
        cache.add(name, (fill, seq), chunk, keys, key, served)
        written.append((name, chunk))
    return written


def _query(
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    top: int | None,
    table: pa.Table,
    files: list[str],
    report: Report,
) -> pa.Table:
    """`plan`'s answer over the parsed rows `table` (`file_id` the query's file ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from dutydesk.logs import _execute

    cached_plan = replace(plan, parsed=True, params=[])
    table = _segments.prefiltered(connection, cached_plan, table)
    if not plan.aggregates and _decided(cached_plan, table):
        return _rows_as_filtered(cached_plan, top, table, files)
    table = _segments.decoded_when_few(table)
    if plan.needs_file:
        names = pa.array(files, pa.string())
        ids = table.column("file_id")
        if len(files) > table.num_rows:  # few rows: their names, not a dictionary of all
            table = table.append_column("file", pc.take(names, ids))
        else:
            table = table.append_column(
                "file",
                pa.chunked_array(
                    [pa.DictionaryArray.from_arrays(chunk, names) for chunk in ids.chunks],
                    pa.dictionary(pa.int32(), pa.string()),
                ),
            )
    if plan.aggregates:
        return _aggregate(connection, cached_plan, top, table, files, report)
    connection.register(CACHED, table)
    try:
        return _execute.rows(connection, cached_plan, top, iter([CACHED]), files, report)
    finally:
        connection.unregister(CACHED)


def _decided(plan: Plan, table: pa.Table) -> bool:
    """Whether `table`, filtered by `_segments.prefiltered`, holds just the rows `plan` answers:
    every row parsed (none to test by its raw line), no time window, and every `--where` on a
    dictionary-encoded field (the prefilter tested each of its values as the query would)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if plan.since or plan.until or not pc.all(table.column("_ok")).as_py():
        return False
    return all(
        condition.field in table.column_names
        and pa.types.is_dictionary(table.column(condition.field).type)
        for condition in plan.where
    )


def _rows_as_filtered(plan: Plan, top: int | None, table: pa.Table, files: list[str]) -> pa.Table:
    """The rows of a `_decided` table as `_execute.rows` gives them (first `top`, in file
    order, text as text), without running the query again over them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if top is not None:
        table = table.slice(0, top)
    columns = []
    for name in plan.columns:
        if name == "file":
            column = pc.take(pa.array(files, pa.string()), table.column("file_id"))
        else:
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
        columns.append(column)
    return pa.table(columns, names=list(plan.columns))


def _aggregate(
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    top: int | None,
    table: pa.Table,
    files: list[str],
    report: Report,
) -> pa.Table:
    """Grouped counts (and percentiles) over the parsed rows `table`: one statement, as the
    rows are all at hand (no windows to add up); the rows that did not parse, if any, are
    counted apart for the report.

    A text key is grouped by its dictionary's codes, the codes' text joined to the groups at
    the end (DuckDB groups integers several times faster than text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes: dict[str, str] = {}
    tested = {condition.field for condition in plan.where}
    for name in plan.group_by:
        if name not in table.column_names or name in tested:
            continue  # a time bucket, or a key a --where tests as text
        column = _shared_dictionary(table.column(name))
        if column is None:
            continue
        codes[name] = f"{CODES}_{len(codes)}"
        dictionary = column.chunk(0).dictionary
        index = pa.array(range(len(dictionary)), pa.int32())
        connection.register(codes[name], pa.table({"_code": index, "_text": dictionary}))
        indices = pa.chunked_array([chunk.indices for chunk in column.chunks], pa.int32())
        table = table.set_column(table.column_names.index(name), name, indices)
    connection.register(CACHED, table)
    try:
        if not pc.all(table.column("_ok")).as_py():
            sql = _engine.unparsed_sql(plan, CACHED)
            bad = connection.execute(sql, plan.params).to_arrow_table()
            if bad.num_rows:
                report.add_unparsed(files, bad)
        sql = _engine.at_once_sql(plan, CACHED, top, codes=codes)
        return connection.execute(sql, plan.params).to_arrow_table()
    finally:
        connection.unregister(CACHED)
        for name in codes.values():
            connection.unregister(name)


def _shared_dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """`column` with one dictionary for all its chunks (unified when its segments' differ);
    None when it is not dictionary-encoded."""
    import pyarrow as pa

    if not pa.types.is_dictionary(column.type) or column.num_chunks == 0:
        return None
    first = column.chunk(0).dictionary
    if all(chunk.dictionary.equals(first) for chunk in column.chunks[1:]):
        return column
    return pa.table({"key": column}).unify_dictionaries().column(0)


def _columns(plan: Plan) -> list[str]:
    return ["file_id", "_ok", "line", *plan.used_fields()]


def _read_whole(cache: Cache, plan: Plan, segments: list[tuple[str, int]]) -> pa.Table | None:
    """The rows of a whole fill's segments, their file ids made the query's; None when a
    segment is gone."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = []
    offset = 0
    for name, count in segments:
        table = _segments.read(cache.segment_path(name), _columns(plan))
        if table is None:
            return None
        if offset:
            ids = pc.add(table.column("file_id"), pa.scalar(offset, pa.int32()))
            table = table.set_column(0, "file_id", ids)
        offset += count
        tables.append(table)
    return pa.concat_tables(tables)


def _read_parts(cache: Cache, plan: Plan, parts: list[Part]) -> pa.Table | None:
    """The served rows of `parts`, their file ids made the query's; None when a segment is
    gone."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = []
    for part in parts:
        table = _segments.read(cache.segment_path(part.segment), _columns(plan))
        if table is None:
            return None
        if part.ids is not None:
            ids = pc.take(pa.array(part.ids, pa.int32()), table.column("file_id"))
            table = table.set_column(0, "file_id", ids).filter(pc.greater_equal(ids, 0))
        tables.append(table)
    return pa.concat_tables(tables)


def _in_file_order(served: dict[str, list[str]], files: list[str]) -> bool:
    """Whether reading the segments one after the other gives the files in list order (and
    put `served` in that order)."""
    index = {path: i for i, path in enumerate(files)}
    spans = sorted(
        (min(index[p] for p in paths), max(index[p] for p in paths), name)
        for name, paths in served.items()
        if paths
    )
    for (_, last, _), (first, _, _) in itertools.pairwise(spans):
        if first < last:
            return False
    ordered = {name: sorted(served[name], key=index.__getitem__) for _, _, name in spans}
    served.clear()
    served.update(ordered)
    return True


def _parts(cache: Cache, served: dict[str, list[str]], files: list[str]) -> list[Part]:
    """How each segment's file ids map to the query's, for the files served from it."""
    index = {path: i for i, path in enumerate(files)}
    parts = []
    for segment, paths in served.items():
        wanted = set(paths)
        held = cache.paths_of(segment)
        ids = [index[path] if path in wanted else -1 for path in held]
        parts.append(Part(segment, ids))
    return parts


def answer(
    settings: Settings,
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    top: int | None,
    files: FileList,
    stream_of: type[LineStream],
    stream_options: dict[str, object],
    report: Report,
    roots: Roots,
    patterns: tuple[str, ...],
    later: list[FileList] | None = None,
) -> pa.Table | None:
    """Grouped counts or rows of `plan` over `files`, parsing only the files not cached yet;
    None when no file could be read, or rows would not come out in file order (the caller then
    reads the files as without the cache).

    With `later` (a list), a fill is deferred: when the files not cached are more than
    FILL_NOW_SHARE of the bytes, `files` go to `later` (for `fill` once the answer is out) and
    the answer is None, to be read as without the cache, parsing only the query's fields."""
    assert plan.fmt is not None
    key = format_key(plan)
    cache = open_cache(settings)
    # An S3 client lives as long as its query: objects (listed with ETags) are filled at once.
    deferrable = later is not None and not files.etags
    try:
        if deferrable and not cache.holds(key):  # nothing of this format yet: no file lookups
            assert later is not None
            later.append(files)
            return None
        whole = cache.whole(files, key, roots)
        if whole is not None:
            table = _read_whole(cache, plan, whole)
            if table is not None:
                return _query(connection, plan, top, table, files.files, report)
        served, missing, keys = cache.lookup(files, key, roots)
        if missing:
            unread = sum(files.sizes[i] for i in missing)
            if deferrable and unread > FILL_NOW_SHARE * files.total_bytes:
                assert later is not None
                later.append(files)  # `fill` looks the files up again then
                return None
            part = _missing_part(files, missing, keys)
            written = _fill(cache, connection, plan, part, stream_of, stream_options, keys, key)
            bad = {problem.file for problem in part.problems}
            if not served and not written:
                return None
            for name, chunk in written:
                served.setdefault(name, []).extend(p for p in chunk.files if p not in bad)
            files.problems.extend(part.problems)
        if not plan.aggregates and not _in_file_order(served, files.files):
            return None  # rows go out in file order; these segments would mix them
        folders = sorted(
            _literal_base(p) if _S3_URL(p) else str(Path(_literal_base(p)).expanduser().resolve())
            for p in set(patterns)
        )
        cache.drop_gone(folders, set(files.files))
        prefixes = _prefixes(roots)
        served = {
            segment: [path for path in paths if _inside(path, prefixes)]
            for segment, paths in served.items()
        }
        table = _read_parts(cache, plan, _parts(cache, served, files.files))
        if table is None:
            return None
        return _query(connection, plan, top, table, files.files, report)
    finally:
        cache.close()
