"""An S3 destination (moto's server on loopback): backups are stored there, drilled from
there, and a flipped byte in the stored object fails the drill; Litestream replicates there."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy.orm import Session

from dutydesk.backups import _litestream, service
from dutydesk.backups.continuous import replicated
from tests.backups.support import add_notes, make_source
from tests.conftest import clear_caches
from tests.test_worker import wait_until

BUCKET = "desk-backups"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A moto S3 server with a bucket, test credentials and the endpoint in the environment;
    yields a boto3 client."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("DUTYDESK_BACKUP_S3_ENDPOINT", endpoint)
    clear_caches()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def test_snapshot_is_stored_on_s3_and_drilled_from_there(
    s3: object, db: Session, tmp_path: Path
) -> None:
    client = s3
    url = make_source(tmp_path / "app.sqlite")
    target = service.add_target(db, "app", url, destination=f"s3://{BUCKET}/desk")
    backup = service.take_backup(db, target)
    assert backup.state == "succeeded", backup.error
    assert backup.location and backup.location.startswith(f"s3://{BUCKET}/desk/app-")
    key = backup.location.removeprefix(f"s3://{BUCKET}/")
    stored = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
    assert len(stored) == backup.size_bytes
    assert service.verify_backup(db, backup).state == "passed"

    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(damaged))  # type: ignore[attr-defined]
    drill = service.verify_backup(db, backup)
    assert drill.state == "failed" and "checksum mismatch" in (drill.error or "")


@pytest.mark.timeout(120)
def test_litestream_replicates_to_s3_and_restores_from_there(
    s3: object, db: Session, tmp_path: Path
) -> None:
    url = make_source(tmp_path / "app.sqlite", rows=10)
    target = service.add_target(
        db, "app", url, destination=f"s3://{BUCKET}/desk/app", continuous=True
    )
    config = _litestream.write_config([replicated(target)], tmp_path / "litestream.yml")
    child = _litestream.Replicator(config).start()  # the process backupd supervises
    try:
        db_view = replicated(target)
        wait_until(lambda: _litestream.newest_change(db_view), 60, "a first replicated change")
        add_notes(tmp_path / "app.sqlite", 5)
        time.sleep(3)
    finally:
        child.terminate()
        child.wait(timeout=30)
    restored = tmp_path / "restored.sqlite"
    _litestream.restore(replicated(target), restored)
    connection = sqlite3.connect(restored)
    try:
        assert connection.execute("SELECT count(*) FROM notes").fetchone() == (15,)
    finally:
        connection.close()
