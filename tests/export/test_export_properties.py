"""Property: for any drawn study, every exported cell and file is the reference's (§6-§8).

A bounded number of examples per store backend runs here; `bench/export_properties.py` runs
the same property long (`EXPORT_PROPERTY_EXAMPLES` sets the count).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from dutydesk.export import _engine
from dutydesk.export._sql import quote_literal
from dutydesk.records.store import upgrade_records
from tests.conftest import fresh_database_url
from tests.export.conftest import EXPORT_DATE
from tests.export.export_cases import Case, cases, check_export, read_table
from tests.export.store_builder import export_one, fill_store, stored_texts

EXAMPLES = int(os.environ.get("EXPORT_PROPERTY_EXAMPLES", "30"))
# Set to 0 to report a failing example as drawn, without the (slow) search for a smaller one.
SHRINK = os.environ.get("EXPORT_PROPERTY_SHRINK", "1") != "0"


@dataclass
class PropertyStore:
    """A migrated record store and one export database reading it (opening one costs half a
    second). A SQLite store is a fresh copy of a migrated file per example, attached in
    place of the last: DuckDB's SQLite and Python's are two copies of the library, and one
    must not write a file the other holds open (closing it drops the other's locks)."""

    url: str
    database: duckdb.DuckDBPyConnection
    template: Path | None
    folder: Path
    count: itertools.count[int]

    def next_url(self) -> str:
        """The store of the next example: a new SQLite copy, or the same PostgreSQL one."""
        if self.template is None:
            return self.url
        path = self.folder / f"records-{next(self.count)}.sqlite"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def attach(self, url: str) -> None:
        """Make `url` the store the export database reads."""
        if self.template is None:
            return
        self.database.execute("ROLLBACK")  # open_database keeps a transaction on the store
        self.database.execute("DETACH rs")
        path = url.removeprefix("sqlite:///")
        self.database.execute(f"ATTACH {quote_literal(path)} AS rs (TYPE sqlite, READ_ONLY)")
        self.database.execute("BEGIN TRANSACTION")


@pytest.fixture(scope="module")
def store(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PropertyStore]:
    """The record store of `backend` the examples fill, and its export database."""
    folder = tmp_path_factory.mktemp("props")
    url = fresh_database_url(backend, folder, "export_props")
    upgrade_records(url)
    template = folder / "export_props.sqlite" if backend == "sqlite" else None
    with closing(_engine.open_database(url, threads=1)) as database:
        yield PropertyStore(url, database, template, folder, itertools.count())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[p for p in Phase if SHRINK or p is not Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_every_exported_cell_and_file_is_the_references(store: PropertyStore, case: Case) -> None:
    url = store.next_url()
    if store.template is None:
        case.bad_data = set()  # PostgreSQL's json column refuses text that is no JSON
    with tempfile.TemporaryDirectory() as folder:
        files, warehouse = Path(folder) / "files", Path(folder) / "warehouse"
        files.mkdir()
        stored: dict[str, bytes | Path] = {}
        for index, (attachment, content) in enumerate(case.content.attachments.items()):
            assert isinstance(content, bytes)
            if attachment in case.in_files:
                path = files / str(index)
                path.write_bytes(content)
                stored[attachment] = path
            else:
                stored[attachment] = content
        fill_store(
            url,
            replace(case.content, attachments=stored),
            migrate=False,
            ensure_ascii=case.ensure_ascii,
            bad_data=case.bad_data,
        )
        case.stored_user_metadata = stored_texts(url, "user_metadata", case.content.study)
        store.attach(url)
        result = export_one(url, warehouse, case.content.study, case.mode, database=store.database)
        check_export(case, result, warehouse)
        with _engine.connect(url, database=store.database) as connection:
            status = _engine.write_status_row(
                connection, case.content.study, EXPORT_DATE, "test", warehouse
            )
        assert status.path is not None and status.error is None
        assert read_table(status.path) == [{"uploadDate": EXPORT_DATE}]
    if store.template is not None:
        Path(url.removeprefix("sqlite:///")).unlink()
