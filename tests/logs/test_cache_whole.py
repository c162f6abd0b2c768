"""The parsed cache answers an unchanged glob from its fill whole, and its answers are the
ones the files give without it: filters on text fields, top groups with percentiles, rows."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dutydesk.cli import app
from tests.logs.conftest import write_access_logs
from tests.logs.test_cache import key_of


def query(*args: str) -> str:
    result = CliRunner().invoke(app, ["logs", "query", *args, "--out", "csv"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def logs(log_root: Path) -> list[Path]:
    # Over the small path's limit (512 KiB of text), so the engine and its cache answer.
    return write_access_logs(log_root, files=8, lines=1000)


def whole_fill(root: Path) -> list[tuple[str, int]] | None:
    """What the cache answers `root` from when nothing changed (None: file by file)."""
    from dutydesk.logs import _cache
    from dutydesk.logs._files import FileList, Roots, list_local
    from dutydesk.settings import get_settings

    roots = Roots.parse(str(root))
    files = FileList()
    list_local(str(root), roots, files)
    cache = _cache.open_cache(get_settings())
    try:
        return cache.whole(files, key_of("nginx"), roots)
    finally:
        cache.close()


@pytest.mark.parametrize(
    "asked",
    [
        ("--group-by", "status"),
        ("--group-by", "hour", "--group-by", "status"),
        ("--group-by", "path", "--top", "3", "--percentiles", "bytes"),
        ("--group-by", "user_agent", "--top", "1", "--percentiles", "bytes"),
        ("--where", "path~/Firefox/.*WINNT.*/release/", "--where", "user_agent~Firefox/"),
        ("--where", "bytes=-", "--group-by", "status"),
        ("--where", "user_agent=curl/8.5.0", "--top", "5"),
    ],
)
def test_cached_answers_are_the_files_answers(
    log_root: Path, logs: list[Path], asked: tuple[str, ...]
) -> None:
    fresh = query(str(log_root), *asked, "--no-cache")
    assert query(str(log_root), *asked) == fresh  # fills the cache
    assert whole_fill(log_root) is not None
    assert query(str(log_root), *asked) == fresh  # answered from the fill whole


def test_an_unchanged_glob_is_answered_from_its_fill_and_a_change_ends_that(
    log_root: Path, logs: list[Path]
) -> None:
    before = query(str(log_root), "--group-by", "status")
    assert whole_fill(log_root) is not None
    with gzip.open(logs[2], "at") as handle:
        handle.write(
            '10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /new HTTP/1.1" 418 5 "-" "curl/8"\n'
        )
    assert whole_fill(log_root) is None  # its mtime and size changed
    after = query(str(log_root), "--group-by", "status")
    assert "418,1" in after.splitlines()
    assert after != before
    # A touched file (same size, newer mtime) is no longer served whole either.
    query(str(log_root), "--group-by", "status")
    status = os.stat(logs[5])
    os.utime(logs[5], ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    assert whole_fill(log_root) is None


@pytest.mark.parametrize("change", ["parsed again", "gone"])
def test_a_fill_is_not_served_whole_once_a_file_of_it_is_served_from_elsewhere(
    log_root: Path, logs: list[Path], change: str
) -> None:
    """Even when the file comes back as it was (same bytes, size and mtime): the fill's rows
    of it are no longer the ones the index serves."""
    query(str(log_root), "--group-by", "status")
    assert whole_fill(log_root) is not None
    kept = logs[3].read_bytes()
    status = os.stat(logs[3])
    if change == "gone":
        logs[3].unlink()
    else:
        with gzip.open(logs[3], "at") as handle:
            handle.write(
                '10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "-"\n'
            )
    query(str(log_root), "--group-by", "status")  # parses it again, or forgets it
    logs[3].write_bytes(kept)
    os.utime(logs[3], ns=(status.st_atime_ns, status.st_mtime_ns))
    assert whole_fill(log_root) is None
    assert query(str(log_root), "--group-by", "status") == query(
        str(log_root), "--group-by", "status", "--no-cache"
    )


def test_a_new_file_is_read_beside_the_fill(log_root: Path, logs: list[Path]) -> None:
    query(str(log_root), "--group-by", "status")
    write_access_logs(log_root / "later", files=1, lines=50, seed=5)
    assert query(str(log_root), "--group-by", "status") == query(
        str(log_root), "--group-by", "status", "--no-cache"
    )


def test_the_whole_fill_is_not_served_outside_the_roots(
    log_root: Path, logs: list[Path], home: Path
) -> None:
    from dutydesk.logs import _cache
    from dutydesk.logs._files import FileList, Roots, list_local
    from dutydesk.settings import get_settings

    query(str(log_root), "--group-by", "status")
    files = FileList()
    list_local(str(log_root), Roots.parse(str(log_root)), files)
    cache = _cache.open_cache(get_settings())
    try:
        assert cache.whole(files, key_of("nginx"), Roots.parse(str(log_root))) is not None
        assert cache.whole(files, key_of("nginx"), Roots.parse(str(home / "elsewhere"))) is None
        assert cache.whole(files, key_of("apache"), Roots.parse(str(log_root))) is None
        assert cache.whole(files, "nginx:parsed-otherwise", Roots.parse(str(log_root))) is None
    finally:
        cache.close()


def test_connections_share_a_database_but_not_its_lockdown_or_tables(tmp_path: Path) -> None:
    import duckdb
    import pyarrow as pa

    from dutydesk.logs import _engine
    from dutydesk.logs._files import Roots

    allowed, other = tmp_path / "allowed", tmp_path / "other"
    for folder in (allowed, other):
        folder.mkdir()
        (folder / "a.csv").write_text("x\n1\n")
    first = _engine.connect(Roots.parse(str(allowed)))
    second = _engine.connect(Roots.parse(str(allowed)))
    try:
        assert first.execute(f"SELECT x FROM read_csv('{allowed}/a.csv')").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error):
            first.execute(f"SELECT x FROM read_csv('{other}/a.csv')").fetchall()
        with pytest.raises(duckdb.Error):
            second.execute("SET enable_external_access = true")
        first.register("mine", pa.table({"x": [1]}))
        with pytest.raises(duckdb.CatalogException):
            second.execute("SELECT * FROM mine").fetchall()
        assert second.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    finally:
        first.close()
        second.close()
