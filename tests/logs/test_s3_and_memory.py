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


def test_a_big_s3_object_is_streamed_not_fetched_whole(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk.logs import Query, _s3, _sources, run

    line = (
        '203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] "GET /a/b?c=d HTTP/1.1" {status} 1234 '
        '"-" "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"\n'
    )
    text = "".join(line.format(status=200 + (n % 3) * 100) for n in range(60_000))
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="web/big.log.gz", Body=gzip.compress(text.encode()))
    small = write_access_logs(tmp_path / "local", files=2, lines=30)
    for path in small:
        client.upload_file(str(path), BUCKET, f"web/{path.name}")
    monkeypatch.setenv("DUTYDESK_LOG_ROOTS", f"s3://{BUCKET}/web")
    clear_caches()
    # Objects over 16 KiB on the store stream, in chunks of 16 KiB: the big one is about 40 KiB
    # gzipped, 9 MB of text; the small ones under 1 KiB.
    monkeypatch.setattr(_sources, "STREAM_BYTES", 16 * 1024)
    fetched: list[str] = []
    opened: list[str] = []
    fetch, open_ = _s3.S3.fetch_each, _s3.S3.open

    def spy_fetch(
        self: _s3.S3, urls: list[str], sizes: list[int]
    ) -> Iterator[bytes | _sources.Problem]:
        fetched.extend(urls)
        return fetch(self, urls, sizes)

    def spy_open(self: _s3.S3, url: str) -> object:
        opened.append(url)
        return open_(self, url)

    monkeypatch.setattr(_s3.S3, "fetch_each", spy_fetch)
    monkeypatch.setattr(_s3.S3, "open", spy_open)
    result = run(Query((f"s3://{BUCKET}/web/*.gz",), format="nginx", group_by=("status",)))
    counts = dict(
        zip(
            result.table.column("status").to_pylist(),
            result.table.column("count").to_pylist(),
            strict=True,
        )
    )
    small_lines = 0
    for path in small:
        with gzip.open(path, "rt") as handle:
            small_lines += sum(1 for _ in handle)
    assert sum(counts.values()) == 60_000 + small_lines
    assert counts[300] >= 20_000 and counts[400] >= 20_000
    assert opened == [f"s3://{BUCKET}/web/big.log.gz"]
    assert f"s3://{BUCKET}/web/big.log.gz" not in fetched
    assert sorted(fetched) == sorted(f"s3://{BUCKET}/web/{path.name}" for path in small)
    assert result.report.problems == []


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
