"""The formats on fixtures with their edge cases, in Python and in the engine alike."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from dutydesk.logs import Query, parse_line, run
from dutydesk.logs.formats import FORMATS, UnknownFormat, sniff

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_nginx_edge_cases_parse_with_stable_field_names() -> None:
    lines = fixture_lines("nginx.log")
    parsed = [parse_line("nginx", line) for line in lines]
    first = parsed[0]
    assert first is not None
    assert first["client"] == "192.0.2.10"
    assert first["ts"] == dt.datetime(2026, 11, 23, 10, 0, 1, tzinfo=dt.UTC)
    assert (first["method"], first["path"], first["protocol"]) == ("GET", "/index.html", "HTTP/1.1")
    assert (first["status"], first["bytes"]) == (200, 512)
    assert first["user_agent"] == (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"
    )
    ipv6 = parsed[1]
    assert ipv6 is not None
    assert (ipv6["client"], ipv6["user"], ipv6["bytes"]) == ("2001:db8::7", "alice", None)
    assert ipv6["ts"] == dt.datetime(2026, 11, 23, 9, 0, 2, tzinfo=dt.UTC)  # +0100 taken off
    assert ipv6["referrer"] == "https://desk.example.org/"
    assert parsed[2] is not None
    assert parsed[2]["user_agent"] == 'Agent "with quotes" and  spaces'  # nginx's \x22 undone
    assert parsed[3] is not None
    assert parsed[3]["user_agent"] == 'Agent "escaped the Apache way" v2'  # Apache's \" too
    for empty_request in parsed[4:6]:
        assert empty_request is not None
        assert empty_request["status"] == 400
        assert empty_request["method"] is None and empty_request["path"] is None
    cut = parsed[6]
    assert cut is not None
    assert (cut["path"], cut["user_agent"]) == ("/cut", "Mozilla/5.0 (unterminated")
    proxied = parsed[7]
    assert proxied is not None
    assert proxied["forwarded_for"] == "203.0.113.7, 198.51.100.2, 10.0.0.1"
    common = parsed[8]
    assert common is not None
    assert (common["status"], common["bytes"], common["user_agent"]) == (304, None, None)
    assert parsed[9] is None
    assert parsed[10] is not None and parsed[10]["status"] == 400
    assert parsed[11] is not None and parsed[11]["path"] == "/after-the-cut"


def test_alb_lines_with_fields_aws_appended_later_still_parse() -> None:
    first, second, third = (parse_line("alb", line) for line in fixture_lines("alb.log"))
    assert first is not None and second is not None and third is not None
    assert first["ts"] == dt.datetime(2026, 11, 23, 10, 0, 1, 186641, tzinfo=dt.UTC)
    assert (first["client"], first["client_port"], first["status"]) == ("192.0.2.1", 2817, 200)
    assert first["path"] == "http://www.example.com:80/"
    assert first["trace_id"] == "Root=1-58337262-36d228ad5d99923122bbe354"
    assert (second["status"], second["backend_status"], second["bytes"]) == (503, None, 326)
    assert second["client"] == "[2001:db8::1]"
    assert second["user_agent"] == r"Mozilla/5.0 (with spaces) \"quoted\""
    assert third["request_time"] == 0.25


def test_classic_elb_lines_parse() -> None:
    first, second = (parse_line("elb", line) for line in fixture_lines("elb.log"))
    assert first is not None and second is not None
    assert (first["status"], first["bytes"], first["user_agent"]) == (200, 29, "curl/7.38.0")
    assert (second["status"], second["backend"], second["request_time"]) == (504, None, -1.0)


def test_json_lines_take_the_first_key_present() -> None:
    parsed = [parse_line("json", line) for line in fixture_lines("app.jsonl")]
    first, second, not_object, broken, third = parsed
    assert first is not None and second is not None and third is not None
    assert (first["message"], first["status"], first["request_time"]) == ("request done", 200, 0.25)
    assert second["ts"] == dt.datetime(2026, 11, 23, 9, 0, 2, 500000, tzinfo=dt.UTC)
    assert (second["level"], second["status"]) == ("ERROR", 500)
    assert not_object is None and broken is None
    assert third["level"] == "WARN" and third["status"] is None


def test_java_stack_traces_join_the_event_above(log_root: Path) -> None:
    shutil.copy(FIXTURES / "catalina.log", log_root)
    result = run(Query((str(log_root),), format="java"))
    rows = result.table.to_pylist()
    assert [row["level"] for row in rows] == ["INFO", "ERROR", "SEVERE", "INFO"]
    error = rows[1]
    assert error["logger"] == "org.example.Api"
    assert error["message"].startswith("request failed\njava.lang.IllegalStateException")
    assert error["message"].endswith("... 2 more")
    assert rows[2]["ts"] == dt.datetime(2026, 11, 23, 10, 0, 3, 789000, tzinfo=dt.UTC)
    assert rows[2]["logger"] == "org.apache.catalina.core.StandardService.startInternal"
    assert result.report.unparsed == []


def test_a_stack_trace_line_with_no_event_above_is_reported(log_root: Path) -> None:
    shutil.copy(FIXTURES / "orphan-java.log", log_root)
    result = run(Query((str(log_root),), format="java", group_by=("level",)))
    assert sum(result.table.column("count").to_pylist()) == 4
    [unparsed] = result.report.unparsed
    assert unparsed.count == 1
    assert unparsed.sample.startswith("\tat orphan.stack.Line")


@pytest.mark.parametrize(
    ("fmt", "fixture"),
    [("nginx", "nginx.log"), ("alb", "alb.log"), ("elb", "elb.log"), ("json", "app.jsonl")],
)
def test_the_engine_reads_every_line_as_parse_line_does(
    log_root: Path, fmt: str, fixture: str
) -> None:
    shutil.copy(FIXTURES / fixture, log_root)
    lines = fixture_lines(fixture)
    expected = [parsed for line in lines if (parsed := parse_line(fmt, line)) is not None]
    result = run(Query((str(log_root),), format=fmt))
    rows = [{k: v for k, v in row.items() if k != "file"} for row in result.table.to_pylist()]
    assert rows == expected
    unparsed = len(lines) - len(expected)
    assert result.report.unparsed_lines == unparsed
    assert len(result.report.unparsed) == (1 if unparsed else 0)


def test_an_unterminated_quote_neither_drops_nor_merges_lines(log_root: Path) -> None:
    lines = [
        '192.0.2.1 - - [23/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 1 "-" "cut',
        '192.0.2.2 - - [23/Nov/2026:10:00:01 +0000] "GET /b HTTP/1.1" 200 1 "-" "x"',
        'junk " with a quote',
        '192.0.2.3 - - [23/Nov/2026:10:00:02 +0000] "GET /c HTTP/1.1" 200 1 "-" "y"',
    ]
    (log_root / "quotes.log").write_text("\n".join(lines) + "\n")
    result = run(Query((str(log_root),), format="nginx"))
    assert result.table.column("path").to_pylist() == ["/a", "/b", "/c"]
    assert result.report.unparsed_lines == 1
    assert result.report.unparsed[0].sample == 'junk " with a quote'


def test_auto_sniffs_each_format() -> None:
    assert sniff(fixture_lines("nginx.log")) == "nginx"
    assert sniff(fixture_lines("alb.log")) == "alb"
    assert sniff(fixture_lines("elb.log")) == "elb"
    assert sniff(fixture_lines("app.jsonl")) == "json"
    assert sniff(fixture_lines("catalina.log")) == "java"
    with pytest.raises(UnknownFormat, match="give --format"):
        sniff(["nothing", "known", "here"])


def test_every_format_with_a_time_names_it_ts() -> None:
    untimed = {"log4j1", "python"}  # their default layouts write no time
    for fmt in FORMATS.values():
        assert ("ts" in fmt.fields) == (fmt.name not in untimed)


def test_crlf_invalid_utf8_and_missing_final_newlines_keep_lines_and_files_apart(
    log_root: Path,
) -> None:
    line = '192.0.2.1 - - [23/Nov/2026:10:00:00 +0000] "GET /{} HTTP/1.1" 200 1 "-" "{}"'
    (log_root / "a.log").write_bytes(
        (line.format("a1", "x") + "\r\n" + line.format("a2", "caf\xe9") + "\r\n\r\n").encode(
            "latin-1"
        )
    )
    (log_root / "b.log").write_bytes(line.format("b1", "y").encode())  # no final newline
    (log_root / "c.log").write_bytes(b"")
    result = run(Query((str(log_root),), format="nginx"))
    rows = result.table.to_pylist()
    assert [(Path(row["file"]).name, row["path"]) for row in rows] == [
        ("a.log", "/a1"),
        ("a.log", "/a2"),
        ("b.log", "/b1"),
    ]
    assert rows[1]["user_agent"] == "caf\ufffd"
    assert result.report.unparsed == [] and result.report.problems == []


def test_gzip_files_of_several_members_are_read_to_the_end(log_root: Path) -> None:
    import gzip

    line = '192.0.2.1 - - [23/Nov/2026:10:00:00 +0000] "GET /{} HTTP/1.1" 200 1 "-" "x"\n'
    first = gzip.compress("".join(line.format(f"a{i}") for i in range(3)).encode())
    second = gzip.compress(line.format("b").encode())
    (log_root / "rotated.log.gz").write_bytes(first + second)
    result = run(Query((str(log_root),), format="nginx"))
    assert result.table.column("path").to_pylist() == ["/a0", "/a1", "/a2", "/b"]


@pytest.mark.parametrize(("fmt", "fixture"), [("nginx", "nginx.log"), ("java", "catalina.log")])
def test_big_files_read_in_chunks_give_the_same_answer(
    log_root: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, fixture: str
) -> None:
    import gzip

    from dutydesk.logs import _sources

    (log_root / "whole.gz").write_bytes(gzip.compress((FIXTURES / fixture).read_bytes()))
    whole = run(Query((str(log_root),), format=fmt))
    monkeypatch.setattr(_sources, "STREAM_BYTES", 50)  # every file is "big", read 50 bytes on
    chunked = run(Query((str(log_root),), format=fmt))
    assert chunked.table.to_pylist() == whole.table.to_pylist()
    assert chunked.report.unparsed_lines == whole.report.unparsed_lines


def test_reading_with_several_threads_keeps_files_and_lines_in_order(log_root: Path) -> None:
    from dutydesk.logs._sources import FileList, LineStream, Roots, list_local
    from tests.logs.conftest import write_access_logs

    write_access_logs(log_root, files=30, lines=20)
    files = FileList()
    list_local(str(log_root), Roots.parse(str(log_root)), files)
    one = [row for batch in LineStream(files, threads=1).batches() for row in batch.to_pylist()]
    three = [row for batch in LineStream(files, threads=3).batches() for row in batch.to_pylist()]
    assert one == three and len(one) == 600
