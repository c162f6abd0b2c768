"""The parsed cache's segments: Arrow IPC files of parsed rows, read through a memory map.

A segment holds the parsed rows of some files: `file_id` (the file's place in the segment's
own file list), `_ok`, `line` (only where the line did not parse) and every field of the
format, typed; text fields dictionary-encoded. It is written uncompressed, so reading it is
mapping it: a query touches only the columns, and for rows only the parts of them, it uses.
(Parquet was measured against it: decoding the columns a query reads costs more than the
query itself, and rows cut by a filter still decode every column whole.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dutydesk.logs import _engine
from dutydesk.logs._engine import Plan, quote_name

if TYPE_CHECKING:
    import duckdb

SUFFIX = ".arrow"
BATCH_ROWS = 131_072  # rows per record batch: DuckDB scans the batches on all its threads
VALUES = "log_values"


def _encoded(table: pa.Table) -> pa.Table:
    """`table` with its text fields (not `line`) dictionary-encoded, one dictionary each."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name != "line" and pa.types.is_string(column.type):
            column = pc.dictionary_encode(column.combine_chunks())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write(target: Path, parts: Sequence[pa.Table]) -> int:
    """Write the parsed rows `parts` to segment file `target` (atomically); its bytes."""
    table = _encoded(pa.concat_tables(parts))
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table, max_chunksize=BATCH_ROWS)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target.stat().st_size


def read(path: Path, columns: Sequence[str]) -> pa.Table | None:
    """The `columns` of segment file `path`, memory-mapped; None when it is gone or damaged
    (evicted by another process meanwhile)."""
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all().select(list(columns))
    except (OSError, pa.ArrowInvalid, KeyError):
        return None


def _filled(chunk: pa.DictionaryArray) -> pa.Array:
    """The indices of `chunk`, a missing value pointing one past its dictionary."""
    if chunk.indices.null_count == 0:
        return chunk.indices
    return chunk.indices.fill_null(len(chunk.dictionary))


def _value_mask(
    connection: duckdb.DuckDBPyConnection, condition: _engine.Condition, values: pa.Array
) -> pa.Array:
    """Whether `condition` holds for each of `values` and, last, for a missing value."""
    sql, params = _engine.condition_sql(condition)
    with_null = pa.concat_arrays([values, pa.nulls(1, values.type)])
    connection.register(VALUES, pa.table({condition.field: with_null}))
    try:
        found = connection.execute(
            f"SELECT coalesce({sql}, false) AS {quote_name('holds')} FROM {VALUES}",  # noqa: S608
            params,
        ).to_arrow_table()
    finally:
        connection.unregister(VALUES)
    return found.column(0).combine_chunks()


def prefiltered(connection: duckdb.DuckDBPyConnection, plan: Plan, table: pa.Table) -> pa.Table:
    """`table` without the parsed rows that a `--where` on a text field rules out.

    Each condition is evaluated once per distinct value (the dictionary), by the same SQL the
    query runs, then looked up per row; the query itself still applies every condition to the
    rows left. Rows that did not parse stay (they are counted, filtered by their raw line).
    """
    keep: pa.ChunkedArray | None = None
    for condition in plan.where:
        if condition.field not in table.column_names:
            continue
        column = table.column(condition.field)
        if not pa.types.is_dictionary(column.type):
            continue
        masks: dict[tuple[int, int], pa.Array] = {}
        chunks = []
        for chunk in column.chunks:
            # Chunks of one segment share their dictionary: evaluate it once.
            key = (chunk.dictionary.buffers()[1].address, len(chunk.dictionary))
            if key not in masks:
                masks[key] = _value_mask(connection, condition, chunk.dictionary)
            chunks.append(pc.take(masks[key], _filled(chunk)))
        holds = pa.chunked_array(chunks, pa.bool_())
        keep = holds if keep is None else pc.and_(keep, holds)
    if keep is None:
        return table
    return table.filter(pc.or_(keep, pc.invert(table.column("_ok"))))


def decoded_when_few(table: pa.Table) -> pa.Table:
    """`table` with the dictionary columns whose dictionaries outnumber its rows (a filter
    left few) decoded: DuckDB would convert each dictionary whole."""
    for i, column in enumerate(table.columns):
        if not pa.types.is_dictionary(column.type):
            continue
        if sum(len(chunk.dictionary) for chunk in column.chunks) > table.num_rows:
            table = table.set_column(i, table.field(i).name, column.cast(column.type.value_type))
    return table
