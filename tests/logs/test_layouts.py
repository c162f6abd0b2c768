"""Application log layouts: the named presets and `--layout` patterns, in Python and the engine."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from dutydesk.logs import Query, parse_line, run
from dutydesk.logs.formats import UnknownFormat, get_format, sniff
from tests.logs.test_query_cli import dutydesk

LAYOUTS = Path(__file__).parent / "fixtures" / "layouts"
THIS_YEAR = dt.datetime.now(dt.UTC).year
# Per preset: its fixture, what `auto` calls it, how an event's first line starts (an
# independent test, not the format's regex), and the day its events fall on (None: no date).
CASES = {
    "zookeeper": ("zookeeper.log", "zookeeper", r"^2026-", dt.date(2026, 12, 7)),
    "spark": ("spark.log", "spark", r"^26/12/07 ", dt.date(2026, 12, 7)),
    "hadoop": ("hadoop.log", "hadoop", r"^2026-", dt.date(2026, 12, 7)),
    "hdfs-compact": ("hdfs-compact.log", "hdfs-compact", r"^261207 ", dt.date(2026, 12, 7)),
    "tomcat": ("catalina.out", "java", r"^07-Dec-2026 ", dt.date(2026, 12, 7)),
    "log4j": ("log4j.log", "log4j", r"^[0-9]{2}:", dt.date(1900, 1, 1)),
    "logback": ("log4j.log", "log4j", r"^[0-9]{2}:", dt.date(1900, 1, 1)),
    "log4j1": ("log4j1.log", "log4j1", r"^[0-9]+ \[", None),
    "python": ("python.log", "python", r"^[A-Z]+:", None),
    "syslog": ("syslog.log", "syslog", r"^Dec ", dt.date(THIS_YEAR, 12, 7)),
    "syslog5424": ("syslog5424.log", "syslog5424", r"^<", dt.date(2026, 12, 7)),
    "apache-error": ("apache-error.log", "apache-error", r"^\[", dt.date(2026, 12, 7)),
}


def events_by_count(lines: list[str], start: str) -> list[str]:
    """Events as a reader counts them: a line matching `start` opens one, others join it."""
    events: list[str] = []
    for line in lines:
        if re.match(start, line) or not events:
            events.append(line)
        else:
            events[-1] += "\n" + line
    return events


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_preset_reads_every_event_of_its_sample(name: str, log_root: Path) -> None:
    file, sniffed, start, day = CASES[name]
    lines = (LAYOUTS / file).read_text().splitlines()
    events = events_by_count(lines, start)
    parsed = [parse_line(name, event) for event in events]
    assert all(item is not None for item in parsed), [
        e for e, p in zip(events, parsed, strict=True) if not p
    ]
    assert sniff(lines) == sniffed
    shutil.copy(LAYOUTS / file, log_root / file)
    key = "level" if "level" in get_format(name).fields else "host"  # syslog has no level
    keys = (key, "day") if day is not None else (key,)
    answer = run(Query((str(log_root / file),), format=name, group_by=keys))
    assert answer.report.unparsed == []
    rows = answer.table.to_pylist()
    assert sum(row["count"] for row in rows) == len(events)
    levels: dict[str, int] = {}
    for item in parsed:
        assert item is not None
        levels[str(item[key])] = levels.get(str(item[key]), 0) + 1
    assert {row[key]: row["count"] for row in rows} == levels
    if day is not None:
        assert {row["day"].date() for row in rows} == {day}
        assert all(item is not None and item["ts"].date() == day for item in parsed)


def test_stack_traces_fold_into_their_event() -> None:
    events = events_by_count((LAYOUTS / "spark.log").read_text().splitlines(), r"^26/")
    failed = parse_line("spark", events[3])
    assert failed is not None
    assert failed["logger"] == "Executor" and failed["level"] == "ERROR"
    assert str(failed["message"]).endswith(
        "at java.io.DataInputStream.readInt(DataInputStream.java:392)"
    )


def test_zookeeper_fields_split_threads_with_colons() -> None:
    line = (LAYOUTS / "zookeeper.log").read_text().splitlines()[1]
    parsed = parse_line("zookeeper", line)
    assert parsed is not None
    assert parsed["thread"] == "main-SendThread(localhost:2181)"
    assert (parsed["class"], parsed["source_line"]) == ("ClientCnxn$SendThread", 1112)
    assert parsed["ts"] == dt.datetime(2026, 12, 7, 4, 29, 25, 140000, tzinfo=dt.UTC)


def test_syslog_5424_keeps_offsets_and_structured_data() -> None:
    lines = (LAYOUTS / "syslog5424.log").read_text().splitlines()
    last = parse_line("syslog5424", lines[2])
    assert last is not None
    assert last["ts"] == dt.datetime(2026, 12, 7, 4, 29, 27, 500000, tzinfo=dt.UTC)
    assert last["structured_data"] == '[origin ip="10.0.0.9"][meta sequenceId="7"]'
    assert last["message"] is None


def test_a_layout_pattern_becomes_a_parser(log_root: Path) -> None:
    (log_root / "app.log").write_text(
        "2026-12-07T04:29:25.120 req-7 WARN  [worker-1] c.e.Billing.charge(Billing.java:88) "
        "- card declined\n"
        "2026-12-07T04:29:26.450 req-8 ERROR [worker-2] c.e.Billing.charge(Billing.java:91) "
        "- gateway down\n\tat c.e.Gateway.call(Gateway.java:12)\n"
        "2026-12-07T04:29:27.000 - INFO  [main] c.e.App.main(App.java:20) - ready\n"
    )
    layout = "%d{yyyy-MM-dd'T'HH:mm:ss.SSS} %X{request} %-5p [%t] %C.%M(%F:%L) - %m%n"
    fmt = get_format(f"layout:{layout}")
    assert fmt.fields == (
        "ts",
        "mdc_request",
        "level",
        "thread",
        "class",
        "method",
        "source_file",
        "source_line",
        "message",
    )
    result = dutydesk(
        "query", str(log_root), "--layout", layout, "--group-by", "level,method", "--out", "csv"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "level,method,count",
        "ERROR,charge,1",
        "INFO,main,1",
        "WARN,charge,1",
    ]
    rows = dutydesk(
        "query", str(log_root), "--layout", layout, "--where", "source_line=91", "--out", "json"
    )
    assert rows.exit_code == 0, rows.stderr
    assert '"message": "gateway down\\n\\tat c.e.Gateway.call(Gateway.java:12)"' in rows.stdout
    assert '"ts": "2026-12-07T04:29:26.450000Z"' in rows.stdout


def test_a_layout_the_compiler_cannot_read_is_named(log_root: Path) -> None:
    (log_root / "a.log").write_text("x\n")
    with pytest.raises(UnknownFormat, match="%Q is not supported"):
        get_format("layout:%d %Q %m%n")
    result = dutydesk("query", str(log_root), "--layout", "%d{yyyy-MM-dd qq} %m")
    assert result.exit_code == 2
    assert "cannot read 'qq'" in result.stderr


def test_unparsed_lines_are_counted_as_lines_not_blocks(log_root: Path) -> None:
    noise = [f"plain line {i} with no time at its start" for i in range(2000)]
    (log_root / "noise.log").write_text("\n".join(noise) + "\n")
    (log_root / "ok.log").write_text((LAYOUTS / "hadoop.log").read_text())
    grouped = run(Query((str(log_root),), format="hadoop", group_by=("level",)))
    assert [(u.file, u.count) for u in grouped.report.unparsed] == [
        (str(log_root / "noise.log"), 2000)
    ]
    assert grouped.report.unparsed[0].sample.startswith("plain line 0 with no time")
    assert sum(grouped.table.column("count").to_pylist()) == 4
    rows = run(Query((str(log_root),), format="hadoop"))
    assert rows.report.unparsed_lines == 2000
    result = dutydesk("query", str(log_root), "--format", "hadoop", "--group-by", "level")
    assert "unparsed: 2000 line(s) of " in result.stderr
    assert result.exit_code == 0


def test_when_no_line_of_any_file_parses_the_command_says_so(log_root: Path) -> None:
    (log_root / "a.log").write_text("just words\nmore words\n")
    (log_root / "b.log").write_text((LAYOUTS / "syslog.log").read_text())
    result = dutydesk("query", str(log_root), "--format", "spark", "--group-by", "level")
    assert result.exit_code == 1
    assert "unparsed: 2 line(s) of " in result.stderr
    assert "unparsed: 4 line(s) of " in result.stderr
    assert "no line of any file reads as spark" in result.stderr
