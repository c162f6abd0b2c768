"""`--format auto` over a folder of mixed logs: each file read in its own format, every file
that can be read answered, each file's format reported; counts checked by plain regexes."""

from __future__ import annotations

import gzip
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from dutydesk.logs import Query, QueryError, run
from tests.logs.conftest import access_line
from tests.logs.test_query_cli import dutydesk

ACCESS_STATUS = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (\d{3}) (\d+|-) ')
ALB_FIELDS = re.compile(r"^(?:http|https|h2) \S+ \S+ \S+ \S+ \S+ \S+ \S+ (\d{3}) \S+ \S+ (\d+) ")
LOG4J_EVENT = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} \[[^\]]*\] (\w+) ")
PYTHON_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):")
SYSLOG_LINE = re.compile(r"^[A-Z][a-z]{2} [ 1-3]\d \d{2}:\d{2}:\d{2} ")


def alb_line(rng: random.Random) -> str:
    """One ALB access line with a random status and size (every later field AWS adds)."""
    status = rng.choice([200, 200, 301, 404, 503])
    size = rng.randrange(0, 9000)
    second = rng.randrange(60)
    return (
        f"https 2026-11-23T10:{rng.randrange(60):02d}:{second:02d}.{rng.randrange(10**6):06d}Z "
        f"app/my-lb/50dc6c495c0c9188 192.0.2.{rng.randrange(256)}:{rng.randrange(1024, 65535)} "
        f"10.0.0.1:80 0.001 0.{rng.randrange(1000):03d} 0.000 {status} {status} 120 {size} "
        f'"GET https://www.example.com:443/p/{rng.randrange(9)} HTTP/1.1" "curl/8.5.0" '
        "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 "
        "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/t/73e2d6bc24d8a067 "
        f'"Root=1-58337262-{rng.randrange(16**8):08x}" "www.example.com" "-" 0 '
        '2026-11-23T10:00:00.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"\n'
    )


def log4j_lines(rng: random.Random, events: int) -> list[str]:
    """log4j 2 default-layout events; every fifth an ERROR with a stack trace below it."""
    lines = []
    for i in range(events):
        level = "ERROR" if i % 5 == 4 else rng.choice(["INFO", "DEBUG", "WARN"])
        lines.append(
            f"04:{i // 60 % 60:02d}:{i % 60:02d}.{rng.randrange(1000):03d} [worker-{i % 3}] "
            f"{level:<5} com.example.desk.Jobs - job {i} {level.lower()}\n"
        )
        if level == "ERROR":
            lines += [
                "java.lang.IllegalStateException: no route\n",
                "\tat com.example.desk.Jobs.run(Jobs.java:42)\n",
            ]
    return lines


def python_lines(rng: random.Random, count: int) -> list[str]:
    levels = ["INFO", "WARNING", "ERROR", "DEBUG"]
    return [f"{rng.choice(levels)}:app.jobs:export {i} done\n" for i in range(count)]


def syslog_lines(rng: random.Random, count: int) -> list[str]:
    return [
        f"Dec  7 04:{i % 60:02d}:{rng.randrange(60):02d} web1 sshd[{1000 + i}]: "
        f"Accepted publickey for deploy from 10.0.0.{i % 200} port {50000 + i} ssh2\n"
        for i in range(count)
    ]


@pytest.fixture
def mixed(log_root: Path) -> Path:
    """nginx (plain, with one bad line, and gzipped), ALB, log4j, Python logging, syslog, and
    a file of garbage, in one folder."""
    rng = random.Random(23)
    folder = log_root / "mixed"
    folder.mkdir()
    access = [access_line(rng) for _ in range(60)]
    access.insert(7, "\x16\x03\x01 a TLS hello sent to a plain port\n")
    (folder / "a-access.log").write_text("".join(access))
    (folder / "b-alb.log").write_text("".join(alb_line(rng) for _ in range(45)))
    (folder / "c-app.log").write_text("".join(log4j_lines(rng, 30)))
    (folder / "d-worker.log").write_text("".join(python_lines(rng, 25)))
    (folder / "e-syslog").write_text("".join(syslog_lines(rng, 20)))
    (folder / "f-garbage.txt").write_text(
        "".join(f"{rng.randrange(10**9):x} zz {'q' * rng.randrange(1, 9)}\n" for _ in range(30))
    )
    with gzip.open(folder / "g-access.log.gz", "wt") as handle:
        handle.writelines(access_line(rng) for _ in range(40))
    return folder


