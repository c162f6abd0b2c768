"""The export of one study in one DuckDB pass: read the records once, filter, count, write.

The record store is attached read-only through DuckDB's SQLite or PostgreSQL scanner (from
the `duckdb-extension-*` packages, never downloaded). The records of the study's window are
read once into a temporary table; the sharing filter, the whitelists and the metrics are
column operations on it; each table is one `COPY ... TO parquet` of a SELECT whose columns
are the expressions of `_sql`. Files are written under a temporary name and moved into place,
so a re-run of the same request replaces its files instead of adding rows.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy.engine import make_url

from dutydesk.duck import load_extension
from dutydesk.export import _memory, _sql, _surveys
from dutydesk.export._columns import (
    DEFAULT_TABLE_NAME,
    Column,
    app_version_table_columns,
    app_version_table_key,
    default_table_columns,
    default_table_key,
    schema_table_columns,
    schema_table_key,
    status_table_columns,
    status_table_key,
)
from dutydesk.export._fields import FieldDef, parse_field_defs
from dutydesk.export._sql import quote_literal
from dutydesk.export._writer import TableResult as TableResult  # the engine's public result
from dutydesk.export._writer import TableWriter
from dutydesk.export.request import SchemaKey, SharingMode
from dutydesk.export.warehouse import Warehouse
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)

SCOPE_RANK = {"NO_SHARING": 0, "SPONSORS_AND_PARTNERS": 1, "ALL_QUALIFIED_RESEARCHERS": 2}
SCOPE_NAMES = {rank: name for name, rank in SCOPE_RANK.items()}
# What an export's database keeps of the memory its queries free (two studies side by side).
KEPT_BLOCK_MEMORY = "1GiB"
MODE_MINIMUM = {SharingMode.ALL: 0, SharingMode.SHARED: 1, SharingMode.PUBLIC_ONLY: 2}


def attach_record_store(connection: duckdb.DuckDBPyConnection, url: str) -> None:
    """Attach the record store at `url` read-only as `rs`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        load_extension(connection, "sqlite_scanner")
        connection.execute(
            f"ATTACH {quote_literal(parsed.database or '')} AS rs (TYPE sqlite, READ_ONLY)"
        )
        return
    load_extension(connection, "postgres_scanner")
    parts = {
        "host": parsed.host,
        "port": parsed.port,
        "dbname": parsed.database,
        "user": parsed.username,
        "password": parsed.password,
    }
    dsn = " ".join(f"{key}={value}" for key, value in parts.items() if value is not None)
    connection.execute(f"ATTACH {quote_literal(dsn)} AS rs (TYPE postgres, READ_ONLY)")


def job_threads() -> int:
    """DuckDB threads of one study job: `DUTYDESK_EXPORT_THREADS`, or one per core."""
    return get_settings().export_threads or os.cpu_count() or 2


