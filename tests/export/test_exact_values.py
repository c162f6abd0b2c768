"""Values the spec gives no cell for: a 0-byte attachment and an impossible calendar date.

Each runs on a SQLite and (when configured) a PostgreSQL record store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from dutydesk.export import _values
from dutydesk.export._cells import field_cell
from dutydesk.export._columns import (
    Conversion,
    Document,
    FieldValue,
    TimestampMillis,
    TimestampZone,
)
from dutydesk.export._engine import TableResult
from tests.conftest import fresh_database_url
from tests.export.store_builder import StoreContent, export_one, fill_store

SCOPE = "ALL_QUALIFIED_RESEARCHERS"


def record(record_id: str, uploaded_on: int, **columns: Any) -> dict[str, Any]:
    """A record of participant `hc` of schema `t` v1, shared with every researcher."""
    return {
        "id": record_id,
        "health_code": "hc",
        "schema_id": "t",
        "schema_revision": 1,
        "uploaded_on": uploaded_on,
        "user_sharing_scope": SCOPE,
        "data": {},
    } | columns


def schema_table(backend: str, tmp_path: Path, name: str, content: StoreContent) -> TableResult:
    """The one schema table of `content`'s study, exported from a fresh store of `backend`
    into the warehouse `tmp_path / "wh"`."""
    url = fresh_database_url(backend, tmp_path, name)
    fill_store(url, content)
    [table] = [t for t in export_one(url, tmp_path / "wh").tables if t.kind == "schema"]
    return table


def table_rows(path: str) -> dict[str, dict[str, Any]]:
    """The rows of a table file by record id, timestamps as epoch ms."""
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning = false)")
    stamps = [
        name
        for name, kind in zip(relation.columns, relation.types, strict=True)
        if kind == "TIMESTAMP"
    ]
    if stamps:
        replaced = ", ".join(f'epoch_ms("{name}") AS "{name}"' for name in stamps)
        relation = duckdb.sql(
            f"SELECT * REPLACE ({replaced}) FROM read_parquet('{path}', hive_partitioning = false)"
        )
    names = relation.columns
    rows = [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
    return {row["recordId"]: row for row in rows}


def test_reference_gives_a_zero_byte_attachment_no_handle() -> None:
    source = FieldValue(Document.DATA, "file", Conversion.ATTACHMENT)
    contents = {"empty": b"", "full": b"x"}
    document = {"file": "empty"}
    assert field_cell(source, document, read_content=contents.get) is None
    assert field_cell(source, {"file": "full"}, read_content=contents.get) == "full"
    # Not in the store: the reference keeps the id (a missing S3 object is no 0-length one).
    assert field_cell(source, {"file": "gone"}, read_content=contents.get) == "gone"
    assert _values.attachment_handle("empty", b"") is None
    assert _values.attachment_handle("r", None) == "r"


def test_a_zero_byte_attachment_gives_empty_cells_and_no_file(backend: str, tmp_path: Path) -> None:
    """A 0-byte attachment, inline or in an empty file, as a field and as rawData: its cells
    are empty and no file is written; a non-empty attachment that one record names both as a
    field and as rawData gets both of its files."""
    empty_file = tmp_path / "empty.bin"
    empty_file.write_bytes(b"")
    content = StoreContent(
        schemas={
            ("t", 1): [
                {"name": "file", "type": "ATTACHMENT_V2"},
                {"name": "table.csv", "type": "ATTACHMENT_CSV"},
            ]
        },
        participants={"hc": SCOPE},
        attachments={"empty-inline": b"", "empty-path": empty_file, "full": b"hello"},
        records=[
            record(
                "r1",
                1000,
                data={"file": "empty-inline", "table.csv": "empty-path"},
                raw_data_attachment_id="empty-inline",
            ),
            record("r2", 1001, data={"file": "full"}, raw_data_attachment_id="empty-path"),
            record("r3", 1002, data={"table.csv": "full"}, raw_data_attachment_id="full"),
        ],
    )
    warehouse = tmp_path / "wh"
    table = schema_table(backend, tmp_path, "zero_byte", content)
    assert table.path is not None
    rows = table_rows(table.path)
    cells = {rid: (row["file"], row["table.csv"], row["rawData"]) for rid, row in rows.items()}
    assert cells == {
        "r1": (None, None, None),
        "r2": ("file-full", None, None),
        "r3": (None, "table-full.csv", "full"),
    }
    folder = warehouse / "s" / "s-t-v1" / "attachments"
    written = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert written == {"file-full": b"hello", "table-full.csv": b"hello", "full": b"hello"}
    assert not list(warehouse.rglob("*.tmp"))


def test_an_impossible_calendar_date_gives_no_timestamp_columns(
    backend: str, tmp_path: Path
) -> None:
    """A TIMESTAMP value with a day past its month's end (or year 0000) has neither its time
    nor its `.timezone` cell, in data and in upload metadata alike; its neighbours have both."""
    texts = {
        "bad-feb": "2016-02-30T00:00:00Z",
        "bad-leap": "2015-02-29T10:00:00+05:30",
        "bad-april": "2016-04-31T10:09:08.765+0530",
        "year-zero": "0000-06-01T00:00:00Z",
        "leap": "2016-02-29T00:00:00Z",
        "offset": "2016-06-09T10:09:08.765+0530",
        "lenient-bad": "2016-02-30",
    }
    content = StoreContent(
        schemas={("t", 1): [{"name": "when", "type": "TIMESTAMP"}]},
        metadata_fields=[{"name": "start", "type": "TIMESTAMP"}],
        participants={"hc": SCOPE},
        records=[
            record(rid, 1000 + n, data={"when": text}, user_metadata={"start": text})
            for n, (rid, text) in enumerate(texts.items())
        ],
    )
    table = schema_table(backend, tmp_path, "bad_dates", content)
    assert table.path is not None
    rows = table_rows(table.path)
    for rid, text in texts.items():
        expected = _values.parse_timestamp(text)
        for name in ("when", "metadata.start"):
            cells = (rows[rid][name], rows[rid][f"{name}.timezone"])
            assert cells == (expected or (None, None)), (rid, name, cells)
    for rid in ("bad-feb", "bad-leap", "bad-april", "year-zero", "lenient-bad"):
        assert rows[rid]["when"] is None and rows[rid]["when.timezone"] is None, rid
    assert rows["leap"]["when.timezone"] == "+0000"
    assert rows["offset"]["when"] == 1465447148765
    assert rows["offset"]["when.timezone"] == "+0530"
    # The reference agrees for both columns of a field.
    for source in (TimestampMillis(Document.DATA, "when"), TimestampZone(Document.DATA, "when")):
        assert field_cell(source, {"when": texts["bad-feb"]}) is None


def test_edge_values_found_by_the_property_test_give_the_reference_cells(
    backend: str, tmp_path: Path
) -> None:
    """A timestamp number or createdOn beyond what a timestamp column holds leaves its cells
    empty (the table is still written); a rawData id of only whitespace is blank (Java's
    whitespace: tab too); a data group named "" is joined like any other."""
    content = StoreContent(
        schemas={("t", 1): [{"name": "when", "type": "TIMESTAMP"}]},
        participants={"hc": SCOPE},
        records=[
            record("far", 1000, data={"when": 10**16}, created_on=-(10**16)),
            record("near", 1001, data={"when": 10**15}, created_on=10**15),
            record("tab", 1002, raw_data_attachment_id="\t"),
            record("spaced", 1003, raw_data_attachment_id=" x "),
            record("groups", 1004, user_data_groups=["", "b", "a"]),
            record("one-empty-group", 1005, user_data_groups=[""]),
            record("no-groups", 1006, user_data_groups=[]),
        ],
    )
    table = schema_table(backend, tmp_path, "edges", content)
    assert table.error is None and table.path is not None, table.error
    rows = table_rows(table.path)
    assert (rows["far"]["when"], rows["far"]["when.timezone"], rows["far"]["createdOn"]) == (
        None,
        None,
        None,
    )
    assert (rows["near"]["when"], rows["near"]["when.timezone"]) == (10**15, "+0000")
    assert rows["near"]["createdOn"] == 10**15
    assert rows["tab"]["rawData"] is None
    assert rows["spaced"]["rawData"] == " x "
    assert rows["groups"]["dataGroups"] == ",a,b"
    assert rows["one-empty-group"]["dataGroups"] == ""
    assert rows["no-groups"]["dataGroups"] is None
    assert _values.raw_data_attachment_id("\t") is None
    assert _values.data_groups([""]) == ""
    assert _values.to_timestamp(10**16) is None


def test_a_leftover_choice_that_is_empty_text_gives_an_empty_other_cell(
    backend: str, tmp_path: Path
) -> None:
    """The multi-choice `.other` cell joins the leftover choices, "" among them: [""] gives
    an empty text, no leftovers give no cell (found by the property test's long run)."""
    field = {
        "name": "pick",
        "type": "MULTI_CHOICE",
        "multiChoiceAnswerList": ["a", "b"],
        "allowOtherChoices": True,
    }
    picks = {
        "empty": [""],
        "empty-and-more": ["z", "", "a"],
        "none-left": ["a"],
        "nothing": [],
        "not-a-list": "a",
    }
    content = StoreContent(
        schemas={("t", 1): [field]},
        participants={"hc": SCOPE},
        records=[
            record(rid, 1000 + n, data={"pick": value})
            for n, (rid, value) in enumerate(picks.items())
        ],
    )
    table = schema_table(backend, tmp_path, "other_choices", content)
    assert table.path is not None
    rows = table_rows(table.path)
    others = {rid: rows[rid]["pick.other"] for rid in picks}
    assert others == {
        "empty": "",
        "empty-and-more": ", z",
        "none-left": None,
        "nothing": None,
        "not-a-list": None,
    }
    for rid, value in picks.items():
        assert others[rid] == _values.to_multi_choice(value, ["a", "b"], True).get("other"), rid


def test_fields_differing_only_in_case_fail_their_table_and_name_it(
    backend: str, tmp_path: Path
) -> None:
    """A schema with fields `a` and `A` cannot be one Parquet table that DuckDB, Spark or
    Synapse read (they match names without case, and DuckDB would write `A` as `A_1`): that
    table fails, naming the duplicate, and is not re-driven; the summary rows are written."""
    content = StoreContent(
        schemas={
            ("t", 1): [{"name": "a", "type": "INT"}, {"name": "A", "type": "INT"}],
            ("u", 1): [{"name": "a", "type": "INT"}],
        },
        participants={"hc": SCOPE},
        records=[
            record("r1", 1000, data={"a": 1, "A": 2}),
            record("r2", 1001, schema_id="u", data={"a": 3}),
        ],
    )
    url = fresh_database_url(backend, tmp_path, "case_names")
    fill_store(url, content)
    result = export_one(url, tmp_path / "wh")
    tables = {table.key: table for table in result.tables}
    failed = tables["s-t-v1"]
    assert failed.error is not None and "duplicate names: A" in failed.error
    assert failed.retryable is False and failed.path is None
    assert tables["s-u-v1"].error is None and tables["s-u-v1"].rows == 1
    summary = tables["s-appVersion"]
    assert summary.path is not None
    assert set(table_rows(summary.path)) == {"r1", "r2"}
    assert not (tmp_path / "wh" / "s" / "s-t-v1").exists()
