"""A small query answered without DuckDB gives the engine's answer, row for row.

Each query runs through both paths on the same files: the engine (`run`, DuckDB over Arrow) and
the small-input path (`run_small`, Python). Columns, rows, numeric columns and the report of
unparsed lines and unreadable files must be equal.
"""

from __future__ import annotations

import gzip
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dutydesk.logs import Query, QueryError, run
from dutydesk.logs._small import SMALL_BYTES, log_roots_text
from dutydesk.logs.query import run_small
from dutydesk.settings import get_settings
from tests.conftest import clear_caches
from tests.logs.conftest import access_line

FIXTURES = Path(__file__).parent / "fixtures"


def both(query: Query) -> tuple[Any, Any]:
    """(engine's answer, small path's answer) as (columns, numeric flags, rows, report lines)."""
    small = run_small(query)
    assert small is not None, f"{query} was not answered by the small path"
    engine = run(query)
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in engine.table.schema.types]
    return (
        (engine.table.column_names, numeric, engine.table.to_pylist(), engine.report.lines()),
        (
            small.column_names,
            [column.numeric for column in small.columns],
            small.rows,
            small.report.lines(),
        ),
    )


@pytest.fixture
def mixed_logs(log_root: Path) -> Path:
    """nginx lines in three files (one gzipped, one with CRLF, stray bytes and bad lines),
    an unreadable file, and the ELB and ALB fixtures in their own folder."""
    rng = random.Random(11)
    access = log_root / "access"
    access.mkdir()
    (access / "a.log").write_text("".join(access_line(rng) for _ in range(120)))
    lines = [access_line(rng) for _ in range(80)]
    lines[5] = "not an access line at all\n"
    lines[9] = "\n"
    lines[17] = '::1 - bob [24/Nov/2026:10:00:00 +0100] "-" 400 0 "-" "<!channel> \xe9t\xe9"\n'
    lines[23] = '10.0.0.9 - - [24/Nov/2026:23:59:59 -0530] "GET /x HTTP/1.1" 200 - "-" "-"\n'
    lines[40] = "another bad line\n"
    (access / "b.log").write_bytes("".join(lines).replace("\n", "\r\n").encode() + b"\xff\xfe\n")
    with gzip.open(access / "c.log.gz", "wt") as handle:
        handle.writelines(access_line(rng) for _ in range(60))
    (access / "d.log.gz").write_bytes(b"\x1f\x8bnot really gzip")
    aws = log_root / "aws"
    aws.mkdir()
    shutil.copy(FIXTURES / "elb.log", aws / "elb.log")
    shutil.copy(FIXTURES / "alb.log", aws / "alb.log")
    return log_root


QUERIES = [
    {},
    {"top": 7},
    {"where": ("status=404",)},
    {"where": ("status=500", "path~^/update/.*WINNT")},
    {"where": ("user_agent~Firefox/1[0-9]+\\.0",), "group_by": ("status",)},
    {"where": ("bytes=-",), "group_by": ("path",), "top": 3},
    {"where": ("referrer=",), "group_by": ("method",)},
    {"where": ("file~b\\.log$",), "group_by": ("file",)},
    {"group_by": ("status",)},
    {"group_by": ("hour", "status"), "top": 5},
    {"group_by": ("day",)},
    {"group_by": ("minute",), "top": 4},
    {"group_by": ("client", "user")},
    {"since": "2026-11-23T06:00", "until": "2026-11-23T18:30:00+01:00", "group_by": ("status",)},
    {"since": "2026-11-23T12:00", "top": 10},
]


@pytest.mark.parametrize("asked", QUERIES, ids=[str(sorted(q.items())) for q in QUERIES])
def test_small_path_gives_the_engines_answer_on_access_logs(
    mixed_logs: Path, asked: dict[str, Any]
) -> None:
    query = Query(sources=(str(mixed_logs / "access" / "*"),), format="nginx", **asked)
    engine, small = both(query)
    assert small == engine
    assert engine[2] or "where" in asked  # the queries answer something


@pytest.mark.parametrize(
    "asked",
    [{}, {"group_by": ("status", "elb")}, {"where": ("client~^192",), "group_by": ("hour",)}],
)
@pytest.mark.parametrize("log_format", ["elb", "alb", "auto"])
def test_small_path_gives_the_engines_answer_on_aws_logs(
    mixed_logs: Path, log_format: str, asked: dict[str, Any]
) -> None:
    name = "alb" if log_format == "auto" else log_format
    if "elb" in asked.get("group_by", ()) and name == "alb":
        asked = {**asked, "group_by": ("status", "type")}
    query = Query(sources=(str(mixed_logs / "aws" / f"{name}.log"),), format=log_format, **asked)
    engine, small = both(query)
    assert small == engine


