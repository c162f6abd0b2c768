"""The parsed cache of log files: ask again, answer at once.

A query over local files parses each file once: its parsed rows (every field of its format,
typed, with `_ok` and the raw line of rows that did not parse) go to Parquet segments under
`$DUTYDESK_HOME/logcache`, and an index (SQLite) keys each file by its resolved path, size,
mtime and format to the segment holding its rows. The next query over the same files reads
only the columns it uses from the segments, without reading or parsing a line.

A file whose size or mtime changed, or that is new, is parsed again (its old rows are no longer
served); a file that is gone drops out of the index when it is next listed under a query's
folder or when the cache is pruned (`stats` prunes). The cache serves only files a query has
listed, which `_files` checks against `DUTYDESK_LOG_ROOTS`, and checks each again itself.
Segments are evicted least recently used first when the cache grows beyond
`DUTYDESK_LOG_CACHE_BYTES`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dutydesk.logs._engine import Plan
from dutydesk.logs._files import STREAM_BYTES, FileList, Roots, _literal_base

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dutydesk.logs._report import Report
    from dutydesk.logs._sources import LineStream
    from dutydesk.logs.formats import LogFormat
    from dutydesk.settings import Settings

CACHED = "log_cached"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    format TEXT NOT NULL, segment TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_segment ON entries (segment);
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY, bytes INTEGER NOT NULL, used REAL NOT NULL, files INTEGER NOT NULL
);
"""


def _prefixes(roots: Roots) -> tuple[str, ...]:
    """The local roots (resolved) as path prefixes."""
    return tuple(str(root).rstrip("/") + "/" for root in roots.local)


