"""The warehouse on S3 (a moto server on loopback): the same tables as on disk, read back."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import fsspec
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.export import service
from dutydesk.export.models import WarehouseTable
from dutydesk.export.warehouse import Warehouse
from tests.conftest import clear_caches, make_user, sign_in
from tests.export.test_runs import END, START

BUCKET = "dutydesk-warehouse"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 endpoint with one empty bucket; the AWS environment points at it.

    Runs export one study at a time here: the test sessions share one connection.
    """
    monkeypatch.setenv("DUTYDESK_WORKER_CONCURRENCY", "1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    fsspec.filesystem("s3").clear_instance_cache()
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        fsspec.filesystem("s3").clear_instance_cache()
        server.stop()


def read_table(warehouse: Warehouse, study: str, key: str) -> list[tuple[object, ...]]:
    connection = duckdb.connect()
    warehouse.attach(connection)
    folder = warehouse.table_url(study, key)
    return connection.execute(
        f"SELECT * FROM read_parquet('{folder}/**/*.parquet', hive_partitioning=true, "
        "union_by_name=true) ORDER BY ALL"
    ).fetchall()


def run_export(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        run = service.start_run(
            session,
            {"useLastExportTime": False, "startDateTime": START, "endDateTime": END},
            created_by="test",
            queue=False,
        )
        session.commit()
        run_id = run.id
    done = service.run_in_foreground(factory, run_id, service.get_settings().effective_records_url)
    assert done.state == "succeeded", done.error
    return run_id


def test_an_s3_warehouse_gets_the_same_tables_and_files_as_a_folder(
    records: Path,
    s3: str,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_export(factory)
    local = Warehouse.at(records)
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", f"s3://{BUCKET}/research")
    clear_caches()
    remote = service.warehouse()
    assert not remote.is_local
    run_export(factory)

    files = remote.fs.find(f"{BUCKET}/research")
    assert files, "nothing was written to the bucket"
    assert not [name for name in files if name.endswith(".tmp")], "a temporary file was left"
    on_disk = sorted(
        str(path.relative_to(records)) for path in records.rglob("*") if path.is_file()
    )
    in_bucket = sorted(name.removeprefix(f"{BUCKET}/research/") for name in files)
    # Same layout; the part files are named by the run key, the same for the same request.
    assert in_bucket == on_disk
    attachments = [name for name in in_bucket if "/attachments/" in name]
    assert attachments, "the generated store has attachments; none reached the bucket"
    some = attachments[0]
    assert remote.fs.cat(f"{BUCKET}/research/{some}") == (records / some).read_bytes()

    tables = sorted({tuple(name.split("/")[:2]) for name in in_bucket})
    for study, key in tables:
        assert read_table(remote, study, key) == read_table(local, study, key), key


def test_table_pages_preview_and_download_from_s3(
    records: Path,
    s3: str,
    factory: sessionmaker[Session],
    db: Session,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", f"s3://{BUCKET}/research")
    clear_caches()
    run_export(factory)
    key = db.scalars(
        select(WarehouseTable.key).where(WarehouseTable.key.like("%-tapping-v%"))
    ).first()
    assert key is not None
    sign_in(client, db, make_user(db, "viewer"))
    viewer = client
    page = viewer.get(f"/exports/tables/{key}")
    assert page.status_code == 200
    assert "recordId" in page.text
    download = viewer.get(f"/exports/tables/{key}/download?format=csv")
    assert download.status_code == 200
    lines = download.text.strip().splitlines()
    assert lines[0].startswith("recordId,")
    assert len(lines) > 1
