"""The vectorized engine against the reference semantics, record by record, cell by cell.

The expected values are computed here from the record store with `_values`, `_cells` and
`_sharing` (plain Python), independently of the SQL the engine runs.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from dutydesk.export import _engine, _values
from dutydesk.export._cells import field_cell
from dutydesk.export._columns import (
    Column,
    CommonValue,
    Document,
    FieldValue,
    OriginalTable,
    RawData,
    RawMetadata,
    original_table,
)
from dutydesk.export.request import SchemaKey, SharingMode
from dutydesk.records.store import upgrade_records
from tests.export.conftest import EXPORT_DATE, generated_store, whole_window_job


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A generated record store: three studies, withdrawn participants, malformed values."""
    path = tmp_path_factory.mktemp("records") / "records.sqlite"
    generated_store(
        path,
        seed=7,
        studies=3,
        participants=40,
        days=3,
        records_per_day=150,
        attachment_share=0.1,
    )
    yield path


def source_records(store: Path, study: str) -> dict[str, dict[str, Any]]:
    """Every record of a study with its participant's current scope, read with sqlite3."""
    with sqlite3.connect(store) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT r.*, p.sharing_scope AS user_scope FROM records r LEFT JOIN participants p "
            "ON p.study_id = r.study_id AND p.health_code = r.health_code WHERE r.study_id = ?",
            [study],
        ).fetchall()
    return {row["id"]: dict(row) for row in rows}


def attachment_text(store: Path, attachment: str) -> str | None:
    """An attachment's text, as the reference reads it."""
    with sqlite3.connect(store) as connection:
        row = connection.execute(
            "SELECT content, path FROM attachments WHERE id = ?", [attachment]
        ).fetchone()
    if row is None:
        return None
    content, path = row
    return bytes(content).decode() if content is not None else Path(path).read_text()


def run_study(
    store: Path, warehouse: Path, study: str, mode: SharingMode, **job: Any
) -> _engine.StudyResult:
    """Export one study with the engine."""
    with _engine.connect(f"sqlite:///{store}", threads=2) as connection:
        return _engine.export_study(connection, whole_window_job(study, mode, **job), warehouse)


def rows_of(path: str) -> list[dict[str, Any]]:
    """The rows of one written Parquet file."""
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    names = relation.columns
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def expected_cell(column: Column, record: dict[str, Any], store: Path) -> Any:
    """The reference value of one cell, in the typed form Parquet holds."""
    source = column.source
    if isinstance(source, CommonValue):
        return expected_common(source.name, record)
    if isinstance(source, RawData):
        return _values.raw_data_attachment_id(record["raw_data_attachment_id"])
    if isinstance(source, RawMetadata):
        document = _json(record["user_metadata"])
        return None if document is None else "present"
    if isinstance(source, OriginalTable):
        return None  # checked by the table-level test
    assert source is not None and not isinstance(source, OriginalTable)
    document = _json(record["data" if source.document is Document.DATA else "user_metadata"])
    cell = field_cell(source, document, lambda a: attachment_text(store, a))  # type: ignore[arg-type]
    if column.type.name == "TIMESTAMP" and isinstance(cell, int):
        return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=cell)
    return cell


def expected_common(name: str, record: dict[str, Any]) -> Any:
    """The reference value of a common column."""
    metadata = record["metadata"]
    app_version, phone_info = _values.app_version_and_phone_info_from_text(metadata)
    millis = {"createdOn": record["created_on"], "recordUploadedOn": record["uploaded_on"]}
    if name in millis:
        value = millis[name]
        return None if value is None else dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=value)
    return {
        "recordId": record["id"],
        "appVersion": app_version,
        "phoneInfo": phone_info,
        "uploadDate": EXPORT_DATE,
        "healthCode": record["health_code"],
        "externalId": _values.external_id(record["user_external_id"]),
        "dataGroups": _values.data_groups(_json(record["user_data_groups"])),
        "createdOnTimeZone": record["created_on_time_zone"],
        "userSharingScope": record["user_sharing_scope"],
        "validationErrors": _values.validation_errors(record["validation_errors"]),
        "substudyMemberships": _values.substudy_memberships(
            _json(record["user_substudy_memberships"])
        ),
        "dayInStudy": record["day_in_study"],
    }[name]