def test_small_path_refuses_what_the_engine_refuses_with_the_same_message(
    mixed_logs: Path,
) -> None:
    for asked in (
        {"sources": (str(mixed_logs / "nothing-*.log"),)},
        {"sources": ("/etc/passwd",)},
        {"where": ("nosuchfield=1",)},
        {"group_by": ("nosuchfield",)},
        {"since": "yesterday"},
    ):
        query = Query(
            **{"sources": (str(mixed_logs / "access" / "*"),), "format": "nginx", **asked}
        )
        with pytest.raises(QueryError) as from_small:
            run_small(query)
        with pytest.raises(QueryError) as from_engine:
            run(query)
        assert str(from_small.value) == str(from_engine.value)


def test_engine_answers_what_the_small_path_cannot_be_sure_of(mixed_logs: Path) -> None:
    access = str(mixed_logs / "access" / "*")
    for query in (
        Query(sources=(access,), format="nginx", percentiles="bytes"),
        Query(sources=(access,), format="nginx", where=("path~(?i)/API",)),
        Query(sources=(access,), format="nginx", where=("path~a{2}",)),
        Query(sources=(access,), format="nginx", where=("ts=2026-11-23",)),
        Query(sources=(access,), format="nginx", save="mine"),
        Query(sources=(str(FIXTURES / "nginx.log"),), format="nonsense"),
    ):
        assert run_small(query) is None, query
    # DuckDB's strptime reads 31/Nov as 1 December: a date Python refuses is left to it.
    odd = mixed_logs / "odd"
    odd.mkdir()
    (odd / "a.log").write_text(
        '10.0.0.9 - - [31/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 - "-" "-"\n'
    )
    assert run_small(Query(sources=(str(odd / "a.log"),), format="nginx")) is None
    big = mixed_logs / "big"
    big.mkdir()
    rng = random.Random(3)
    with (big / "big.log").open("w") as handle:
        while handle.tell() <= SMALL_BYTES:
            handle.write(access_line(rng))
    assert run_small(Query(sources=(str(big / "big.log"),), format="nginx")) is None
    assert run(Query(sources=(str(big / "big.log"),), format="nginx", top=1)).table.num_rows == 1


@pytest.mark.parametrize(
    "environment",
    [{}, {"DUTYDESK_LOG_ROOTS": "/srv/logs, s3://bucket/x"}, {"dutydesk_home": "~/desk"}],
)
def test_small_path_reads_the_log_roots_as_the_settings_do(
    monkeypatch: pytest.MonkeyPatch, home: Path, environment: dict[str, str]
) -> None:
    for name, value in environment.items():
        if name.lower() == "dutydesk_home":
            monkeypatch.delenv("DUTYDESK_HOME")
        monkeypatch.setenv(name, value)
    clear_caches()
    assert log_roots_text(None) == get_settings().effective_log_roots


@pytest.fixture
def mixed_folder(log_root: Path) -> Path:
    """nginx (one file with bad lines), ALB, ELB and a garbage file in one folder."""
    rng = random.Random(17)
    folder = log_root / "mixed"
    folder.mkdir()
    lines = [access_line(rng) for _ in range(50)]
    lines[3] = "not an access line at all\n"
    (folder / "a.log").write_text("".join(lines))
    shutil.copy(FIXTURES / "alb.log", folder / "b-alb.log")
    shutil.copy(FIXTURES / "elb.log", folder / "c-elb.log")
    (folder / "d.txt").write_text("".join(f"garbage {i} zz\n" for i in range(20)))
    with gzip.open(folder / "e.log.gz", "wt") as handle:
        handle.writelines(access_line(rng) for _ in range(30))
    return folder


MIXED_QUERIES = [
    {},
    {"top": 60},
    {"where": ("status=200",)},
    {"where": ("type~^http",)},  # ALB's own field: the other formats are skipped
    {"group_by": ("status",)},
    {"group_by": ("status",), "top": 2},
    {"group_by": ("hour", "status")},
    {"group_by": ("client",), "where": ("bytes=-",)},
    {"group_by": ("file",)},
    {"group_by": ("elb", "status")},
]


@pytest.mark.parametrize(
    "asked", MIXED_QUERIES, ids=[str(sorted(q.items())) for q in MIXED_QUERIES]
)
def test_small_path_gives_the_engines_answer_on_a_mixed_folder(
    mixed_folder: Path, asked: dict[str, Any]
) -> None:
    query = Query(sources=(str(mixed_folder),), format="auto", **asked)
    engine, small = both(query)
    assert small == engine
    said = "skipped: " if "where" in asked and "type" in asked["where"][0] else "format alb: "
    assert any(line.startswith(said) for line in engine[3])
    if "where" not in asked:  # a --where's raw-line test may leave the garbage unlooked at
        assert any("cannot tell its format" in line for line in engine[3])
