"""The parsed cache of log files: served again, parsed again when changed, dropped when gone,
bounded, and never serving a file outside DUTYDESK_LOG_ROOTS."""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from tests.conftest import clear_caches
from tests.logs.conftest import write_access_logs

STATUS = re.compile(r'" (\d{3}) ')


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, ["logs", *args])


def ok(*args: str) -> Result:
    result = dutydesk(*args)
    assert result.exit_code == 0, result.output
    return result


def by_status(*args: str) -> dict[str, int]:
    """`logs query ARGS --group-by status` as {status: count}."""
    result = ok("query", *args, "--group-by", "status", "--out", "csv")
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "status,count"
    return {status: int(count) for status, count in (line.split(",") for line in lines[1:])}


def independent(files: list[Path]) -> dict[str, int]:
    """Statuses counted with gzip and re only."""
    counts: Counter[str] = Counter()
    for path in files:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                match = STATUS.search(line)
                assert match, line
                counts[match.group(1)] += 1
    return dict(counts)


def key_of(name: str) -> str:
    """How the cache keys files read in format `name` (its name and how it parses)."""
    from dutydesk.logs import _cache
    from dutydesk.logs._engine import Plan
    from dutydesk.logs.formats import get_format

    fmt = get_format(name)
    return _cache.format_key(Plan(fmt=fmt, columns=("file", *fmt.fields)))


def stats() -> dict[str, str]:
    result = ok("cache", "stats")
    return dict(line.split(None, 1) for line in result.stdout.strip().splitlines())


@pytest.fixture
def logs(log_root: Path) -> list[Path]:
    # Over the small path's limit (512 KiB of text), so the engine and its cache answer.
    return write_access_logs(log_root, files=8, lines=1000)


def test_a_repeated_query_is_served_from_the_cache(log_root: Path, logs: list[Path]) -> None:
    plain = log_root / "plain.log"
    plain.write_bytes(gzip.decompress(logs[0].read_bytes()))
    assert stats()["files"] == "0"
    first = by_status(str(log_root))
    assert first == Counter(independent(logs)) + Counter(independent(logs[:1]))
    assert stats()["files"] == str(len(logs) + 1)
    # Same size and mtime, other content: the cache answers as before, --no-cache reads it.
    status = os.stat(plain)
    plain.write_bytes(re.sub(rb'" \d{3} ', b'" 299 ', plain.read_bytes()))
    os.utime(plain, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert os.stat(plain).st_size == status.st_size
    assert by_status(str(log_root)) == first
    fresh = by_status(str(log_root), "--no-cache")
    assert fresh["299"] == sum(independent(logs[:1]).values())
    assert fresh != first


def test_no_cache_parses_every_file_and_leaves_the_cache_alone(
    log_root: Path, logs: list[Path]
) -> None:
    assert by_status(str(log_root), "--no-cache") == independent(logs)
    assert stats()["files"] == "0"


def test_a_changed_file_is_parsed_again(log_root: Path, logs: list[Path]) -> None:
    assert by_status(str(log_root)) == independent(logs)
    with gzip.open(logs[3], "at") as handle:
        handle.write(
            '10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /new HTTP/1.1" 418 5 "-" "curl/8"\n'
        )
    answer = by_status(str(log_root))
    assert answer["418"] == 1
    assert answer == independent(logs)


def test_a_new_file_is_read_and_a_deleted_one_drops_out(log_root: Path, logs: list[Path]) -> None:
    by_status(str(log_root))
    added = write_access_logs(log_root / "later", files=1, lines=50, seed=99)
    assert by_status(str(log_root)) == independent(logs + added)
    assert stats()["files"] == str(len(logs) + 1)
    logs[0].unlink()
    assert by_status(str(log_root)) == independent(logs[1:] + added)
    assert stats()["files"] == str(len(logs))


def test_the_least_recently_used_files_are_evicted(
    log_root: Path, logs: list[Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_status(str(log_root / "part0"))
    one = sum(path.stat().st_size for path in (home / "logcache").glob("*.arrow"))
    assert one > 0
    monkeypatch.setenv("DUTYDESK_LOG_CACHE_BYTES", str(one * 3 // 2))
    clear_caches()
    assert by_status(str(log_root / "part1")) == independent(logs[1::2])
    # Two segments do not fit: the one used least recently (part0's) went.
    assert stats()["files"] == str(len(logs) // 2)
    assert len(list((home / "logcache").glob("*.arrow"))) == 1
    assert by_status(str(log_root / "part0")) == independent(logs[0::2])
    assert stats()["files"] == str(len(logs) // 2)


def test_clear_empties_the_cache(log_root: Path, logs: list[Path]) -> None:
    by_status(str(log_root))
    assert stats()["files"] == str(len(logs))
    assert "cleared the log cache" in ok("cache", "clear").stdout
    after = stats()
    assert (after["files"], after["segments"]) == ("0", "0")


def test_the_cache_never_serves_a_file_outside_the_roots(
    log_root: Path, logs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_status(str(log_root))
    assert stats()["files"] == str(len(logs))
    elsewhere = tmp_path / "other-root"
    elsewhere.mkdir()
    monkeypatch.setenv("DUTYDESK_LOG_ROOTS", str(elsewhere))
    clear_caches()
    refused = dutydesk("query", str(log_root), "--group-by", "status")
    assert refused.exit_code != 0
    assert "outside" in refused.output
    # A link inside the new root to a cached file is not followed out of it either.
    (elsewhere / "link.log.gz").symlink_to(logs[0])
    linked = dutydesk("query", str(elsewhere), "--group-by", "status")
    assert "200" not in linked.stdout


def test_the_cache_checks_the_roots_itself(log_root: Path, logs: list[Path], home: Path) -> None:
    from dutydesk.logs import _cache
    from dutydesk.logs._files import FileList, Roots
    from dutydesk.settings import get_settings

    by_status(str(log_root))
    files = FileList()
    for path in logs:
        files.add(str(path), path.stat().st_size)
    cache = _cache.open_cache(get_settings())
    try:
        served, missing, _ = cache.lookup(files, key_of("nginx"), Roots.parse(str(log_root)))
        assert sum(len(paths) for paths in served.values()) == len(logs) and not missing
        served, missing, _ = cache.lookup(files, key_of("nginx"), Roots.parse(str(home)))
        assert not served and len(missing) == len(logs)
        served, missing, _ = cache.lookup(files, key_of("apache"), Roots.parse(str(log_root)))
        assert not served
    finally:
        cache.close()


def test_rows_come_from_the_cache_in_file_order(log_root: Path, logs: list[Path]) -> None:
    args = ("query", str(log_root), "--where", "status=500", "--out", "csv")
    cold = ok(*args, "--no-cache").stdout
    assert ok(*args).stdout == cold  # fills the cache
    assert stats()["files"] == str(len(logs))
    assert ok(*args).stdout == cold  # served from it
    assert ok(*args, "--top", "3").stdout.splitlines() == cold.splitlines()[:4]
