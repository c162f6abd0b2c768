"""`dutydesk logs query` against independent counts made with Python's gzip and re."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from tests.logs.conftest import write_access_logs

LINE = re.compile(
    r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\S+) "([^"]*)" "([^"]*)"$'
)
PATH_REGEX = "/Firefox/.*WINNT.*/release/"
AGENT_REGEX = "Firefox/"


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, ["logs", *args])


def ok(*args: str) -> Result:
    result = dutydesk(*args)
    assert result.exit_code == 0, result.output
    return result


def csv_rows(result: Result) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result.stdout)))


def independent_lines(files: list[Path]) -> list[tuple[str, ...]]:
    """Every line's fields, read with gzip and re only."""
    fields = []
    for path in files:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                match = LINE.match(line.rstrip("\n"))
                assert match, line
                fields.append(match.groups())
    return fields


def quantile(values: list[float], share: float) -> float:
    """Linear interpolation between closest ranks (DuckDB's quantile_cont)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def generated(log_root: Path) -> list[Path]:
    return write_access_logs(log_root, files=40, lines=150)


def test_matching_lines_are_counted_as_grep_would(log_root: Path, generated: list[Path]) -> None:
    expected = sum(
        1
        for f in independent_lines(generated)
        if re.search(PATH_REGEX, f[3]) and re.search(AGENT_REGEX, f[8])
    )
    assert expected > 0
    result = ok(
        "query",
        str(log_root),
        "--format",
        "nginx",
        "--where",
        f"path~{PATH_REGEX}",
        "--where",
        f"user_agent~{AGENT_REGEX}",
        "--out",
        "csv",
    )
    assert len(csv_rows(result)) == expected


def test_requests_per_hour_by_status(log_root: Path, generated: list[Path]) -> None:
    expected: Counter[tuple[str, str]] = Counter()
    for f in independent_lines(generated):
        moment = dt.datetime.strptime(f[1], "%d/%b/%Y:%H:%M:%S %z").astimezone(dt.UTC)
        expected[(moment.strftime("%Y-%m-%dT%H:00:00Z"), f[5])] += 1
    result = ok(
        "query", str(log_root / "part*"), "--group-by", "hour", "--group-by", "status",
        "--out", "csv",
    )  # fmt: skip
    rows = csv_rows(result)
    assert list(rows[0]) == ["hour", "status", "count"]
    assert {(r["hour"], r["status"]): int(r["count"]) for r in rows} == expected
    assert [r["hour"] for r in rows] == sorted(r["hour"] for r in rows)


def test_group_by_status_writes_exactly_status_and_count(
    log_root: Path, generated: list[Path]
) -> None:
    result = ok("query", str(log_root), "--format", "nginx", "--group-by", "status", "--out", "csv")
    lines = result.stdout.splitlines()
    assert lines[0] == "status,count"
    expected = Counter(f[5] for f in independent_lines(generated))
    assert dict(line.split(",") for line in lines[1:]) == {k: str(v) for k, v in expected.items()}


def test_top_paths_with_percentiles_of_bytes(log_root: Path, generated: list[Path]) -> None:
    sizes: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for f in independent_lines(generated):
        counts[f[3]] += 1
        if f[6] != "-":
            sizes[f[3]].append(float(f[6]))
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:3]
    result = ok(
        "query", str(log_root), "--format", "nginx", "--group-by", "path", "--top", "3",
        "--percentiles", "bytes", "--out", "json",
    )  # fmt: skip
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["path"], r["count"]) for r in rows] == top
    for row in rows:
        for p in (50, 90, 95, 99):
            assert row[f"p{p}"] == pytest.approx(quantile(sizes[row["path"]], p / 100))


def test_since_and_until_take_iso_times(log_root: Path, generated: list[Path]) -> None:
    expected = 0
    for f in independent_lines(generated):
        moment = dt.datetime.strptime(f[1], "%d/%b/%Y:%H:%M:%S %z")
        expected += (
            dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC)
            <= moment
            < dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
        )
    result = ok(
        "query", str(log_root), "--since", "2026-11-23T06:00", "--until",
        "2026-11-23T09:00:00+00:00", "--group-by", "day", "--out", "csv",
    )  # fmt: skip
    assert csv_rows(result) == [{"day": "2026-11-23T00:00:00Z", "count": str(expected)}]


def test_a_glob_outside_the_roots_is_refused(log_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.log").write_text("x\n")
    for pattern in (str(outside / "*.log"), f"{log_root}/../elsewhere/a.log", "/etc/passwd"):
        result = dutydesk("query", pattern, "--format", "nginx")
        assert result.exit_code == 2
        assert "outside the allowed log roots" in result.stderr
        assert str(log_root) in result.stderr


def test_a_symlink_leading_out_of_the_roots_is_not_read(log_root: Path, tmp_path: Path) -> None:
    write_access_logs(log_root, files=1, lines=5)
    secret = tmp_path / "secret.log"
    secret.write_text('1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET /secret HTTP/1.1" 200 1\n')
    os.symlink(secret, log_root / "link.log")
    result = ok("query", str(log_root), "--format", "nginx", "--group-by", "path", "--out", "csv")
    assert "/secret" not in result.stdout
    assert "link.log: leads outside the allowed log roots" in result.stderr


def test_an_unknown_format_names_the_known_ones(log_root: Path, generated: list[Path]) -> None:
    result = dutydesk("query", str(log_root), "--format", "syslogd")
    assert result.exit_code == 2
    assert "unknown format 'syslogd'" in result.stderr
    assert "nginx|" not in result.stderr and "nginx, apache" in result.stderr


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("path", "malformed --where 'path': use FIELD~REGEX or FIELD=VALUE"),
        ("~/api", "malformed --where"),
        ("colour=red", "no field 'colour'"),
        ("path~(unclosed", "not a valid regex"),
    ],
)
def test_a_malformed_where_gets_a_clear_message(
    log_root: Path, generated: list[Path], where: str, message: str
) -> None:
    result = dutydesk("query", str(log_root), "--format", "nginx", "--where", where)
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_unreadable_file_is_reported_and_the_rest_answered(
    log_root: Path, generated: list[Path]
) -> None:
    expected = len(independent_lines(generated))
    damaged = log_root / "part0" / "damaged.log.gz"
    damaged.write_bytes(gzip.compress(os.urandom(50_000))[:1000])
    # The gzip magic, then a compression method that does not exist.
    corrupt = log_root / "part0" / "corrupt.log.gz"
    corrupt.write_bytes(b"\x1f\x8b\x63" + os.urandom(200))
    os.symlink(log_root / "gone.log", log_root / "part1" / "dangling.log")
    result = ok("query", str(log_root), "--format", "nginx", "--group-by", "day", "--out", "csv")
    assert sum(int(row["count"]) for row in csv_rows(result)) == expected
    assert f"unreadable: {damaged}: not a readable gzip file" in result.stderr
    assert f"unreadable: {corrupt}: not a readable gzip file" in result.stderr
    assert "dangling.log" in result.stderr


def test_unparsed_lines_are_counted_per_file_with_a_sample(log_root: Path) -> None:
    (log_root / "mixed.log").write_text(
        '1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n'
        "a line from something else\nanother one\n"
    )
    result = ok("query", str(log_root), "--format", "nginx", "--group-by", "status", "--out", "csv")
    assert result.stdout == "status,count\n200,1\n"
    assert (
        f"unparsed: 2 line(s) of {log_root / 'mixed.log'} are not nginx; "
        "e.g. 'a line from something else'"
    ) in result.stderr


def test_saved_extracts_are_listed_and_queried(log_root: Path, generated: list[Path]) -> None:
    errors = sum(1 for f in independent_lines(generated) if f[5] == "500")
    saved = ok("query", str(log_root), "--where", "status=500", "--save", "errors-1")
    assert f"saved {errors} row(s) as extract errors-1" in saved.stdout
    listing = ok("extracts")
    assert "errors-1" in listing.stdout and f"{errors} rows" in listing.stdout
    assert "--where status=500 --save errors-1" in listing.stdout
    by_path = ok("query", "@errors-1", "--group-by", "status", "--out", "csv")
    assert by_path.stdout == f"status,count\n500,{errors}\n"
    table = pq.read_table(Path(os.environ["DUTYDESK_HOME"]) / "extracts" / "errors-1.parquet")
    assert table.num_rows == errors
    assert set(table.column("file").to_pylist()) <= {str(p) for p in generated}
    missing = dutydesk("query", "@nothing")
    assert missing.exit_code == 2 and "no extract named 'nothing'" in missing.stderr


def test_parquet_out_writes_a_readable_file(log_root: Path, generated: list[Path]) -> None:
    result = CliRunner().invoke(
        app, ["logs", "query", str(log_root), "--group-by", "status", "--out", "parquet"]
    )
    assert result.exit_code == 0
    table = pq.read_table(io.BytesIO(result.stdout_bytes))
    assert table.column_names == ["status", "count"]


def test_overlapping_globs_read_each_file_once(log_root: Path, generated: list[Path]) -> None:
    expected = len(independent_lines(generated))
    result = ok(
        "query", str(log_root / "**"), str(log_root / "part0"), "--format", "nginx",
        "--group-by", "day", "--out", "csv",
    )  # fmt: skip
    assert sum(int(row["count"]) for row in csv_rows(result)) == expected


def test_an_empty_folder_or_a_glob_matching_nothing_is_said_so(log_root: Path) -> None:
    (log_root / "empty").mkdir()
    nothing = dutydesk("query", str(log_root / "*.gz"), "--format", "nginx")
    assert nothing.exit_code == 2 and "no files match" in nothing.stderr
    empty = dutydesk("query", str(log_root / "empty"), "--format", "nginx")
    assert empty.exit_code == 2 and "only empty folders" in empty.stderr
