"""The parsed cache: a changed file is parsed again whichever of size and mtime changed, and
nothing cached is served from outside DUTYDESK_LOG_ROOTS once the roots are narrowed."""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import clear_caches
from tests.logs.conftest import write_access_logs
from tests.logs.test_cache import by_status, dutydesk, independent, stats

STATUS = re.compile(rb'" (\d{3}) ')


@pytest.fixture
def logs(log_root: Path) -> list[Path]:
    # Over the small path's limit, so the engine and its cache answer.
    return write_access_logs(log_root, files=8, lines=1000)


def plain_copy(log_root: Path, source: Path) -> Path:
    """An un-gzipped copy of `source` in the root (easier to rewrite in place)."""
    plain = log_root / "plain.log"
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    return plain


def statuses(path: Path) -> Counter[str]:
    return Counter(m.group(1).decode() for m in STATUS.finditer(path.read_bytes()))


def test_a_file_rewritten_with_the_same_size_and_a_new_mtime_is_parsed_again(
    log_root: Path, logs: list[Path]
) -> None:
    plain = plain_copy(log_root, logs[0])
    before = by_status(str(log_root))
    assert before == Counter(independent(logs)) + statuses(plain)
    old = os.stat(plain)
    plain.write_bytes(re.sub(rb'" \d{3} ', b'" 299 ', plain.read_bytes()))
    os.utime(plain, ns=(old.st_atime_ns, old.st_mtime_ns + 5_000_000_000))
    assert os.stat(plain).st_size == old.st_size
    after = by_status(str(log_root))
    assert after == Counter(independent(logs)) + statuses(plain)
    assert after["299"] == sum(statuses(plain).values())


def test_a_file_with_the_same_mtime_and_a_new_size_is_parsed_again(
    log_root: Path, logs: list[Path]
) -> None:
    plain = plain_copy(log_root, logs[0])
    by_status(str(log_root))
    old = os.stat(plain)
    with plain.open("ab") as handle:
        handle.write(b'10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 418 5 "-" "x"\n')
    os.utime(plain, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(plain).st_mtime_ns == old.st_mtime_ns
    after = by_status(str(log_root))
    assert after["418"] == 1
    assert after == Counter(independent(logs)) + statuses(plain)


def narrow_roots(monkeypatch: pytest.MonkeyPatch, *roots: Path) -> None:
    monkeypatch.setenv("DUTYDESK_LOG_ROOTS", ",".join(str(root) for root in roots))
    clear_caches()


def test_roots_narrowed_after_the_cache_was_filled_refuse_what_they_no_longer_hold(
    log_root: Path, logs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert by_status(str(log_root)) == independent(logs)
    assert stats()["files"] == str(len(logs))
    narrow_roots(monkeypatch, log_root / "part0")
    # The folder that is still allowed is served (from the cache) as before.
    assert by_status(str(log_root / "part0")) == independent(logs[0::2])
    # The one no longer allowed is refused, whole or by a glob, cached or not.
    for source in (str(log_root), str(log_root / "part1"), str(log_root / "part1" / "*.gz")):
        refused = dutydesk("query", source, "--group-by", "status")
        assert refused.exit_code != 0
        assert "outside the allowed log roots" in refused.output


def test_a_link_inside_a_root_to_a_cached_file_outside_it_is_not_served(
    log_root: Path, logs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    by_status(str(log_root))  # every file cached
    allowed = log_root / "part0"
    narrow_roots(monkeypatch, allowed)
    outside = logs[1]  # in part1, cached while it was allowed
    (allowed / "sneaky.log.gz").symlink_to(outside)
    (allowed / "folder-link").symlink_to(log_root / "part1", target_is_directory=True)
    result = dutydesk("query", str(allowed), "--group-by", "status", "--out", "csv")
    assert result.exit_code == 0, result.output
    counts = {
        status: int(count)
        for status, count in (line.split(",") for line in result.stdout.strip().splitlines()[1:])
    }
    assert counts == independent(logs[0::2])  # part0's own files only
    assert f"{allowed}/sneaky.log.gz: leads outside the allowed log roots" in result.stderr
    assert f"{allowed}/folder-link: leads outside the allowed log roots" in result.stderr


def test_the_cache_serves_auto_queries_over_a_mixed_folder_the_same_answer(
    log_root: Path, logs: list[Path]
) -> None:
    alb = (Path(__file__).parent / "fixtures" / "alb.log").read_text()
    (log_root / "part0" / "zz-alb.log").write_text(alb)
    alb_statuses = Counter(line.split()[8] for line in alb.splitlines())  # the ninth field
    cold = by_status(str(log_root), "--no-cache")
    assert cold == Counter(independent(logs)) + alb_statuses
    assert by_status(str(log_root)) == cold  # fills the cache
    assert by_status(str(log_root)) == cold  # served from it
    # The ALB file rewritten as nginx lines is read as nginx now.
    (log_root / "part0" / "zz-alb.log").write_text(
        '10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 418 5 "-" "x"\n'
    )
    assert by_status(str(log_root)) == Counter(independent(logs)) + Counter({"418": 1})