def text_lines(path: Path) -> list[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as handle:
            return handle.read().splitlines()
    return path.read_text().splitlines()


def matching(path: Path, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    return [m for line in text_lines(path) if (m := pattern.match(line))]


def test_each_file_of_a_mixed_folder_is_read_in_its_own_format(mixed: Path) -> None:
    result = run(Query(sources=(str(mixed),)))
    report = result.report
    names = {name: [Path(p).name for p in files] for name, files in report.formats.items()}
    assert names == {
        "nginx": ["a-access.log", "g-access.log.gz"],
        "alb": ["b-alb.log"],
        "log4j": ["c-app.log"],
        "python": ["d-worker.log"],
        "syslog": ["e-syslog"],
    }
    assert [(Path(p.file).name, p.reason.split(":")[0]) for p in report.problems] == [
        ("f-garbage.txt", "cannot tell its format")
    ]
    # The one bad line of a good nginx file is reported as before, as not nginx.
    assert [(Path(u.file).name, u.count, u.format) for u in report.unparsed] == [
        ("a-access.log", 1, "nginx")
    ]
    expected = {
        "a-access.log": len(matching(mixed / "a-access.log", ACCESS_STATUS)),
        "g-access.log.gz": len(matching(mixed / "g-access.log.gz", ACCESS_STATUS)),
        "b-alb.log": len(matching(mixed / "b-alb.log", ALB_FIELDS)),
        "c-app.log": len(matching(mixed / "c-app.log", LOG4J_EVENT)),
        "d-worker.log": len(matching(mixed / "d-worker.log", PYTHON_LINE)),
        "e-syslog": len(matching(mixed / "e-syslog", SYSLOG_LINE)),
    }
    got = Counter(Path(name).name for name in result.table.column("file").to_pylist())
    assert got == expected
    # Rows of every format, their columns matched by name: each format's own fields are there.
    columns = result.table.column_names
    for field in ("client", "status", "trace_id", "level", "thread", "host", "message"):
        assert field in columns


def test_counts_add_up_over_the_formats_that_have_the_field(mixed: Path) -> None:
    result = run(Query(sources=(str(mixed / "*"),), group_by=("status",)))
    expected: Counter[int] = Counter()
    for name in ("a-access.log", "g-access.log.gz"):
        expected.update(int(m.group(1)) for m in matching(mixed / name, ACCESS_STATUS))
    expected.update(int(m.group(1)) for m in matching(mixed / "b-alb.log", ALB_FIELDS))
    got = {row["status"]: row["count"] for row in result.table.to_pylist()}
    assert got == dict(expected)
    skipped = {Path(item.file).name: item.reason for item in result.report.skipped}
    assert sorted(skipped) == ["c-app.log", "d-worker.log", "e-syslog"]
    assert all("status" in reason for reason in skipped.values())


def test_a_field_the_first_files_format_lacks_is_answered_by_the_others(mixed: Path) -> None:
    result = run(Query(sources=(str(mixed),), group_by=("level",), top=3))
    expected: Counter[str] = Counter()
    expected.update(m.group(1) for m in matching(mixed / "c-app.log", LOG4J_EVENT))
    expected.update(m.group(1) for m in matching(mixed / "d-worker.log", PYTHON_LINE))
    top = sorted(expected.items(), key=lambda item: (-item[1], item[0]))[:3]
    assert [(row["level"], row["count"]) for row in result.table.to_pylist()] == top
    skipped = sorted(Path(item.file).name for item in result.report.skipped)
    assert skipped == ["a-access.log", "b-alb.log", "e-syslog", "g-access.log.gz"]


def quantile_cont(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (DuckDB's quantile_cont)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def test_percentiles_are_taken_over_every_formats_values(mixed: Path) -> None:
    result = run(Query(sources=(str(mixed),), group_by=("status",), percentiles="bytes"))
    sizes: dict[int, list[float]] = {}
    counts: Counter[int] = Counter()
    for name in ("a-access.log", "g-access.log.gz"):
        for m in matching(mixed / name, ACCESS_STATUS):
            counts[int(m.group(1))] += 1
            if m.group(2) != "-":
                sizes.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    for m in matching(mixed / "b-alb.log", ALB_FIELDS):
        counts[int(m.group(1))] += 1
        sizes.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    rows = {row["status"]: row for row in result.table.to_pylist()}
    assert {status: row["count"] for status, row in rows.items()} == dict(counts)
    for status, values in sizes.items():
        for p in (50, 90, 95, 99):
            assert rows[status][f"p{p}"] == pytest.approx(quantile_cont(values, p / 100))


def test_rows_of_several_formats_keep_to_top(mixed: Path) -> None:
    every = run(Query(sources=(str(mixed),))).table
    first = run(Query(sources=(str(mixed),), top=70)).table
    assert first.to_pylist() == every.slice(0, 70).to_pylist()
    # Format by format, in the order they were found: the nginx files' rows come first.
    assert Counter(Path(p).name for p in first.column("file").to_pylist()) == {
        "a-access.log": 60,
        "g-access.log.gz": 10,
    }


def test_the_cli_reports_each_formats_files_and_with_a_flag_every_file(mixed: Path) -> None:
    result = dutydesk("query", str(mixed), "--group-by", "status", "--file-formats")
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    assert f"format nginx: 2 file(s): {mixed}/a-access.log, {mixed}/g-access.log.gz" in err
    assert f"format alb: 1 file(s): {mixed}/b-alb.log" in err
    assert any(line.startswith(f"unreadable: {mixed}/f-garbage.txt: cannot tell") for line in err)
    assert any(line.startswith(f"skipped: {mixed}/c-app.log: ") for line in err)
    assert f"format: {mixed}/g-access.log.gz: nginx" in err
    assert f"format: {mixed}/b-alb.log: alb" in err
    assert result.stdout.splitlines()[0].split() == ["status", "count"]


def test_a_field_no_format_has_is_still_refused(mixed: Path) -> None:
    with pytest.raises(QueryError, match="nosuchfield"):
        run(Query(sources=(str(mixed),), where=("nosuchfield=1",)))


def test_one_format_globs_answer_as_before(log_root: Path) -> None:
    rng = random.Random(5)
    for index in range(3):
        (log_root / f"{index}.log").write_text("".join(access_line(rng) for _ in range(30)))
    result = run(Query(sources=(str(log_root),), group_by=("status",)))
    assert list(result.report.formats) == ["nginx"] and len(result.report.formats["nginx"]) == 3
    assert result.report.lines() == []
    expected = Counter(
        int(m.group(1)) for i in range(3) for m in matching(log_root / f"{i}.log", ACCESS_STATUS)
    )
    assert {row["status"]: row["count"] for row in result.table.to_pylist()} == dict(expected)


def test_a_garbage_first_file_neither_decides_the_format_nor_stops_the_query(
    log_root: Path,
) -> None:
    (log_root / "0-garbage.txt").write_text("".join(f"zz {i} qq\n" for i in range(10)))
    rng = random.Random(9)
    (log_root / "1.log").write_text("".join(access_line(rng) for _ in range(12)))
    result = run(Query(sources=(str(log_root),), group_by=("status",)))
    assert result.report.formats == {"nginx": [str(log_root / "1.log")]}
    assert [(Path(p.file).name, p.reason.split(":")[0]) for p in result.report.problems] == [
        ("0-garbage.txt", "cannot tell its format")
    ]
    assert sum(result.table.column("count").to_pylist()) == 12
    (log_root / "1.log").write_text("more garbage\n")
    with pytest.raises(QueryError, match="cannot tell the format"):
        run(Query(sources=(str(log_root),)))
