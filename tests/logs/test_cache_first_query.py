"""A first query with the parsed cache on answers as fast as one without it: it parses only its
own fields and leaves the cache's fill for after the answer (the CLI fills then, Ctrl-C skips;
the console never fills inside a request). An interrupted fill leaves the cache consistent."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import clear_caches, make_user, sign_in
from tests.logs.conftest import write_access_logs
from tests.logs.test_cache import by_status, dutydesk, independent, ok, stats


@pytest.fixture
def logs(log_root: Path) -> list[Path]:
    # Over the small path's limit (512 KiB of text), so the engine and its cache answer.
    return write_access_logs(log_root, files=8, lines=1000)


def _query(root: Path) -> object:
    from dutydesk.logs import Query

    return Query((str(root),), format="nginx", group_by=("status",))


def _counts(table: object) -> dict[str, int]:
    rows = table.to_pylist()  # type: ignore[attr-defined]
    return {str(row["status"]): row["count"] for row in rows}


def _cached_files() -> int:
    return int(stats()["files"])


def test_a_first_query_answers_before_filling_and_leaves_the_fill_for_later(
    log_root: Path, logs: list[Path]
) -> None:
    from dutydesk.logs import run

    first = run(_query(log_root), fill_later=True)  # type: ignore[arg-type]
    assert _counts(first.table) == independent(logs)
    assert first.fill is not None
    assert _cached_files() == 0  # answered from its own parse, nothing written yet
    assert first.fill() == len(logs)
    assert _cached_files() == len(logs)
    again = run(_query(log_root), fill_later=True)  # type: ignore[arg-type]
    assert again.fill is None and _counts(again.table) == independent(logs)


def test_a_first_auto_query_leaves_each_formats_fill_for_later(
    log_root: Path, logs: list[Path]
) -> None:
    from dutydesk.logs import Query, run

    asked = Query((str(log_root),), format="auto", group_by=("status",))
    first = run(asked, fill_later=True)
    assert _counts(first.table) == independent(logs)
    assert first.fill is not None and _cached_files() == 0
    assert first.fill() == len(logs)
    again = run(asked, fill_later=True)
    assert again.fill is None and _counts(again.table) == independent(logs)


def test_a_few_new_files_are_filled_at_once(log_root: Path, logs: list[Path]) -> None:
    from dutydesk.logs import run

    pending = run(_query(log_root), fill_later=True).fill  # type: ignore[arg-type]
    assert pending is not None
    pending()
    (new,) = write_access_logs(log_root / "new", files=1, lines=50, seed=11)
    result = run(_query(log_root), fill_later=True)  # type: ignore[arg-type]
    assert result.fill is None  # a small share of the bytes: parsed into the cache at once
    assert _counts(result.table) == independent([*logs, new])
    assert _cached_files() == len(logs) + 1


def test_the_cli_fills_after_the_answer_and_ctrl_c_skips(
    log_root: Path, logs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk.logs import _cache

    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(_cache, "fill", interrupted)
        skipped = ok("query", str(log_root), "--group-by", "status", "--out", "csv")
    assert "filling the parsed cache for next time" in skipped.stderr
    assert "skipped" in skipped.stderr
    assert skipped.stdout.startswith("status,count\n")
    assert _cached_files() == 0

    filled = ok("query", str(log_root), "--group-by", "status", "--out", "csv")
    assert "filling the parsed cache for next time" in filled.stderr
    assert filled.stdout == skipped.stdout
    assert _cached_files() == len(logs)
    again = ok("query", str(log_root), "--group-by", "status", "--out", "csv")
    assert "filling" not in again.stderr and again.stdout == filled.stdout


def test_a_fill_interrupted_between_segments_serves_only_whole_segments(
    log_root: Path, logs: list[Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk.logs import _cache, _segments, run

    monkeypatch.setattr(_cache, "FILL_BYTES", 1)  # a segment per file
    written: list[Path] = []
    real_write = _segments.write

    def write_then_stop(target: Path, parts: object) -> int:
        if len(written) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third segment is written
        written.append(target)
        return real_write(target, parts)  # type: ignore[arg-type]

    pending = run(_query(log_root), fill_later=True).fill  # type: ignore[arg-type]
    assert pending is not None
    monkeypatch.setattr(_segments, "write", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pending()
    monkeypatch.setattr(_segments, "write", real_write)
    assert _cached_files() == 2
    assert not list((home / "logcache").glob(".*.tmp"))
    assert by_status(str(log_root)) == independent(logs)  # the other half parsed
    assert by_status(str(log_root)) == independent(logs)


def test_a_fill_killed_with_sigkill_leaves_the_cache_consistent(
    log_root: Path, logs: list[Path], home: Path
) -> None:
    script = (
        "import sys\n"
        "from dutydesk.logs import _cache, _segments, Query, run\n"
        "_cache.FILL_BYTES = 1\n"  # a segment per file
        "real = _segments.write\n"
        "def slow(target, parts):\n"
        "    import time\n"
        "    done = real(target, parts)\n"
        "    print('segment', flush=True)\n"
        "    time.sleep(0.3)\n"
        "    return done\n"
        "_segments.write = slow\n"
        "result = run(Query((sys.argv[1],), format='nginx', group_by=('status',)), "
        "fill_later=True)\n"
        "result.fill()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(log_root)],
        stdout=subprocess.PIPE,
        env={**os.environ},
        text=True,
    )
    try:
        assert child.stdout is not None
        for _ in range(3):
            assert child.stdout.readline() == "segment\n"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    clear_caches()
    assert 2 <= _cached_files() < len(logs)
    assert by_status(str(log_root)) == independent(logs)
    assert by_status(str(log_root), "--no-cache") == independent(logs)


def test_pruning_removes_what_interrupted_fills_left_and_keeps_a_running_fills(
    log_root: Path, logs: list[Path], home: Path
) -> None:
    ok("query", str(log_root), "--group-by", "status")
    folder = home / "logcache"
    kept = set(folder.glob("*.arrow"))
    assert kept
    old = time.time() - 2 * 3600
    for name in ("0" * 32 + ".arrow", "." + "1" * 32 + ".arrow.tmp"):
        (folder / name).write_bytes(b"half")
        os.utime(folder / name, (old, old))
    running = folder / ("." + "2" * 32 + ".arrow.tmp")
    running.write_bytes(b"being written")
    stats()  # prunes
    assert set(folder.glob("*.arrow")) == kept
    assert list(folder.glob(".*.tmp")) == [running]
    assert by_status(str(log_root)) == independent(logs)


def test_the_console_never_fills_inside_a_request(
    client: TestClient, db: Session, log_root: Path, logs: list[Path]
) -> None:
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(
        "/logs", params={"root": str(log_root), "format": "nginx", "group_by": "status", "run": 1}
    )
    assert page.status_code == 200, page.text
    assert "<th>status</th><th>count</th>" in page.text
    assert _cached_files() == 0


def test_a_changed_file_is_not_served_stale_after_a_deferred_fill(
    log_root: Path, logs: list[Path]
) -> None:
    assert by_status(str(log_root)) == independent(logs)  # fills after the answer
    text = gzip.decompress(logs[0].read_bytes()).decode()
    logs[0].write_bytes(gzip.compress((text + text.splitlines(keepends=True)[0] * 3).encode()))
    assert by_status(str(log_root)) == independent(logs)
    assert dutydesk("cache", "stats").exit_code == 0
