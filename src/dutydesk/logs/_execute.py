"""Running a plan: lines in windows read ahead in a thread, parsed by DuckDB window by window.

DuckDB scans an Arrow stream on one thread but an Arrow table on all of them, so lines are cut
into windows of about WINDOW_BYTES: a thread reads (and un-gzips) the next window while DuckDB
parses the current one on every core. Grouped counts are added up over the windows (the values
for percentiles are kept as lists per group, as DuckDB's exact quantile would keep them anyway);
rows go out window by window. Memory stays at a few windows however big the files are.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dutydesk.logs import _engine
from dutydesk.logs._engine import Plan
from dutydesk.logs._report import Report
from dutydesk.logs._sources import SCHEMA, LineStream

WINDOW_BYTES = 8 << 20
WINDOW = "log_window"
_DONE = object()


class ReadAhead:
    """Windows (Arrow tables) of a line stream, read by a thread one window ahead."""

    def __init__(self, stream: LineStream) -> None:
        self.stream = stream
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, name="log-read-ahead", daemon=True)

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            batches: list[pa.RecordBatch] = []
            size = 0
            for batch in self.stream.batches():
                batches.append(batch)
                size += batch.nbytes
                if size >= WINDOW_BYTES:
                    if not self._put(pa.Table.from_batches(batches, SCHEMA)):
                        return
                    batches, size = [], 0
            if batches:
                self._put(pa.Table.from_batches(batches, SCHEMA))
        except BaseException as error:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(error)
        finally:
            self._put(_DONE)

    def __iter__(self) -> Iterator[pa.Table]:
        self.thread.start()
        try:
            while (item := self.queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()
            self.thread.join()


def windows(
    connection: duckdb.DuckDBPyConnection, stream: LineStream, *, with_file: bool
) -> Iterator[str]:
    """Register each window of `stream` as WINDOW; at least one (maybe empty) window.

    With `with_file`, a window also has each line's `file` name: a dictionary column over the
    file list, so no join (which would not keep the lines' order) is needed.
    """
    names = pa.array(stream.files.files, pa.string())
    seen = False
    for table in ReadAhead(stream):
        seen = True
        connection.register(WINDOW, _with_file(table, names) if with_file else table)
        yield WINDOW
        # Registered tables stay alive until unregistered: without this, every window would.
        connection.unregister(WINDOW)
    if not seen:
        empty = SCHEMA.empty_table()
        connection.register(WINDOW, _with_file(empty, names) if with_file else empty)
        yield WINDOW


def _with_file(table: pa.Table, names: pa.Array) -> pa.Table:
    ids = table.column("file_id").combine_chunks()
    return table.append_column("file", pa.DictionaryArray.from_arrays(ids, names))


def aggregate(
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    top: int | None,
    sources: Iterator[str],
    files: list[str],
    report: Report,
) -> pa.Table:
    """Grouped counts (and percentiles) over every source, ordered and cut to `top`."""
    partials = []
    for source in sources:
        sql = _engine.build_sql(plan, source)
        partials.append(connection.execute(sql, plan.params).to_arrow_table())
    connection.register("log_partials", pa.concat_tables(partials))
    grouped = connection.execute(_engine.combine_sql(plan)).to_arrow_table()
    ok = grouped.column("_ok")
    bad = grouped.filter(pc.invert(ok))
    if bad.num_rows:
        report.add_unparsed(files, bad.select(["_bad_file", "count", "_sample"]))
    connection.register("log_groups", grouped.filter(ok))
    return connection.execute(_engine.final_sql(plan, top)).to_arrow_table()


def _split(table: pa.Table, columns: tuple[str, ...]) -> tuple[pa.Table, pa.Table]:
    """(rows that parsed, (file id, count, sample) of those that did not)."""
    ok = table.column("_ok")
    good = table.filter(ok).select(list(columns))
    bad = table.filter(pc.invert(ok))
    if bad.num_rows:
        # An unparsed block of a multiline format counts as the lines it holds.
        lines = pc.add(pc.count_substring(bad.column("_line"), "\n"), 1)
        bad = bad.append_column("_lines", lines).group_by("file_id", use_threads=False)
        bad = bad.aggregate([("_lines", "sum"), ("_line", "first")])
        bad = bad.select(["file_id", "_lines_sum", "_line_first"])
    return good, bad


def _row_tables(
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    sources: Iterator[str],
    files: list[str],
    report: Report,
) -> Iterator[pa.Table]:
    for source in sources:
        table = connection.execute(_engine.build_sql(plan, source), plan.params).to_arrow_table()
        good, bad = _split(table, plan.columns)
        if bad.num_rows:
            report.add_unparsed(files, bad)
        yield good


def rows(
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    top: int | None,
    sources: Iterator[str],
    files: list[str],
    report: Report,
) -> pa.Table:
    """The rows that pass the filters (the first `top` of them), in file order."""
    parts: list[pa.Table] = []
    kept = 0
    for good in _row_tables(connection, plan, sources, files, report):
        if top is not None and kept + good.num_rows >= top:
            parts.append(good.slice(0, top - kept))
            break
        parts.append(good)
        kept += good.num_rows
    return pa.concat_tables(parts)


def save(
    connection: duckdb.DuckDBPyConnection,
    plan: Plan,
    sources: Iterator[str],
    files: list[str],
    report: Report,
    target: Path,
) -> int:
    """Write the rows that pass the filters to Parquet file `target` (atomically); their count."""
    temporary = target.with_name(f".{target.name}.tmp")
    written = 0
    writer: pq.ParquetWriter | None = None
    try:
        for good in _row_tables(connection, plan, sources, files, report):
            if writer is None:
                writer = pq.ParquetWriter(temporary, good.schema, compression="zstd")
            if good.num_rows:
                writer.write_table(good)
                written += good.num_rows
    finally:
        if writer is not None:
            writer.close()
    temporary.replace(target)
    return written
