"""Grouped counts from the parsed cache are answered in one statement over the cached rows, and
rows that its dictionary filters decide are answered without a query: exactly what the files
give without the cache (every group, count, percentile to the last bit, row and column type),
and the same lines reported as not parsed."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from tests.logs.conftest import access_line, write_access_logs

GARBAGE = [
    "not a log line at all\n",
    "GET /update/6/Firefox/WINNT/release/ but no brackets Firefox/\n",
    "\n",
]


def answers(query: object) -> tuple[list[dict[str, object]], list[tuple[str, int]]]:
    """(rows, unparsed (file, count)) of `query` answered from the cache."""
    from dutydesk.logs import run

    result = run(query)  # type: ignore[arg-type]
    return result.table.to_pylist(), [(u.file, u.count) for u in result.report.unparsed]


def fresh(query: object) -> tuple[list[dict[str, object]], list[tuple[str, int]]]:
    """The same without the cache: the files parsed window by window."""
    from dutydesk.logs import run

    result = run(query, cache=False)  # type: ignore[arg-type]
    return result.table.to_pylist(), [(u.file, u.count) for u in result.report.unparsed]


def from_the_fill(query: object) -> tuple[list[dict[str, object]], list[tuple[str, int]]]:
    """`answers` of `query` once a first run has filled the cache with its files."""
    answers(query)
    return answers(query)


@pytest.fixture(params=["one segment", "segments"])
def mixed(log_root: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Access logs with lines that do not parse in some files, one file with no size at all;
    filled into one segment, or into several (each with its own dictionaries)."""
    from dutydesk.logs import _cache

    if request.param == "segments":
        monkeypatch.setattr(_cache, "FILL_BYTES", 20_000)
    rng = random.Random(11)
    write_access_logs(log_root, files=4, lines=600)
    for index in range(3):
        lines = [access_line(rng) for _ in range(400)]
        for _ in range(5 + index):
            lines.insert(rng.randrange(len(lines)), rng.choice(GARBAGE))
        with gzip.open(log_root / f"mixed-{index}.log.gz", "wt") as handle:
            handle.writelines(lines)
    no_size = [
        f'10.0.0.{i} - - [23/Nov/2026:10:{i:02d}:00 +0000] "GET /no-size HTTP/1.1" 201 - "-" '
        '"curl/8.5.0"\n'
        for i in range(50)
    ]
    with gzip.open(log_root / "no-size.log.gz", "wt") as handle:
        handle.writelines(no_size)
    return log_root


@pytest.mark.parametrize(
    "asked",
    [
        {"group_by": ("status",)},
        {"group_by": ("minute", "status")},
        {"group_by": ("hour",), "percentiles": "bytes"},
        {"group_by": ("day", "path"), "percentiles": "bytes"},
        {"group_by": ("path",), "top": 3, "percentiles": "bytes"},
        {"group_by": ("user_agent",), "top": 1, "percentiles": "bytes"},
        {"percentiles": "bytes"},
        {"percentiles": "bytes", "where": ("path~^/nothing-matches$",)},
        {"group_by": ("status",), "where": ("path~/Firefox/.*WINNT.*/release/",)},
        {"group_by": ("status",), "where": ("bytes=-",)},
        {"group_by": ("file",), "percentiles": "bytes"},
        {"group_by": ("user", "referrer", "status")},
        {"group_by": ("path", "status"), "where": ("path~update", "status=200")},
        {"group_by": ("file",), "where": ("file~mixed-[12]",)},
        {"group_by": ("status",), "since": "2026-11-23T06:00:00Z", "until": "2026-11-23T18:00"},
    ],
)
def test_grouped_answers_from_the_cache_are_the_files_answers(
    mixed: Path, asked: dict[str, object]
) -> None:
    from dutydesk.logs import Query

    query = Query((str(mixed),), format="nginx", **asked)  # type: ignore[arg-type]
    expected = fresh(query)
    assert expected[0] or "nothing-matches" in str(asked)
    assert from_the_fill(query) == expected
    assert answers(query) == expected


def test_a_percentile_of_a_group_without_values_is_none_from_the_cache(mixed: Path) -> None:
    from dutydesk.logs import Query

    query = Query((str(mixed),), format="nginx", group_by=("status",), percentiles="bytes")
    expected = fresh(query)
    no_size = [row for row in expected[0] if row["status"] == 201]
    assert no_size and no_size[0]["p95"] is None and no_size[0]["count"] == 50
    assert from_the_fill(query) == expected


def test_percentiles_of_values_beyond_doubles_precision_are_the_files_answers(
    log_root: Path,
) -> None:
    from dutydesk.logs import Query

    rng = random.Random(3)
    lines = [
        f'10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /{i % 3} HTTP/1.1" 200 '
        f'{2**53 + rng.randrange(1000)} "-" "curl/8.5.0"\n'
        for i in range(30_000)
    ]
    with gzip.open(log_root / "big.log.gz", "wt") as handle:
        handle.writelines(lines)
    query = Query((str(log_root),), format="nginx", group_by=("path",), percentiles="bytes")
    expected = fresh(query)
    assert from_the_fill(query) == expected


def test_unparsed_blocks_of_a_multiline_format_count_their_lines_from_the_cache(
    log_root: Path,
) -> None:
    from dutydesk.logs import Query

    rng = random.Random(5)
    for index in range(6):
        lines = [f"orphan line {i} before any event\n" for i in range(index)]
        for second in range(3000):
            level = rng.choice(["INFO", "WARN", "ERROR"])
            moment = f"04:{second // 60 % 60:02d}:{second % 60:02d}"
            lines.append(f"26/12/07 {moment} {level} Task: {second}\n")
            if level == "ERROR":
                lines.append("java.lang.IllegalStateException: no session\n\tat a.B.c(B.java:1)\n")
        with gzip.open(log_root / f"spark-{index}.log.gz", "wt") as handle:
            handle.writelines(lines)
    query = Query((str(log_root),), format="spark", group_by=("level", "minute"))
    expected = fresh(query)
    assert sorted(count for _, count in expected[1]) == [1, 2, 3, 4, 5]
    assert from_the_fill(query) == expected


@pytest.mark.parametrize(
    "asked",
    [
        {"where": ("path~/Firefox/.*WINNT.*/release/", "user_agent~Firefox/")},
        {"where": ("user_agent=curl/8.5.0",), "top": 7},
        {"where": ("referrer=-",)},
        {"where": ("path~^/$", "status=404")},
        {"where": ("path~update",), "since": "2026-11-23T06:00:00Z"},
        {"top": 25},
    ],
)
@pytest.mark.parametrize("garbage", [False, True], ids=["all parsed", "some not"])
def test_rows_from_the_cache_are_the_files_rows(
    log_root: Path, asked: dict[str, object], garbage: bool
) -> None:
    from dutydesk.logs import Query, run

    write_access_logs(log_root, files=4, lines=600)
    if garbage:
        with gzip.open(log_root / "garbage.log.gz", "wt") as handle:
            handle.writelines(GARBAGE)
    query = Query((str(log_root),), format="nginx", **asked)  # type: ignore[arg-type]
    expected = run(query, cache=False)
    assert expected.table.num_rows
    run(query)  # fills the cache
    cached = run(query)
    assert cached.table.schema == expected.table.schema
    assert cached.table.to_pylist() == expected.table.to_pylist()
    assert cached.report.unparsed == expected.report.unparsed
