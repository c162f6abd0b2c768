"""Writing one table of a study job: its Parquet file and the attachment files it names.

As in `_engine`, the SQL here is built from the plan, every identifier and literal going
through `quote_name` / `quote_literal`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from dutydesk.export import _sql, _values
from dutydesk.export._attachments import write_attachment_files
from dutydesk.export._columns import Column, FieldValue
from dutydesk.export._fields import FieldDef
from dutydesk.export._sql import quote_literal
from dutydesk.export.warehouse import Warehouse

if TYPE_CHECKING:
    from dutydesk.export._engine import StudyJob

log = logging.getLogger(__name__)


@dataclass
class TableResult:
    """One table written (or failed) for a study."""

    key: str
    kind: str
    columns: list[Column]
    rows: int = 0
    path: str | None = None
    error: str | None = None
    schema: tuple[str, int] | None = None  # (schema id, revision) of a schema table
    retryable: bool = True  # False when trying again cannot help (a column conflict)


class TableWriter:
    """Writes the tables of one study job, their attachment files included."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        job: StudyJob,
        warehouse: Warehouse,
        check_columns: Callable[[str, list[Column], list[Column] | None], str | None] | None,
        known_columns: dict[str, list[Column]] | None,
    ) -> None:
        self.connection = connection
        self.job = job
        self.warehouse = warehouse
        self.check_columns = check_columns
        self.known_columns = known_columns or {}
        self.fields: dict[str, FieldDef] = {}
        self.attachments = 0

    def _attachment_parts(self, column: Column) -> tuple[str, str]:
        """The constant prefix and suffix of a column's attachment file names (spec §7)."""
        source = column.source
        assert isinstance(source, FieldValue)
        field = self.fields.get(source.field)
        marker = "\x00"
        name = _values.attachment_file_name(
            source.field,
            field.type if field else "ATTACHMENT_V2",
            field.file_extension if field else None,
            marker,
        )
        prefix, _, suffix = name.partition(marker)
        return prefix, suffix

    def write(
        self, key: str, kind: str, columns: list[Column], where: str, *, source: str = "scored"
    ) -> TableResult:
        """Write one table's rows for this job; a failure is reported, not raised."""
        result = TableResult(key=key, kind=kind, columns=columns)
        if self.check_columns is not None:
            problem = self.check_columns(key, columns, self.known_columns.get(key))
            if problem:
                result.error = problem
                result.retryable = False
                return result
        if source == "scored":
            query = _sql.table_rows(columns, where, attachment_name=self._attachment_parts)
        else:
            body = ",\n".join(_sql.column_expression(column, {}) for column in columns)
            query = f"SELECT {body} FROM {source} WHERE {where}"  # noqa: S608 (quoted parts)
        query = query.replace("$export_date", quote_literal(self.job.export_date))
        table_dir = self.warehouse.table_url(self.job.study_id, key)
        final = f"{table_dir}/exportDate={self.job.export_date}/part-{self.job.run_key}.parquet"
        try:
            rows = self.warehouse.write_parquet(
                self.connection,
                query,
                final,
                before_move=(
                    (lambda written: self._copy_attachments(columns, where, table_dir, written))
                    if source == "scored"
                    else None
                ),
            )
        except (duckdb.Error, OSError) as error:
            result.error = f"Error writing table {key}: {error}"
            log.exception("export of table %s failed", key)
            return result
        result.rows, result.path = rows, final
        return result

    def _copy_attachments(
        self, columns: list[Column], where: str, table_dir: str, written: str
    ) -> None:
        """Write each attachment a table refers to as a file named by spec §7 (once), before
        the table file `written` (at its temporary location) takes its name; the cells of a
        0-byte attachment are then emptied in it (spec §6: no handle)."""
        wanted = _sql.attachment_columns(columns)
        if not wanted:
            return
        # Most tables refer to no attachment at all: the written file says so for the cost of
        # reading its attachment columns, where finding the pairs parses every record again.
        present = " OR ".join(f"{_sql.quote_name(column.name)} IS NOT NULL" for column in wanted)
        referred = self.connection.execute(
            f"SELECT count(*) FROM read_parquet({quote_literal(written)}, "  # noqa: S608
            f"hive_partitioning = false) WHERE {present}"
        ).fetchone()
        if not (referred and referred[0]):
            return
        query = _sql.attachment_pairs(columns, where, self._attachment_parts)
        assert query is not None  # the table has attachment columns
        found = write_attachment_files(
            self.connection,
            self.warehouse,
            self.connection.execute(query).fetchall(),
            f"{table_dir}/attachments",
        )
        self.attachments += found.found
        if found.empty_names:
            # Rare (an upload of nothing): the file is written again without those cells,
            # rather than every table's rows looking up every attachment's size.
            self.warehouse.rewrite_parquet(
                self.connection, written, lambda reader: _emptied(reader, found.empty_names)
            )


def _emptied(reader: str, empty_names: dict[str, set[str]]) -> str:
    """A SELECT of every row of `reader` with the listed names of each column made NULL."""
    replaced = ", ".join(
        f"CASE WHEN list_contains(from_json({quote_literal(json.dumps(sorted(names)))}, "
        f"'[\"VARCHAR\"]'), {_sql.quote_name(column)}) THEN NULL "
        f"ELSE {_sql.quote_name(column)} END AS {_sql.quote_name(column)}"
        for column, names in sorted(empty_names.items())
    )
    return f"SELECT * REPLACE ({replaced}) FROM {reader}"  # noqa: S608 (quoted names)
