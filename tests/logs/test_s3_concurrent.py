"""S3 objects listed and fetched many at once, against the benchmark's S3 file server on
loopback behind its latency proxy (both from `bench/s3server.py`)."""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dutydesk.logs import Query, QueryError, run
from dutydesk.logs._engine import S3Access
from dutydesk.logs._files import FileList, Problem, Roots
from dutydesk.logs._rest import S3Rest
from dutydesk.logs._s3 import S3, glob_regex
from dutydesk.settings import get_settings
from tests.conftest import clear_caches
from tests.logs.conftest import write_access_logs

BUCKET = "seed-logs"
SERVER_SOURCE = Path(__file__).resolve().parents[2] / "bench" / "s3server.py"


def _server_module() -> ModuleType:
    name = "dutydesk_bench_s3server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SERVER_SOURCE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Bucket:
    """A served folder: `root / BUCKET` is the bucket; `proxy` holds requests `latency` s."""

    def __init__(self, root: Path, latency: float) -> None:
        module = _server_module()
        self.folder = root / BUCKET
        self.folder.mkdir(parents=True, exist_ok=True)
        self.server: Any = module.S3FileServer(root)
        self.proxy: Any = module.LatencyProxy(self.server.endpoint, latency)
        self.server.start()
        self.proxy.start()

    def put(self, key: str, data: bytes) -> None:
        path = self.folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.server.reindex()

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """The S3 file server behind 20 ms of latency, with test credentials and endpoint set."""
    served = Bucket(tmp_path / "served", latency=0.02)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DUTYDESK_LOG_S3_ENDPOINT": served.proxy.endpoint,
        "DUTYDESK_LOG_ROOTS": f"s3://{BUCKET}/web,{tmp_path / 'local'}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    clear_caches()
    yield served
    served.stop()


def _upload(bucket: Bucket, files: list[Path], root: Path, prefix: str) -> None:
    for path in files:
        target = bucket.folder / prefix / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    bucket.server.reindex()