def open_database(records_url: str, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the record store attached and the export's functions.

    Attaching loads the store's extension, whose signature check costs a tenth of a second:
    a run exported in the foreground opens one database and gives each study its own
    connection to it (`connect(..., database=)`).
    """
    database = duckdb.connect(config={"threads": threads or job_threads()})
    try:
        # Rows in a table file are in no particular order (readers sort); nothing needs the
        # insertion order kept, and keeping it costs.
        database.execute("SET preserve_insertion_order = false")
        # DuckDB draws a progress bar on stdout for a query over two seconds, even when stdout
        # is a worker's log.
        database.execute("SET enable_progress_bar = false")
        # Blocks freed by one query are kept for the next, up to this much, instead of going
        # back to the system and being faulted in again (a study's export touches about
        # 0.5 GB; the page faults of doing so cost a tenth of its time). The memory is
        # returned when the database closes.
        database.execute(f"SET block_allocator_memory = '{KEPT_BLOCK_MEMORY}'")
        _memory.limit_memory(database)  # DUTYDESK_EXPORT_MEMORY_LIMIT, spilling beyond it
        attach_record_store(database, records_url)
        _sql.install(database)
        if make_url(records_url).get_backend_name() == "sqlite":
            # Each statement on a SQLite store opens its own SQLite connection. When none is
            # open, the next one to open rebuilds the WAL index under an exclusive lock, and a
            # statement opening its connection meanwhile on another thread waits a whole
            # second. A transaction kept open here holds one SQLite connection for the
            # database's life, so the index is built once.
            database.execute("BEGIN TRANSACTION")
            database.execute("SELECT count(*) FROM rs.studies").fetchall()
    except BaseException:
        database.close()
        raise
    return database


@contextmanager
def connect(
    records_url: str,
    *,
    threads: int | None = None,
    database: duckdb.DuckDBPyConnection | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the record store attached and the export's functions.

    On `database` (from `open_database`) when given: a connection of its own, whose
    temporary tables no other connection sees, so studies can be exported side by side on
    one database. Otherwise on a database of its own, closed with it.
    """
    if database is None:
        with (
            closing(open_database(records_url, threads=threads)) as own,
            connect(records_url, database=own) as connection,
        ):
            yield connection
        return
    connection = database.cursor()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        # Attachments the export makes itself (answers of legacy surveys) beside the store's.
        connection.execute(
            "CREATE TEMP TABLE made_attachments (id VARCHAR PRIMARY KEY, content BLOB);"
            "CREATE TEMP VIEW attachment_store AS "
            "SELECT id, content, path FROM rs.attachments "
            "UNION ALL SELECT id, content, NULL FROM made_attachments"
        )
        _sql.install_attachment_text(connection)
        yield connection
    finally:
        connection.close()


@dataclass(frozen=True)
class StudyJob:
    """What to export for one study."""

    study_id: str
    export_date: str
    run_key: str
    sharing_mode: SharingMode
    start_ms: int | None = None
    end_ms: int | None = None
    record_ids: tuple[str, ...] | None = None
    study_whitelist: frozenset[str] | None = None
    table_whitelist: frozenset[SchemaKey] | None = None
    # False for a table redrive: the first run already wrote these records' summary rows.
    summary_tables: bool = True
    # A slice of a study split by table (see `service.plan_run`): `only_tables` are the schema
    # tables (schema id, revision) a later slice writes, reading only their records (and the
    # surveys, which may become theirs); it does none of the record-level work. Slice 0 does
    # the record-level work (counters, bad records, summary and default tables) and writes
    # every schema table but `skip_tables`, the other slices' ones.
    only_tables: frozenset[tuple[str, int]] | None = None
    skip_tables: frozenset[tuple[str, int]] = frozenset()

    @property
    def record_level(self) -> bool:
        """Whether this job does the study's record-level work (all but a later slice)."""
        return self.only_tables is None

    def writes_table(self, schema_id: str, revision: int) -> bool:
        """Whether this job writes the schema table of `schema_id` at `revision`."""
        if self.only_tables is not None:
            return (schema_id, revision) in self.only_tables
        return (schema_id, revision) not in self.skip_tables


# Where a log line stands among a study's lines: record-level lines first, then the schema
# tables' in table order, then the default table's. Slices of one study merge their lines by it
# into the order the study exported whole gives.
LogPlace = tuple[int, str, int]
RECORD_LINES: LogPlace = (0, "", 0)
DEFAULT_TABLE_LINES: LogPlace = (2, "", 0)


@dataclass
class StudyResult:
    """What the export of one study did: counters, distinct values, tables, log lines."""

    counters: dict[str, int] = field(default_factory=dict)
    unique_health_codes: int = 0
    app_versions: set[str] = field(default_factory=set)
    schemas_not_found: set[str] = field(default_factory=set)
    tables: list[TableResult] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    log_places: list[LogPlace] = field(default_factory=list)  # each line's, see LogPlace

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a counter."""
        if amount:
            self.counters[name] = self.counters.get(name, 0) + amount

    def say(self, line: str, place: LogPlace = RECORD_LINES) -> None:
        """Add a log line standing at `place`."""
        self.log.append(line)
        self.log_places.append(place)


@dataclass(frozen=True)
class StudyConfig:
    """The record store's facts about a study and its schemas."""

    study_id: str
    metadata_fields: list[FieldDef]
    id_excluded: bool
    schemas: dict[tuple[str, int], list[FieldDef]]


def read_study_config(connection: duckdb.DuckDBPyConnection, study_id: str) -> StudyConfig:
    """The study's upload-metadata fields and its schemas, from the record store."""
    import json

    row = connection.execute(
        "SELECT upload_metadata_fields, study_id_excluded_in_export FROM rs.studies WHERE id = ?",
        [study_id],
    ).fetchone()
    if row is None:
        raise LookupError(f"study {study_id!r} is not in the record store")
    schemas = {
        (schema_id, int(revision)): parse_field_defs(json.loads(fields or "[]"))
        for schema_id, revision, fields in connection.execute(
            "SELECT schema_id, revision, fields FROM rs.schemas WHERE study_id = ?", [study_id]
        ).fetchall()
    }
    return StudyConfig(
        study_id=study_id,
        metadata_fields=parse_field_defs(json.loads(row[0] or "[]")),
        id_excluded=bool(row[1]),
        schemas=schemas,
    )


# The record columns the export reads, with their types (the SQLite fast path reads text).
RECORD_COLUMNS = {
    "id": "VARCHAR",
    "study_id": "VARCHAR",
    "health_code": "VARCHAR",
    "schema_id": "VARCHAR",
    "schema_revision": "BIGINT",
    "uploaded_on": "BIGINT",
    "created_on": "BIGINT",
    "created_on_time_zone": "VARCHAR",
    "data": "VARCHAR",
    "metadata": "VARCHAR",
    "user_metadata": "VARCHAR",
    "user_sharing_scope": "VARCHAR",
    "user_external_id": "VARCHAR",
    "user_data_groups": "VARCHAR",
    "user_substudy_memberships": "VARCHAR",
    "validation_errors": "VARCHAR",
    "day_in_study": "BIGINT",
    "raw_data_attachment_id": "VARCHAR",
}


def _records_source(
    connection: duckdb.DuckDBPyConnection, job: StudyJob
) -> tuple[str, list[object]]:
    """A SELECT of the study's records in the window (or the listed ids), with the user scope.

    SQLite's scanner pushes no filter down, so a window of one study is read through
    `sqlite_query`: only that study's rows are read, found through the `(study_id,
    uploaded_on)` index, or by one pass over the stretch of the table that holds them when
    they fill at least half of it.
    Its participants (a few thousand rows) are read apart and each record's scope is looked
    up among them as the records stream in: SQLite looking each record's participant up costs
    a third of the read again, and a join would build its hash table on the records (DuckDB
    estimates a `sqlite_query` at one row). A participant is one row (the table's key is the
    study and the health code), so the look-up is a scalar subquery.
    """
    columns = ", ".join(f"r.{name}" for name in RECORD_COLUMNS)
    # A later slice reads only its tables' records, and the surveys that may become theirs.
    tables = (
        ""
        if job.only_tables is None
        else " AND ("
        + " OR ".join(
            f"(r.schema_id = {quote_literal(schema_id)} AND r.schema_revision = {int(revision)})"
            for schema_id, revision in sorted(
                {*job.only_tables, (_surveys.SURVEY_SCHEMA, _surveys.SURVEY_REVISION)}
            )
        )
        + ")"
    )
    if job.record_ids is None and _sql.store_type(connection) == "sqlite":
        assert job.start_ms is not None and job.end_ms is not None
        connection.execute(
            "CREATE OR REPLACE TEMP TABLE study_participants AS "
            "SELECT health_code, sharing_scope FROM sqlite_query('rs', "
            "'SELECT health_code, sharing_scope FROM participants WHERE study_id = ?', "
            "params := row(?::VARCHAR))",
            [job.study_id],
        )
        window: list[object] = [job.study_id, int(job.start_ms), int(job.end_ms)]
        wanted = "r.study_id = ? AND r.uploaded_on >= ? AND r.uploaded_on < ?"
        first, last, count = connection.execute(
            "SELECT TRY_CAST(first AS BIGINT), TRY_CAST(last AS BIGINT), TRY_CAST(n AS BIGINT) "
            "FROM sqlite_query('rs', 'SELECT min(r.rowid) AS first, max(r.rowid) AS last, "
            f"count(*) AS n FROM records r WHERE {wanted}', "
            "params := row(?::VARCHAR, ?::BIGINT, ?::BIGINT))",
            window,
        ).fetchone() or (None, None, 0)
        if count and first is not None and last is not None and last - first + 1 <= 2 * count:
            # The rows sit close together (records imported or uploaded study by study): one
            # pass over that stretch of the table, in storage order, costs less than fetching
            # each row through the index (0.57 s against 0.75 s for 250,000 records).
            inner = (
                f"SELECT {columns} FROM records r NOT INDEXED "
                f"WHERE r.rowid BETWEEN ? AND ? AND {wanted}{tables}"
            )
            bound, kinds = [first, last, *window], "?::BIGINT, ?::BIGINT, "
        else:
            inner = f"SELECT {columns} FROM records r WHERE {wanted}{tables}"
            bound, kinds = window, ""
        typed = ", ".join(
            f"TRY_CAST(r.{name} AS {kind}) AS {name}" if kind != "VARCHAR" else f"r.{name}"
            for name, kind in RECORD_COLUMNS.items()
        )
        return (
            f"SELECT {typed}, (SELECT p.sharing_scope FROM study_participants p "
            "WHERE p.health_code = r.health_code) AS user_scope "
            f"FROM sqlite_query('rs', {quote_literal(inner)}, "
            f"params := row({kinds}?::VARCHAR, ?::BIGINT, ?::BIGINT)) r",
            bound,
        )
    where = "r.study_id = ?"
    params: list[object] = [job.study_id]
    if job.record_ids is not None:
        connection.execute("CREATE OR REPLACE TEMP TABLE wanted(id VARCHAR)")
        # One JSON text, not a Python list: DuckDB inspects each Python value it is handed.
        connection.execute(
            "INSERT INTO wanted SELECT unnest(from_json(?::VARCHAR, '[\"VARCHAR\"]'))",
            [json.dumps(list(job.record_ids))],
        )
        where += " AND r.id IN (SELECT id FROM wanted)"
    else:
        where += " AND r.uploaded_on >= ? AND r.uploaded_on < ?"
        params += [job.start_ms, job.end_ms]
    where += tables
    return (
        f"SELECT {columns}, p.sharing_scope AS user_scope FROM rs.records r "
        "LEFT JOIN rs.participants p ON p.study_id = r.study_id AND p.health_code = r.health_code "
        f"WHERE {where}",
        params,
    )


def _scope_rank(column: str) -> str:
    cases = " ".join(f"WHEN {quote_literal(name)} THEN {rank}" for name, rank in SCOPE_RANK.items())
    return f"CASE {column} {cases} ELSE 0 END"


def _load_and_score(
    connection: duckdb.DuckDBPyConnection, job: StudyJob, config: StudyConfig
) -> None:
    """Read the records once into `scored`: each with its effective scope, whitelists and
    whether it is accepted; then the common values of the accepted ones. (A record's table
    follows from its schema and revision, worked out where it is needed.)

    `data` stays text, parsed here only for its JSON type (a bad document has none) and once
    more per table for its fields; `user_metadata` is parsed here for its text and JSON type
    (which every table's columns of it test), and once more per table for its fields; the other JSON
    columns once per distinct value, for the common values made of them.
    """
    source, params = _records_source(connection, job)
    study_ok = (
        "TRUE"
        if job.study_whitelist is None
        else f"study_id IN ({', '.join(quote_literal(s) for s in sorted(job.study_whitelist))})"
    )
    table_key = (
        "CASE WHEN schema_id IS NULL OR schema_revision IS NULL THEN study_id || '-default' "
        "ELSE study_id || '-' || schema_id || '-v' || schema_revision END"
    )
    if job.table_whitelist is None:
        table_ok = "TRUE"
    else:
        keys = ", ".join(quote_literal(str(key)) for key in sorted(job.table_whitelist))
        table_ok = (
            f"schema_id IS NOT NULL AND schema_revision IS NOT NULL AND {table_key} IN ({keys})"
        )
    minimum = MODE_MINIMUM[job.sharing_mode]
    bad = "(data IS NOT NULL AND TRY(json_type(data)) IS NULL)"
    rank = f"least({_scope_rank('user_sharing_scope')}, {_scope_rank('user_scope')})"
    # The common values of one record are worked out as it is read (for the accepted ones);
    # those worked out once per distinct value are set afterwards.
    commons = ", ".join(
        f"NULL::VARCHAR AS {_sql.precomputed_column(name)}"
        if name in _sql.COMMON_BY_DISTINCT
        else f"CASE WHEN accepted THEN {expression} END AS {_sql.precomputed_column(name)}"
        for name, expression in _sql.PRECOMPUTED_COMMON.items()
    )
    connection.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE scored AS
        SELECT * EXCLUDE ({", ".join(_sql.COMMON_READ_ONCE)}), {commons},
               CASE WHEN accepted THEN json_type(user_metadata) END AS user_metadata_type
        FROM (
        SELECT *, effective_rank >= {minimum} AND study_ok AND table_ok AND NOT bad_data
                  AS accepted
        FROM (
            SELECT * REPLACE (TRY_CAST(user_metadata AS JSON) AS user_metadata),
                   TRY(json_type(data)) AS data_type,
                   {bad} AS bad_data,
                   {rank} AS effective_rank,
                   {study_ok} AS study_ok, {table_ok} AS table_ok
            FROM ({source})))
        """,
        params,
    )
    # The common values that depend on one column with few distinct values (app versions,
    # data groups) are worked out once per value and set beside the accepted records; every
    # table then reads them as they are.
    for column, names in _sql.common_lookups().items():
        values = ", ".join(
            f"{_sql.PRECOMPUTED_COMMON[name]} AS {_sql.precomputed_column(name)}" for name in names
        )
        assigned = ", ".join(
            f"{_sql.precomputed_column(name)} = lookup.{_sql.precomputed_column(name)}"
            for name in names
        )
        # The text is parsed here, once per distinct value (a malformed one is no JSON).
        connection.execute(
            f"UPDATE scored SET {assigned} FROM (SELECT value, {values} FROM ("
            f"SELECT value, TRY_CAST(value AS JSON) AS {column} FROM ("
            f"SELECT DISTINCT {column} AS value FROM scored WHERE accepted))) lookup "
            f"WHERE lookup.value = scored.{column} AND scored.accepted"
        )


def _count_filters(
    connection: duckdb.DuckDBPyConnection, job: StudyJob, result: StudyResult
) -> None:
    minimum = MODE_MINIMUM[job.sharing_mode]
    rows = connection.execute(
        "SELECT effective_rank, study_ok, table_ok, schema_id, schema_revision, count(*) "
        "FROM scored WHERE NOT bad_data GROUP BY ALL"
    ).fetchall()
    for rank, study_ok, table_ok, schema_id, revision, count in rows:
        no_schema = schema_id is None or revision is None
        scope = SCOPE_NAMES[int(rank)]
        result.count(f"{'accepted' if rank >= minimum else 'excluded'}[{scope}]", count)
        if job.study_whitelist is not None:
            result.count(f"{'accepted' if study_ok else 'excluded'}[{job.study_id}]", count)
        if job.table_whitelist is not None:
            name = (
                default_table_key(job.study_id)
                if no_schema
                else schema_table_key(job.study_id, schema_id, int(revision))
            )
            result.count(f"{'accepted' if table_ok else 'excluded'}[{name}]", count)
    for scope, count in connection.execute(
        "SELECT user_sharing_scope, count(*) FROM scored WHERE user_sharing_scope IS NOT NULL "
        f"AND trim(user_sharing_scope) <> '' AND user_sharing_scope NOT IN "
        f"({', '.join(quote_literal(s) for s in SCOPE_RANK)}) GROUP BY ALL ORDER BY 1"
    ).fetchall():
        result.say(f"Could not parse sharing scope {scope} ({count} records)")
    for (record_id,) in connection.execute(
        "SELECT id FROM scored WHERE bad_data ORDER BY id"
    ).fetchall():
        result.say(f"Exception processing record {record_id}: data is not valid JSON")
        result.count("numBadRecords")


def export_study(
    connection: duckdb.DuckDBPyConnection,
    job: StudyJob,
    warehouse: Warehouse | Path | str,
    *,
    known_columns: dict[str, list[Column]] | None = None,
    check_columns: Callable[[str, list[Column], list[Column] | None], str | None] | None = None,
) -> StudyResult:
    """Export one study's records into its tables under `warehouse`; never raises per record."""
    warehouse = Warehouse.at(warehouse) if not isinstance(warehouse, Warehouse) else warehouse
    result = StudyResult()
    config = read_study_config(connection, job.study_id)
    _load_and_score(connection, job, config)
    # The table a record's row went to, for the summary table (of this connection's study).
    prefix = "" if config.id_excluded else f"{job.study_id}-"
    connection.execute(
        "CREATE OR REPLACE TEMP MACRO dd_original_table(s, r) AS CASE "
        f"WHEN s IS NULL OR r IS NULL THEN {quote_literal(DEFAULT_TABLE_NAME)} "
        f"ELSE {quote_literal(prefix)} || s || '-v' || r END"
    )
    connection.execute("DELETE FROM made_attachments")
    writer = TableWriter(connection, job, warehouse, check_columns, known_columns)
    if not job.record_level:
        # Slice 0 counts and logs the surveys; a later slice converts them for its tables.
        _surveys.convert_surveys(
            connection, job.study_id, config.schemas, lambda _name, _n: None, lambda _line: None
        )
        _write_schema_tables(connection, job, config, writer, result)
        _count_tables(result, writer)
        return result
    _surveys.convert_surveys(connection, job.study_id, config.schemas, result.count, result.say)
    found = int(_scalar(connection, "SELECT count(*) FROM scored"))
    # numTotal counts every record ID read, a missing one too (spec §9).
    result.count("numTotal", found if job.record_ids is None else len(set(job.record_ids)))
    if job.record_ids is not None:
        missing = len(set(job.record_ids)) - found
        if missing:
            result.say(f"Missing health data record for {missing} record IDs")
    _count_filters(connection, job, result)
    result.unique_health_codes = int(
        _scalar(connection, "SELECT count(DISTINCT health_code) FROM scored WHERE accepted")
    )
    _write_schema_tables(connection, job, config, writer, result)
    if job.summary_tables and _scalar(
        connection,
        "SELECT count(*) FROM scored WHERE accepted AND "
        "(schema_id IS NULL OR schema_revision IS NULL)",
    ):
        writer.fields = {}
        key = default_table_key(job.study_id)
        try:
            default_columns = default_table_columns(config.metadata_fields)
        except ValueError as error:  # duplicate column names: the study config needs fixing
            result.tables.append(_unwritable(key, "default", f"Table {key}: {error}"))
            result.say(f"Table {key} not written: {error}", DEFAULT_TABLE_LINES)
        else:
            result.tables.append(
                writer.write(
                    key,
                    "default",
                    default_columns,
                    "accepted AND (schema_id IS NULL OR schema_revision IS NULL)",
                )
            )
    if job.summary_tables and _scalar(connection, "SELECT count(*) FROM scored WHERE accepted"):
        summary = writer.write(
            app_version_table_key(job.study_id),
            "appVersion",
            app_version_table_columns(),
            "accepted",
        )
        result.tables.append(summary)
        if summary.path:
            result.app_versions = {
                str(version)
                for (version,) in connection.execute(
                    f"SELECT DISTINCT appVersion FROM read_parquet({quote_literal(summary.path)}) "
                    "WHERE appVersion IS NOT NULL AND trim(appVersion) <> ''"
                ).fetchall()
            }
    _count_tables(result, writer)
    return result


def _write_schema_tables(
    connection: duckdb.DuckDBPyConnection,
    job: StudyJob,
    config: StudyConfig,
    writer: TableWriter,
    result: StudyResult,
) -> None:
    """Write the job's schema tables that hold accepted records, in table order."""
    present = connection.execute(
        "SELECT schema_id, schema_revision, count(*) FROM scored WHERE accepted "
        "AND schema_id IS NOT NULL AND schema_revision IS NOT NULL GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    for schema_id, revision, count in present:
        revision = int(revision)
        if not job.writes_table(schema_id, revision):
            continue
        key = schema_table_key(job.study_id, schema_id, revision)
        place: LogPlace = (1, schema_id, revision)
        fields = config.schemas.get((schema_id, revision))
        if fields is None:
            result.schemas_not_found.add(key)
            result.say(
                f"Schema {key} not found; {count} records keep only their summary row", place
            )
            continue
        try:
            columns = schema_table_columns(config.metadata_fields, fields)
        except ValueError as error:  # duplicate column names: the schema needs fixing
            result.tables.append(_unwritable(key, "schema", f"Table {key}: {error}"))
            result.say(f"Table {key} not written: {error}", place)
            continue
        where = (
            f"accepted AND schema_id = {quote_literal(schema_id)} AND schema_revision = {revision}"
        )
        writer.fields = {f.name: f for f in fields}
        table = writer.write(key, "schema", columns, where)
        table.schema = (schema_id, revision)
        result.tables.append(table)


def _count_tables(result: StudyResult, writer: TableWriter) -> None:
    """The table-level counters: attachments copied, each table's rows and failure."""
    result.count("numAttachments", writer.attachments)
    for table in result.tables:
        result.count(f"{table.key}.lineCount", table.rows)
        if table.error:
            result.count(f"{table.key}.errorCount", 1)


def write_status_row(
    connection: duckdb.DuckDBPyConnection,
    study_id: str,
    export_date: str,
    run_key: str,
    warehouse: Warehouse | Path | str,
) -> TableResult:
    """The study's status table: one row with the export date per run."""
    warehouse = Warehouse.at(warehouse) if not isinstance(warehouse, Warehouse) else warehouse
    job = StudyJob(
        study_id=study_id, export_date=export_date, run_key=run_key, sharing_mode=SharingMode.SHARED
    )
    connection.execute("CREATE OR REPLACE TEMP TABLE status_row AS SELECT 1 AS one")
    writer = TableWriter(connection, job, warehouse, None, None)
    return writer.write(
        status_table_key(study_id), "status", status_table_columns(), "TRUE", source="status_row"
    )


def _unwritable(key: str, kind: str, error: str) -> TableResult:
    """A table whose columns cannot be made: failed, and not worth a re-drive."""
    return TableResult(key=key, kind=kind, columns=[], error=error, retryable=False)


def _scalar(connection: duckdb.DuckDBPyConnection, query: str) -> Any:
    row = connection.execute(query).fetchone()
    return row[0] if row else None
