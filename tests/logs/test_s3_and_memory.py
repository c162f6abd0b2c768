"""S3 through DuckDB's httpfs against moto's server on loopback; big files in bounded memory."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from dutydesk.cli import app
from tests.conftest import clear_caches
from tests.logs.conftest import write_access_logs

BUCKET = "seed-logs"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on a free loopback port, with test credentials in the environment."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("DUTYDESK_LOG_S3_ENDPOINT", endpoint)
    clear_caches()
    yield endpoint
    server.stop()


def test_s3_globs_are_queried_through_httpfs(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_access_logs(tmp_path / "local", files=6, lines=50)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    for path in files:
        client.upload_file(str(path), BUCKET, f"web/2026/11/23/{path.name}")
    client.put_object(Bucket=BUCKET, Key="web/2026/11/23/broken.gz", Body=b"\x1f\x8bnot gzip")
    client.put_object(Bucket=BUCKET, Key="private/secret.gz", Body=gzip.compress(b"secret\n"))
    monkeypatch.setenv("DUTYDESK_LOG_ROOTS", f"s3://{BUCKET}/web")
    clear_caches()
    expected = 0
    for path in files:
        with gzip.open(path, "rt") as handle:
            expected += sum(1 for line in handle if '" 500 ' in line)
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["logs", "query", f"s3://{BUCKET}/web/2026/*/*/*.gz", "--format", "nginx",
         "--where", "status=500", "--group-by", "status", "--out", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == f"status,count\n500,{expected}\n"
    assert f"unreadable: s3://{BUCKET}/web/2026/11/23/broken.gz" in result.stderr
    refused = runner.invoke(app, ["logs", "query", f"s3://{BUCKET}/private/*.gz"])
    assert refused.exit_code == 2
    assert "outside the allowed log roots" in refused.stderr
    sneaky = runner.invoke(app, ["logs", "query", f"s3://{BUCKET}/web/../private/secret.gz"])
    assert sneaky.exit_code == 2


MEASURE = textwrap.dedent(
    """
    import resource, sys
    from dutydesk.logs import Query, run
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(Query((sys.argv[1],), format="nginx", group_by=("status",)))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(sum(result.table.column("count").to_pylist()), (after - before) // 1024)
    """
)


def test_a_file_bigger_than_duckdbs_memory_limit_is_counted_in_bounded_memory(
    log_root: Path,
) -> None:
    line = (
        '203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] "GET /a/rather/long/path/to/fill/the/file'
        '?with=a&query=string HTTP/1.1" 200 1234 "https://desk.example.org/" "Mozilla/5.0 '
        '(Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"\n'
    )
    repeat = 400_000  # about 95 MB, nearly four times DuckDB's limit below
    big = log_root / "big.log"
    with big.open("w") as handle:
        for _ in range(repeat // 10_000):
            handle.write(line * 10_000)
    env = {"DUTYDESK_LOG_QUERY_MEMORY": "25MB", "DUTYDESK_LOG_ROOTS": str(log_root)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(big)],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, **env},
    )
    count, grown_mb = map(int, done.stdout.split())
    print(f"peak memory grew by {grown_mb} MB")
    assert count == repeat
    assert big.stat().st_size > 3 * 25 * 1024 * 1024
    assert grown_mb < 120, f"memory grew by {grown_mb} MB reading {big.stat().st_size} bytes"