# The sharing rules written out here once more, apart from the export code (spec §3).
RANK = {"SPONSORS_AND_PARTNERS": 1, "ALL_QUALIFIED_RESEARCHERS": 2}  # anything else: 0
LOWEST_ACCEPTED = {SharingMode.ALL: 0, SharingMode.SHARED: 1, SharingMode.PUBLIC_ONLY: 2}


def accepted_by(record: dict[str, Any], mode: SharingMode) -> bool:
    """Whether the record may leave under `mode`: the stricter of its two scopes decides."""
    scope = min(RANK.get(record["user_sharing_scope"], 0), RANK.get(record["user_scope"], 0))
    return scope >= LOWEST_ACCEPTED[mode] and _json(record["data"]) is not None


@pytest.mark.parametrize("study", ["study-a", "study-b"])
def test_every_cell_equals_the_reference_value(store: Path, tmp_path: Path, study: str) -> None:
    result = run_study(store, tmp_path, study, SharingMode.ALL)
    records = source_records(store, study)
    with closing(sqlite3.connect(store)) as connection:
        (excluded,) = connection.execute(
            "SELECT study_id_excluded_in_export FROM studies WHERE id = ?", [study]
        ).fetchone()
    checked = 0
    for table in result.tables:
        assert table.error is None, table.error
        assert table.path is not None
        for row in rows_of(table.path):
            record = records[row["recordId"]]
            for column in table.columns:
                expected = expected_cell(column, record, store)
                actual = row[column.name]
                if isinstance(column.source, RawMetadata):
                    actual = None if actual is None else "present"
                if isinstance(column.source, OriginalTable):
                    if record["schema_id"] != "ios-survey":  # converted: the survey's table
                        assert actual == original_table(
                            study, record["schema_id"], record["schema_revision"], excluded
                        ), (row["recordId"], actual)
                        checked += 1
                    continue
                if isinstance(column.source, FieldValue) and column.type.name == "ATTACHMENT":
                    # Exported as the file name of spec §7, which ends with the attachment id.
                    assert (actual is None) == (expected is None), (table.key, column.name)
                    assert actual is None or expected in actual
                    continue
                assert actual == expected, (table.key, row["recordId"], column.name, record)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("mode", list(SharingMode))
def test_tables_hold_exactly_the_records_the_sharing_mode_accepts(
    store: Path, tmp_path: Path, mode: SharingMode
) -> None:
    study = "study-a"
    records = source_records(store, study)
    result = run_study(store, tmp_path, study, mode)
    summary = next(t for t in result.tables if t.kind == "appVersion")
    assert summary.path is not None
    exported = {row["recordId"] for row in rows_of(summary.path)}
    assert exported == {rid for rid, r in records.items() if accepted_by(r, mode)}
    data_rows: set[str] = set()
    for table in result.tables:
        if table.kind in ("schema", "default") and table.path:
            data_rows |= {row["recordId"] for row in rows_of(table.path)}
    assert data_rows == exported
    if mode is not SharingMode.ALL:
        withdrawn = {rid for rid, r in records.items() if r["user_scope"] == "NO_SHARING"}
        at_upload = {rid for rid, r in records.items() if r["user_sharing_scope"] == "NO_SHARING"}
        assert withdrawn and not exported & (withdrawn | at_upload)


def test_filter_counters_follow_the_spec_names(store: Path, tmp_path: Path) -> None:
    records = source_records(store, "study-b")
    result = run_study(store, tmp_path, "study-b", SharingMode.SHARED)
    valid = [r for r in records.values() if _json(r["data"]) is not None]
    accepted = sum(1 for r in valid if accepted_by(r, SharingMode.SHARED))
    assert result.counters["numTotal"] == len(records)
    counted = sum(v for k, v in result.counters.items() if k.startswith("accepted["))
    assert counted == accepted
    assert sum(v for k, v in result.counters.items() if k.startswith("excluded[")) == (
        len(valid) - accepted
    )
    assert result.unique_health_codes == len(
        {r["health_code"] for r in valid if accepted_by(r, SharingMode.SHARED)}
    )
    summary = next(t for t in result.tables if t.kind == "appVersion")
    assert result.counters[f"{summary.key}.lineCount"] == accepted