def test_s3_answers_equal_the_answers_over_the_same_local_files(
    bucket: Bucket, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    files = write_access_logs(local, files=24, lines=40)
    _upload(bucket, files, local, "web/2026")
    asked = [
        dict(group_by=("status",)),
        dict(group_by=("hour", "status")),
        dict(group_by=("path",), top=3, percentiles="bytes"),
        dict(where=("path~/update/", "status=200")),
    ]
    for options in asked:
        here = run(Query((str(local),), format="nginx", **options), cache=False)  # type: ignore[arg-type]
        for source in (f"s3://{BUCKET}/web/", f"s3://{BUCKET}/web/2026/part*/*.log.gz"):
            there = run(Query((source,), format="nginx", **options), cache=False)  # type: ignore[arg-type]
            assert there.report.files == 24 and there.report.problems == []
            columns = [name for name in here.table.column_names if name != "file"]
            assert there.table.select(columns).to_pylist() == here.table.select(columns).to_pylist()


def test_listing_gives_each_object_its_size_and_etag(bucket: Bucket) -> None:
    bucket.put("web/a/one.log", b"x" * 10)
    bucket.put("web/a/b/two.log", b"y" * 20)
    bucket.put("web/c/three.log", b"z" * 30)
    bucket.put("web/top.log", b"t")
    settings = get_settings()
    s3 = S3(settings, Roots.parse(settings.effective_log_roots))
    try:
        found = FileList()
        s3.list_into(f"s3://{BUCKET}/web", found)
        assert found.files == [
            f"s3://{BUCKET}/web/a/b/two.log",
            f"s3://{BUCKET}/web/a/one.log",
            f"s3://{BUCKET}/web/c/three.log",
            f"s3://{BUCKET}/web/top.log",
        ]
        assert found.sizes == [20, 10, 30, 1]
        assert found.etags[f"s3://{BUCKET}/web/top.log"] == "e358efa489f58062f10dd7316b65649e"
        globbed = FileList()
        s3.list_into(f"s3://{BUCKET}/web/*/*.log", globbed)
        assert globbed.files == [f"s3://{BUCKET}/web/a/one.log", f"s3://{BUCKET}/web/c/three.log"]
        deep = FileList()
        s3.list_into(f"s3://{BUCKET}/web/**/t*.log", deep)
        assert deep.files == [f"s3://{BUCKET}/web/a/b/two.log", f"s3://{BUCKET}/web/c/three.log"]
        single = FileList()
        s3.list_into(f"s3://{BUCKET}/web/a/one.log", single)
        assert single.files == [f"s3://{BUCKET}/web/a/one.log"]
    finally:
        s3.close()


def test_a_listing_of_many_pages_is_followed_to_its_end(bucket: Bucket) -> None:
    for index in range(1_030):  # more than the 1,000 keys of one page
        (bucket.folder / "web" / "many").mkdir(parents=True, exist_ok=True)
        (bucket.folder / "web" / "many" / f"{index:05d}.log").write_bytes(b"line\n")
    bucket.server.reindex()
    settings = get_settings()
    s3 = S3(settings, Roots.parse(settings.effective_log_roots))
    try:
        found = FileList()
        s3.list_into(f"s3://{BUCKET}/web/many/", found)
    finally:
        s3.close()
    assert len(found.files) == 1_030
    assert bucket.server.requests["LIST"] == 2  # two pages, one after the other


def test_objects_outside_the_roots_are_refused_and_never_fetched(bucket: Bucket) -> None:
    bucket.put("private/secret.log.gz", gzip.compress(b"secret\n"))
    bucket.put("web/ok.log", b"fine\n")
    for source in (
        f"s3://{BUCKET}/private/*.gz",
        f"s3://{BUCKET}/private/",
        f"s3://{BUCKET}/web/../private/secret.log.gz",
        f"s3://{BUCKET}/*/secret.log.gz",
    ):
        with pytest.raises(QueryError, match="outside the allowed log roots"):
            run(Query((source,), format="nginx"))
    settings = get_settings()
    s3 = S3(settings, Roots.parse(settings.effective_log_roots))
    try:
        fetched = list(s3.fetch_each([f"s3://{BUCKET}/private/secret.log.gz"], [0]))
    finally:
        s3.close()
    assert fetched == [
        Problem(f"s3://{BUCKET}/private/secret.log.gz", "outside the allowed log roots")
    ]
    assert bucket.server.requests.get("GET", 0) == 0


def test_a_missing_or_damaged_object_is_reported_and_the_rest_answered(
    bucket: Bucket, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    files = write_access_logs(local, files=6, lines=30)
    _upload(bucket, files, local, "web")
    bucket.put("web/part0/broken.log.gz", b"\x1f\x8bnot gzip at all")
    bucket.put("web/part1/gone.log.gz", gzip.compress(b"listed, then deleted\n"))
    settings = get_settings()
    s3 = S3(settings, Roots.parse(settings.effective_log_roots))
    try:
        found = FileList()
        s3.list_into(f"s3://{BUCKET}/web/", found)
        (bucket.folder / "web" / "part1" / "gone.log.gz").unlink()  # gone after the listing
        contents = list(s3.fetch_each(found.files, found.sizes))
    finally:
        s3.close()
    reasons = {item.file: item.reason for item in contents if isinstance(item, Problem)}
    assert reasons[f"s3://{BUCKET}/web/part1/gone.log.gz"] == "not found"
    assert "not a readable gzip file" in reasons[f"s3://{BUCKET}/web/part0/broken.log.gz"]
    assert sum(isinstance(item, bytes) for item in contents) == 6

    bucket.server.reindex()  # the listing no longer names it
    result = run(Query((f"s3://{BUCKET}/web/",), format="nginx", group_by=("status",)))
    assert sum(result.table.column("count").to_pylist()) == 6 * 30
    assert [problem.file for problem in result.report.problems] == [
        f"s3://{BUCKET}/web/part0/broken.log.gz"
    ]


def test_objects_are_fetched_many_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = Bucket(tmp_path / "served", latency=0.1)
    try:
        for index in range(40):
            (slow.folder / "web").mkdir(parents=True, exist_ok=True)
            (slow.folder / "web" / f"{index:02d}.log.gz").write_bytes(
                gzip.compress(f"line {index}\n".encode())
            )
        slow.server.reindex()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("DUTYDESK_LOG_S3_ENDPOINT", slow.proxy.endpoint)
        monkeypatch.setenv("DUTYDESK_LOG_ROOTS", f"s3://{BUCKET}/web")
        clear_caches()
        settings = get_settings()
        s3 = S3(settings, Roots.parse(settings.effective_log_roots))
        try:
            found = FileList()
            s3.list_into(f"s3://{BUCKET}/web/", found)
            began = time.perf_counter()
            texts = list(s3.fetch_each(found.files, found.sizes))
            seconds = time.perf_counter() - began
        finally:
            s3.close()
    finally:
        slow.stop()
    assert texts == [f"line {index}\n".encode() for index in range(40)]  # in listing order
    assert slow.proxy.most_in_flight >= 8
    assert seconds < 0.5 * 40 * 0.1, f"40 objects at 100 ms took {seconds:.2f} s"


def test_memory_stays_bounded_by_the_fetched_ahead_bytes(bucket: Bucket) -> None:
    from dutydesk.logs import _s3

    for index in range(80):
        (bucket.folder / "web" / "big").mkdir(parents=True, exist_ok=True)
        (bucket.folder / "web" / "big" / f"{index:02d}.log").write_bytes(b"x" * 50_000 + b"\n")
    bucket.server.reindex()
    settings = get_settings()
    s3 = S3(settings, Roots.parse(settings.effective_log_roots))
    original = _s3.AHEAD_BYTES
    _s3.AHEAD_BYTES = 120_000  # about two objects
    try:
        found = FileList()
        s3.list_into(f"s3://{BUCKET}/web/big/", found)
        reader = s3.fetch_each(found.files, found.sizes)
        first = next(reader)
        time.sleep(0.3)  # time enough to fetch everything, were it allowed
        fetched_early = bucket.server.requests.get("GET", 0)
        rest = list(reader)
    finally:
        _s3.AHEAD_BYTES = original
        s3.close()
    assert isinstance(first, bytes) and len(rest) == 79
    assert fetched_early <= 2 * _s3.FETCH_GROUP, fetched_early


def test_requests_are_signed_as_botocore_signs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    access = S3Access(
        key_id="AKIDEXAMPLE",
        secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token="token/with+chars",
        region="eu-west-1",
        endpoint="",
        use_ssl=True,
    )
    rest = S3Rest(access)
    moment = dt.datetime(2026, 12, 7, 6, 30, 5, tzinfo=dt.UTC)
    monkeypatch.setattr(rest, "_stamp", lambda: moment.strftime("%Y%m%dT%H%M%SZ"))
    host = "seed-logs.s3.eu-west-1.amazonaws.com"
    target = "/web/2026/a%20b%2Bc.log.gz"
    query = "continuation-token=a%2Fb%3D&list-type=2&prefix=web%2F2026%2F"
    ours = rest._signed(host, target, query, "eu-west-1")

    request = AWSRequest(method="GET", url=f"https://{host}{target}?{query}")
    request.headers["X-Amz-Date"] = ours["x-amz-date"]
    request.headers["X-Amz-Content-SHA256"] = ours["x-amz-content-sha256"]
    request.headers["X-Amz-Security-Token"] = access.session_token
    request.context["timestamp"] = ours["x-amz-date"]
    signer = S3SigV4Auth(Credentials(access.key_id, access.secret), "s3", "eu-west-1")
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert ours["authorization"].endswith(f"Signature={expected}")
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
        in (ours["authorization"])
    )


def test_globs_match_as_duckdbs_did() -> None:
    assert glob_regex("web/*/*.gz").match("web/a/b.gz")
    assert not glob_regex("web/*/*.gz").match("web/a/b/c.gz")
    assert glob_regex("web/**/*.gz").match("web/a/b/c.gz")
    assert glob_regex("web/x?.log").match("web/x1.log")
    assert glob_regex("web/[ab].log").match("web/b.log")
    assert not glob_regex("web/[!ab].log").match("web/a.log")
    assert not glob_regex("web/*.gz").match("web/a.gz.tmp")


def test_a_second_query_fetches_no_object_and_a_changed_object_is_fetched_again(
    bucket: Bucket, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    files = write_access_logs(local, files=8, lines=30)
    _upload(bucket, files, local, "web")
    query = Query((f"s3://{BUCKET}/web/",), format="nginx", group_by=("status",))

    def counts() -> dict[int, int]:
        table = run(query).table
        statuses, numbers = table.column("status").to_pylist(), table.column("count").to_pylist()
        return dict(zip(statuses, numbers, strict=True))

    first = counts()
    assert bucket.server.requests["GET"] == 8
    assert counts() == first
    assert bucket.server.requests["GET"] == 8  # answered from the cache: no body fetched

    changed = bucket.folder / "web" / files[0].relative_to(local)
    text = gzip.decompress(changed.read_bytes()).decode()
    extra = text.splitlines(keepends=True)[0]
    changed.write_bytes(gzip.compress((text + extra * 5).encode()))  # a new ETag
    bucket.server.reindex()
    status = int(extra.split('" ', 1)[1].split()[0])
    again = counts()
    assert bucket.server.requests["GET"] == 9  # only the changed object
    assert again == {**first, status: first[status] + 5}

    (bucket.folder / "web" / files[1].relative_to(local)).unlink()
    bucket.server.reindex()
    gone = counts()
    assert bucket.server.requests["GET"] == 9
    assert sum(gone.values()) == sum(again.values()) - 30


def test_a_query_over_local_files_and_s3_objects_reads_both(bucket: Bucket, tmp_path: Path) -> None:
    local = tmp_path / "local"
    files = write_access_logs(local, files=6, lines=20)
    _upload(bucket, files[:3], local, "web")
    for path in files[:3]:
        path.unlink()
    query = Query((str(local), f"s3://{BUCKET}/web/"), format="nginx", group_by=("status",))
    result = run(query, cache=False)
    assert result.report.problems == [] and result.report.files == 6
    assert sum(result.table.column("count").to_pylist()) == 6 * 20