def _inside(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether resolved local `path` lies inside a root (as `Roots.holds_path`, on text)."""
    return path.startswith(prefixes)


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


class Cache:
    """The index and segments of one cache folder."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(folder / "index.sqlite", timeout=30, isolation_level=None)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the index."""
        self.db.close()

    def segment_path(self, name: str) -> Path:
        """The Parquet file of segment `name`."""
        return self.folder / f"{name}.parquet"

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
        for i, path in enumerate(files.files):
            try:
                stat = os.stat(path)
            except OSError:
                missing.append(i)  # reading it reports the problem
                continue
            keys[path] = (stat.st_size, stat.st_mtime_ns)
            entry = known.get(path)
            if (
                entry is not None
                and entry[:3] == (stat.st_size, stat.st_mtime_ns, fmt)
                and _inside(path, prefixes)
            ):
                served.setdefault(entry[3], []).append(path)
            else:
                missing.append(i)
        now = time.time()
        for name in served:
            self.db.execute("UPDATE segments SET used = ? WHERE name = ?", (now, name))
        return served, missing, keys

    def files_in(self, segment: str) -> int:
        """How many files segment `segment` was written with (some may be served elsewhere)."""
        found = self.db.execute("SELECT files FROM segments WHERE name = ?", (segment,))
        row = found.fetchone()
        return int(row[0]) if row else -1

    def add(
        self, name: str, paths: list[str], keys: dict[str, tuple[int, int]], fmt: str, read: int
    ) -> None:
        """Record segment `name` as serving the rows of `paths` (of the `read` files in it)."""
        size = self.segment_path(name).stat().st_size
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT INTO segments (name, bytes, used, files) VALUES (?, ?, ?, ?)",
                (name, size, time.time(), read),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO entries (path, size, mtime_ns, format, segment) "
                "VALUES (?, ?, ?, ?, ?)",
                [(path, *keys[path], fmt, name) for path in paths if path in keys],
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
        """Forget files that are gone and segments no file uses."""
        rows = self.db.execute("SELECT path FROM entries").fetchall()
        gone = [(path,) for (path,) in rows if not os.path.exists(path)]
        self.db.executemany("DELETE FROM entries WHERE path = ?", gone)
        self._drop_empty_segments()

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
        for path in self.folder.glob("*.parquet"):
            path.unlink(missing_ok=True)
        return int(size)


def open_cache(settings: Settings) -> Cache:
    """The cache of these settings."""
    return Cache(folder_of(settings), settings.log_cache_bytes)


def clear_folder(settings: Settings) -> None:
    """Remove the cache folder whole (for a cache whose index cannot be read)."""
    shutil.rmtree(folder_of(settings), ignore_errors=True)


def usable(plan: Plan, files: FileList, save: bool) -> bool:
    """Whether the cache can answer: counts or rows over local files of a parsed format, none
    of them bigger than STREAM_BYTES."""
    return (
        plan.fmt is not None
        and not save
        and bool(files.files)
        and not any(path.startswith("s3://") for path in files.files)
        # A big file is streamed in bounded memory; the cache is for the many small ones.
        and max(files.sizes, default=0) <= STREAM_BYTES
    )


def _parse_plan(plan: Plan) -> Plan:
    """The plan that parses every field of every line (rows, no filter)."""
    return replace(
        plan,
        where=(),
        since=None,
        until=None,
        group_by=(),
        percentiles=None,
        needs_file=True,
        params=[],
    )


def _fill(
    cache: Cache,
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    stream: LineStream,
    keys: dict[str, tuple[int, int]],
) -> str | None:
    """Parse the files of `stream` into a new segment; its name (None when nothing was read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dutydesk.logs import _engine, _execute

    assert plan.fmt is not None
    parse = _parse_plan(plan)
    name = uuid.uuid4().hex
    target = cache.segment_path(name)
    temporary = target.with_name(f".{name}.tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for source in _execute.windows(connection, stream, with_file=True):
            table = connection.execute(_engine.build_sql(parse, source), parse.params)
            result = table.to_arrow_table().drop_columns(["file_id"])
            result = result.set_column(
                result.schema.get_field_index("file"),
                "file",
                result.column("file").cast(pa.string()),
            )
            result = result.rename_columns(
                ["line" if column == "_line" else column for column in result.column_names]
            )
            if writer is None:
                writer = pq.ParquetWriter(temporary, result.schema, compression="zstd")
            writer.write_table(result, row_group_size=256_000)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        return None
    temporary.replace(target)
    bad = {problem.file for problem in stream.files.problems}
    read = len(stream.files.files)
    cache.add(name, [p for p in stream.files.files if p not in bad], keys, plan.fmt.name, read)
    return name


def _cached_windows(
    cache: Cache,
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    served: dict[str, list[str]],
    files: list[str],
) -> Iterator[str]:
    """Each row group of the segments, cut to the files served from it, as CACHED."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = pa.array(files, pa.string())
    columns = ["_ok", "file", "line", *plan.used_fields()]
    seen = False
    schema: pa.Schema | None = None
    for segment, paths in served.items():
        wanted = pa.array(paths, pa.string())
        whole = len(paths) == cache.files_in(segment)  # every file of it: nothing to cut
        parquet = pq.ParquetFile(cache.segment_path(segment), read_dictionary=["file"])
        schema = parquet.schema_arrow
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=columns)
            # `file` comes dictionary-encoded: look the paths up once per distinct path.
            file = table.column("file").combine_chunks()
            if not whole:
                keep = pc.is_in(file.dictionary, value_set=wanted)
                table = table.filter(pc.take(keep, file.indices))
                file = table.column("file").combine_chunks()
            ids = pc.take(pc.index_in(file.dictionary, value_set=names), file.indices)
            ids = ids.cast(pa.int32())
            table = table.append_column("file_id", ids)
            connection.register(CACHED, table)
            seen = True
            yield CACHED
            connection.unregister(CACHED)
    if not seen and schema is not None:
        empty = schema.empty_table().select(columns)
        connection.register(CACHED, empty.append_column("file_id", pa.array([], pa.int32())))
        yield CACHED


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
) -> pa.Table | None:
    """Grouped counts or rows of `plan` over `files`, parsing only the files not cached yet;
    None when no file could be read, or rows would not come out in file order (the caller then
    reads the files as without the cache)."""
    from dutydesk.logs import _execute

    assert plan.fmt is not None
    fmt: LogFormat = plan.fmt
    cache = open_cache(settings)
    try:
        served, missing, keys = cache.lookup(files, fmt.name, roots)
        if missing:
            part = FileList()
            for i in missing:
                part.add(files.files[i], files.sizes[i])
            stream = stream_of(part, **stream_options)  # type: ignore[arg-type]
            name = _fill(cache, connection, plan, stream, keys)
            bad = {problem.file for problem in part.problems}
            fresh = [path for path in part.files if path not in bad]
            if not served and not fresh:
                return None
            if name is not None:
                served.setdefault(name, []).extend(fresh)
            if not plan.aggregates and not _in_file_order(served, files.files):
                return None  # rows go out in file order; these segments would mix them
            files.problems.extend(part.problems)
        elif not plan.aggregates and not _in_file_order(served, files.files):
            return None
        folders = sorted({str(Path(_literal_base(p)).expanduser().resolve()) for p in patterns})
        cache.drop_gone(folders, set(files.files))
        prefixes = _prefixes(roots)
        served = {
            segment: [path for path in paths if _inside(path, prefixes)]
            for segment, paths in served.items()
        }
        cached_plan = replace(plan, parsed=True, params=[])
        sources = _cached_windows(cache, connection, cached_plan, served, files.files)
        if plan.aggregates:
            return _execute.aggregate(connection, cached_plan, top, sources, files.files, report)
        return _execute.rows(connection, cached_plan, top, sources, files.files, report)
    finally:
        cache.close()