def test_table_whitelist_keeps_only_listed_schema_tables(store: Path, tmp_path: Path) -> None:
    full = run_study(store, tmp_path / "full", "study-a", SharingMode.SHARED)
    chosen = next(t for t in full.tables if t.kind == "schema")
    schema_id, _, revision = chosen.key.removeprefix("study-a-").rpartition("-v")
    whitelist = frozenset({SchemaKey("study-a", schema_id, int(revision))})
    result = run_study(
        store, tmp_path / "one", "study-a", SharingMode.SHARED, table_whitelist=whitelist
    )
    assert {t.kind for t in result.tables} == {"schema", "appVersion"}
    assert [t.key for t in result.tables if t.kind == "schema"] == [chosen.key]
    assert result.counters[f"accepted[{chosen.key}]"] > 0
    assert any(k.startswith("excluded[study-a-") for k in result.counters)


def test_tables_are_read_alike_by_arrow_and_duckdb(store: Path, tmp_path: Path) -> None:
    """Arrow (pandas' and R's Parquet reader) reads every table file as DuckDB does: the
    format version and encodings the warehouse writes are ones it knows."""
    result = run_study(store, tmp_path / "wh", "study-a", SharingMode.ALL)
    written = [table for table in result.tables if table.path]
    assert {table.kind for table in written} >= {"schema", "appVersion"}
    for table in written:
        assert table.path is not None
        arrow_rows = pq.read_table(table.path).to_pylist()
        assert len(arrow_rows) == table.rows > 0
        # DuckDB adds the folder's hive partition; the file itself holds the rest.
        duck_rows = [
            {name: value for name, value in row.items() if name != "exportDate"}
            for row in rows_of(table.path)
        ]
        assert arrow_rows == duck_rows, table.key


def test_running_the_same_export_twice_leaves_the_same_rows(store: Path, tmp_path: Path) -> None:
    first = run_study(store, tmp_path, "study-c", SharingMode.SHARED)
    second = run_study(store, tmp_path, "study-c", SharingMode.SHARED)
    assert [(t.key, t.rows) for t in first.tables] == [(t.key, t.rows) for t in second.tables]
    for table in second.tables:
        folder = Path(str(table.path)).parent.parent
        files = sorted(p.name for p in folder.rglob("*.parquet"))
        assert files == ["part-test.parquet"], files
        total = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet', hive_partitioning=true, "
            "union_by_name=true)"
        ).fetchone()
        assert total == (table.rows,)
    assert not list(tmp_path.rglob("*.tmp"))


def test_attachments_are_written_as_files_named_by_the_legacy_rules(
    store: Path, tmp_path: Path
) -> None:
    result = run_study(store, tmp_path, "study-a", SharingMode.ALL)
    assert result.counters.get("numAttachments", 0) > 0
    files = list(tmp_path.rglob("attachments/*"))
    assert len(files) == result.counters["numAttachments"] or files
    for table in result.tables:
        for column in table.columns:
            if column.type.name != "ATTACHMENT" or table.path is None:
                continue
            for row in rows_of(table.path):
                name = row[column.name]
                if name is not None and not isinstance(column.source, RawMetadata):
                    assert (Path(table.path).parent.parent / "attachments" / name).exists()


TRICKY_VALUES: list[Any] = [
    None,
    True,
    "true",
    -13.9,
    42,
    1e20,
    3.14,
    "3.14",
    "<b>hi</b>\tthere",
    "a &amp; b &lt;tag&gt; &nbsp; c",
    "imbalanced</i> <p>tags",
    "x\u00a0\u00a0y",
    "😀" * 60,
    "asdf\njkl;\tlorem ipsum dolor",
    "2016-06-09T10:09:08.765+0530",
    "2016-06-09T10:09:08Z",
    "2016-06-09T10:09:08.765+05:30",
    "2016-06-09",
    "2016-06-09T10:09",
    "Thursday June 9th 2016 @ 4:10pm",
    12345,
    ["bar", True, 42],
    ["one", "foo", "bar", "baz"],
    [1, 3, 5, 7, "this is a string"],
    {"key": 42},
    "baz",
    "2024-13-45T25:61:00",  # ISO in form, not in range
    "2016-06-09T10:09:08,5-07",  # ISO, not the strict form
    "2016",
    "",
    18446744073709551615,  # an unsigned 64-bit integer
    [7, "foo"],
]
TRICKY_FIELDS = [
    {"name": "flag", "type": "BOOLEAN"},
    {"name": "ratio", "type": "FLOAT"},
    {"name": "count", "type": "INT"},
    {"name": "note", "type": "STRING", "maxLength": 10},
    {"name": "long_note", "type": "STRING", "unboundedText": True},
    {"name": "blob", "type": "INLINE_JSON_BLOB"},
    {"name": "when", "type": "TIMESTAMP"},
    {
        "name": "pick",
        "type": "MULTI_CHOICE",
        "multiChoiceAnswerList": ["foo", "bar", "baz", "true", "42"],
    },
    {
        "name": "pick_other",
        "type": "MULTI_CHOICE",
        "multiChoiceAnswerList": ["one", "two"],
        "allowOtherChoices": True,
    },
]


def one_study_store(path: Path) -> sqlite3.Connection:
    """A migrated SQLite record store at `path` with one configured study `s`, and an open
    connection to it (`with closing(...) as c, c:` commits, then closes it)."""
    upgrade_records(f"sqlite:///{path}")
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT INTO studies (id, name, disable_export, uses_custom_export_schedule, "
        "study_id_excluded_in_export, upload_metadata_fields, project) "
        "VALUES ('s', 'S', 0, 0, 0, '[]', 'p')"
    )
    return connection


def test_spec_value_vectors_come_out_as_the_reference_says(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    with closing(one_study_store(path)) as connection, connection:
        connection.execute(
            "INSERT INTO schemas VALUES ('s', 'tricky', 1, ?)", [json.dumps(TRICKY_FIELDS)]
        )
        connection.execute(
            "INSERT INTO participants VALUES ('s', 'hc', 'ALL_QUALIFIED_RESEARCHERS')"
        )
        for index, value in enumerate(TRICKY_VALUES):
            data = {field["name"]: value for field in TRICKY_FIELDS}
            connection.execute(
                "INSERT INTO records (id, study_id, health_code, schema_id, schema_revision, "
                "uploaded_on, data, user_sharing_scope) VALUES (?, 's', 'hc', 'tricky', 1, ?, ?, "
                "'ALL_QUALIFIED_RESEARCHERS')",
                [f"r{index:03d}", 1000 + index, json.dumps(data)],
            )
    result = run_study(path, tmp_path / "wh", "s", SharingMode.SHARED)
    [table] = [t for t in result.tables if t.kind == "schema"]
    assert table.path is not None and table.rows == len(TRICKY_VALUES)
    records = source_records(path, "s")
    for row in rows_of(table.path):
        for column in table.columns:
            if isinstance(column.source, CommonValue | RawData | RawMetadata | OriginalTable):
                continue
            expected = expected_cell(column, records[row["recordId"]], path)
            assert row[column.name] == expected, (column.name, row["recordId"], row[column.name])
    by_id = {row["recordId"]: row for row in rows_of(table.path)}
    assert by_id["r008"]["note"] == "hi there"
    assert by_id["r009"]["long_note"] == "a & b <tag> c"
    assert by_id["r013"]["note"] == "asdf jkl; "
    assert by_id["r003"]["count"] == -13
    assert by_id["r014"]["when.timezone"] == "+0530"
    assert by_id["r021"]["pick.bar"] is True and by_id["r021"]["pick.42"] is True
    assert by_id["r022"]["pick_other.other"] == "bar, baz, foo"
    assert by_id["r023"]["blob"] == '[1,3,5,7,"this is a string"]'


USER_METADATA_TEXTS = [
    None,
    '{"startDate": "2016-06-09T10:09:08Z", "taskRunCount": 2}',
    ' \n\t{"startDate": "2016-06-09T10:09:08.765+05:30", "taskRunCount": "3"} ',
    "null",
    " null ",
    "[1, 2]",
    '"{not an object}"',
    "{not json",
]


def test_user_metadata_of_any_shape_gives_the_reference_columns(tmp_path: Path) -> None:
    """Metadata columns and rawMetadata for objects (with JSON whitespace around them), JSON
    null, arrays, strings, numbers and text that is no JSON at all."""
    path = tmp_path / "records.sqlite"
    fields = [{"name": "startDate", "type": "TIMESTAMP"}, {"name": "taskRunCount", "type": "INT"}]
    with closing(one_study_store(path)) as connection, connection:
        connection.execute(
            "UPDATE studies SET upload_metadata_fields = ? WHERE id = 's'", [json.dumps(fields)]
        )
        connection.execute("INSERT INTO schemas VALUES ('s', 'plain', 1, '[]')")
        connection.execute("INSERT INTO participants VALUES ('s', 'hc', 'SPONSORS_AND_PARTNERS')")
        for index, text in enumerate(USER_METADATA_TEXTS):
            connection.execute(
                "INSERT INTO records (id, study_id, health_code, schema_id, schema_revision, "
                "uploaded_on, data, user_metadata, user_sharing_scope) "
                "VALUES (?, 's', 'hc', 'plain', 1, ?, '{}', ?, 'SPONSORS_AND_PARTNERS')",
                [f"m{index}", 1000 + index, text],
            )
    result = run_study(path, tmp_path / "wh", "s", SharingMode.SHARED)
    [table] = [t for t in result.tables if t.kind == "schema"]
    assert table.path is not None and table.rows == len(USER_METADATA_TEXTS)
    records = source_records(path, "s")
    rows = {row["recordId"]: row for row in rows_of(table.path)}
    checked = [
        column
        for column in table.columns
        if column.name.startswith("metadata.") or column.name == "rawMetadata"
    ]
    assert len(checked) == 4
    for record_id, row in rows.items():
        for column in checked:
            actual = row[column.name]
            if column.name == "rawMetadata" and actual is not None:
                actual = "present"
            expected = expected_cell(column, records[record_id], path)
            assert actual == expected, (record_id, column.name, actual)
    assert rows["m2"]["metadata.taskRunCount"] is None  # a string is no INT
    assert rows["m2"]["metadata.startDate.timezone"] == "+0530"
    assert [rows[f"m{i}"]["rawMetadata"] is None for i in (0, 3, 4, 7)] == [True] * 4
    assert rows["m5"]["rawMetadata"] == "[1, 2]"


def test_a_study_is_read_in_one_pass_over_its_rows_or_through_the_index(tmp_path: Path) -> None:
    """Rows of a study that sit together are read by one pass over their stretch of the
    table; rows scattered among other studies' through the index. Either way exactly the
    study's records in the window are exported."""
    path = tmp_path / "records.sqlite"
    # s's rows sit together; inside their stretch, 3 are beyond the window and 1 is u's.
    rows = [(f"s{n:02d}", "s", 2000 if n in (10, 11, 12) else 1000 + n) for n in range(30)]
    rows.insert(15, ("u-among-s", "u", 1005))
    for n in range(20):  # t's rows are one in three of their stretch
        rows += [(f"t{n:02d}", "t", 1000 + n), (f"u{n:02d}a", "u", 1000), (f"u{n:02d}b", "u", 1)]
    with closing(one_study_store(path)) as connection, connection:
        for study in ("t", "u"):
            connection.execute(
                "INSERT INTO studies (id, name, disable_export, uses_custom_export_schedule, "
                "study_id_excluded_in_export, upload_metadata_fields, project) "
                "VALUES (?, ?, 0, 0, 0, '[]', 'p')",
                [study, study.upper()],
            )
        connection.executemany(
            "INSERT INTO records (id, study_id, health_code, uploaded_on, data, "
            "user_sharing_scope) VALUES (?, ?, 'hc', ?, '{}', 'ALL_QUALIFIED_RESEARCHERS')",
            rows,
        )
    end = 1027
    expected = {
        study: {r for r, s, uploaded in rows if s == study and 1000 <= uploaded < end}
        for study in ("s", "t")
    }
    with _engine.connect(f"sqlite:///{path}", threads=1) as connection:
        for study, one_pass in (("s", True), ("t", False)):
            job = _engine.StudyJob(
                study_id=study,
                export_date=EXPORT_DATE,
                run_key="test",
                sharing_mode=SharingMode.ALL,
                start_ms=1000,
                end_ms=end,
            )
            source, _params = _engine._records_source(connection, job)
            assert ("NOT INDEXED" in source) is one_pass, study
            result = _engine.export_study(connection, job, tmp_path / "wh")
            [summary] = [t for t in result.tables if t.kind == "appVersion"]
            assert summary.path is not None
            assert {row["recordId"] for row in rows_of(summary.path)} == expected[study]
            assert result.counters["numTotal"] == len(expected[study])
