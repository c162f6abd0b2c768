"""log4j/logback layout patterns turned into format pieces, and the named presets.

`compile_layout('%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n')` gives a `Layout`: the regex pieces (in
the subset Python's `re` and RE2 read alike, see `formats`), the field types, DuckDB `strptime`
formats and Python ones for the timestamp, and where an event starts (the pattern up to the
message), so that a stack trace below an event joins it. `formats` builds its `LogFormat`s from
these; this module imports nothing of the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["text", "int", "float", "ts"]
Piece = str | tuple[str, str]

LEVELS = "TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL|SEVERE|FINE|FINER|FINEST|CONFIG"
_JAVA_NAME = r"[A-Za-z0-9_$.]+"  # a Java class or package-qualified name
_SAFE = re.compile(r"[A-Za-z0-9_]")
# log4j's named date formats (log4j 1 writes ISO8601 with a space, log4j 2 with a T).
_NAMED_DATES = {
    "ISO8601": "yyyy-MM-dd HH:mm:ss,SSS",
    "ISO8601_BASIC": "yyyyMMdd'T'HHmmss,SSS",
    "DEFAULT": "yyyy-MM-dd HH:mm:ss,SSS",
    "ABSOLUTE": "HH:mm:ss,SSS",
    "DATE": "dd MMM yyyy HH:mm:ss,SSS",
    "COMPACT": "yyyyMMddHHmmssSSS",
}
# A date letter run: its regex, DuckDB's strptime code and Python's.
_DATE_TOKENS: dict[str, tuple[str, str, str]] = {
    "yyyy": ("[0-9]{4}", "%Y", "%Y"),
    "yy": ("[0-9]{2}", "%y", "%y"),
    "MMM": ("[A-Za-z]{3}", "%b", "%b"),
    "MM": ("[0-9]{2}", "%m", "%m"),
    "dd": ("[0-9]{2}", "%d", "%d"),
    "d": ("[0-9]{1,2}", "%d", "%d"),
    "HH": ("[0-9]{2}", "%H", "%H"),
    "mm": ("[0-9]{2}", "%M", "%M"),
    "ss": ("[0-9]{2}", "%S", "%S"),
    "SSSSSS": ("[0-9]{6}", "%f", "%f"),
    "SSS": ("[0-9]{3}", "%g", "%f"),
    "EEE": ("[A-Za-z]{3}", "%a", "%a"),
    "Z": ("[+-][0-9]{4}", "%z", "%z"),
    "XXX": ("(?:Z|[+-][0-9]{2}:[0-9]{2})", "%z", "%z"),
}
_DATE_RUN = re.compile(r"'[^']*'|([A-Za-z])\1*|[^A-Za-z']")
_CONVERSION = re.compile(r"%(-?[0-9]*(?:\.[0-9]+)?)([A-Za-z]+|%)(?:\{([^}]*)\})?")


class LayoutError(ValueError):
    """A layout pattern the compiler cannot read; the message names the part."""


@dataclass(frozen=True)
class Layout:
    """A compiled layout: what `formats.LogFormat` needs."""

    pieces: tuple[Piece, ...]
    types: dict[str, FieldType] = field(default_factory=dict)
    ts_formats: tuple[str, ...] = ()  # DuckDB strptime, tried in order
    python_ts: tuple[str, ...] = ()  # Python strptime, the same order
    ts_without_year: bool = False  # the year is the current one (syslog)
    witness: str = "ts"
    event_start: str = ""  # regex a line starting an event matches at its start
    multiline: bool = True


def _escape(text: str) -> str:
    """Literal text as regex: spaces match one or more (padding), punctuation escaped."""
    out = []
    for char in text:
        if char == " ":
            out.append(" +")
        elif _SAFE.match(char):
            out.append(char)
        else:
            out.append("\\" + char)
    return "".join(out).replace(" + +", " +")


def date_pattern(pattern: str) -> tuple[str, str, str]:
    """A Java date pattern (`yy/MM/dd HH:mm:ss,SSS`) as (regex, DuckDB format, Python format)."""
    pattern = _NAMED_DATES.get(pattern, pattern)
    regex, duck, python = [], [], []
    for run in _DATE_RUN.finditer(pattern):
        text = run.group(0)
        if text.startswith("'"):
            literal = text[1:-1] or "'"
            regex.append(_escape(literal).replace(" +", " "))
            duck.append(literal)
            python.append(literal)
        elif run.group(1):
            if text not in _DATE_TOKENS:
                raise LayoutError(f"date pattern {pattern!r}: cannot read {text!r}")
            item = _DATE_TOKENS[text]
            regex.append(item[0])
            duck.append(item[1])
            python.append(item[2])
        else:
            regex.append(_escape(text).replace(" +", " "))
            duck.append(text.replace("%", "%%"))
            python.append(text.replace("%", "%%"))
    return "".join(regex), "".join(duck), "".join(python)


def _field(name: str, option: str | None) -> tuple[str, str, FieldType]:
    """(field name, regex, type) of one conversion word."""
    if name in {"d", "date"}:
        return "ts", "", "ts"  # the caller renders the date
    if name in {"p", "le", "level"}:
        return "level", f"(?:{LEVELS})", "text"
    if name in {"c", "lo", "logger"}:
        return "logger", "[^ ]+", "text"
    if name in {"C", "class"}:
        return "class", _JAVA_NAME, "text"
    if name in {"t", "thread"}:
        return "thread", "[^\\n]*?", "text"
    if name in {"m", "msg", "message"}:
        return "message", "(?s:.*)", "text"
    if name in {"L", "line"}:
        return "source_line", r"(?:[0-9]+|\?)", "int"
    if name in {"F", "file"}:
        return "source_file", "[^ :]+", "text"
    if name in {"M", "method"}:
        return "method", "[A-Za-z0-9_$<>?]+", "text"
    if name in {"X", "mdc"}:
        key = re.sub(r"[^A-Za-z0-9_]", "_", option or "")
        return (f"mdc_{key}" if key else "mdc"), "[^ ]*?", "text"
    if name in {"r", "relative"}:
        return "elapsed_ms", "[0-9]+", "int"
    if name in {"x", "NDC"}:
        return "ndc", "[^\\n]*?", "text"
    raise LayoutError(f"layout conversion %{name} is not supported")


def compile_layout(pattern: str) -> Layout:
    """The `Layout` of a log4j/logback pattern; LayoutError names what it cannot read."""
    pieces: list[Piece] = []
    types: dict[str, FieldType] = {}
    ts_formats: tuple[str, ...] = ()
    python_ts: tuple[str, ...] = ()
    position = 0
    seen: set[str] = set()
    for match in _CONVERSION.finditer(pattern):
        literal = pattern[position : match.start()]
        if literal:
            pieces.append(_escape(literal))
        position = match.end()
        padding, word, option = match.groups()
        if word == "%":
            pieces.append("%")
            continue
        if word in {"n", "ex", "throwable", "xEx", "wEx"}:
            continue  # the line's end; a stack trace follows as continuation lines
        name, regex, kind = _field(word, option)
        if word in {"d", "date"}:
            regex, duck, python = date_pattern(option or "ISO8601")
            if (option or "ISO8601") == "ISO8601":  # log4j 2's form has a T
                regex = regex.replace(" ", "[ T]", 1)
                ts_formats = (duck, duck.replace(" ", "T", 1))
                python_ts = (python, python.replace(" ", "T", 1))
            else:
                ts_formats, python_ts = (duck,), (python,)
        if name in seen:
            raise LayoutError(f"layout {pattern!r} names {name} twice")
        seen.add(name)
        # Padded to a width: spaces after (left-justified) or before (right-justified).
        if padding and not padding.startswith("-"):
            pieces.append(" *")
        pieces.append((name, regex))
        if padding.startswith("-"):
            pieces.append(" *")
        types[name] = kind
    tail = pattern[position:]
    if tail:
        pieces.append(_escape(tail.rstrip("\n")))
    if not seen:
        raise LayoutError(f"layout {pattern!r} has no conversion (%d, %p, %m, ...)")
    return _layout(tuple(pieces), types, ts_formats, python_ts)


def _layout(
    pieces: tuple[Piece, ...],
    types: dict[str, FieldType],
    ts_formats: tuple[str, ...] = (),
    python_ts: tuple[str, ...] = (),
    *,
    multiline: bool = True,
    ts_without_year: bool = False,
) -> Layout:
    names = [piece[0] for piece in pieces if isinstance(piece, tuple)]
    witness = next((n for n in ("ts", "level") if n in names), names[0])
    # An event starts where a line reads as the layout's head, up to its message.
    head = []
    for piece in pieces:
        if isinstance(piece, tuple) and piece[0] == "message":
            break
        head.append(piece if isinstance(piece, str) else f"(?:{piece[1]})")
    return Layout(
        pieces,
        types,
        ts_formats,
        python_ts,
        ts_without_year,
        witness,
        "".join(head),
        multiline,
    )


def _preset(pattern: str) -> Layout:
    return compile_layout(pattern)


_MONTH_DAY_TIME = r"[A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"

# The defaults people meet, by `--format` name: (description, layout).
PRESETS: dict[str, tuple[str, Layout]] = {
    "log4j": (
        "log4j 2's default console layout (%d{HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n)",
        _preset("%d{HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n"),
    ),
    "log4j1": (
        "log4j 1's TTCC layout (%r [%t] %-5p %c %x - %m%n)",
        _preset("%r [%t] %-5p %c %x - %m%n"),
    ),
    "logback": (
        "logback's default (%d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n)",
        _preset("%d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n"),
    ),
    "zookeeper": (
        "ZooKeeper (%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n)",
        _preset("%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n"),
    ),
    "spark": (
        "Spark (%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n)",
        _preset("%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n"),
    ),
    "hadoop": (
        "Hadoop (%d{ISO8601} %p %c: %m%n)",
        _preset("%d{ISO8601} %p %c: %m%n"),
    ),
    "hdfs-compact": (
        "compact yyMMdd HHmmss pid LEVEL class: msg (older HDFS)",
        _layout(
            (
                ("ts", "[0-9]{6} [0-9]{6}"),
                " +",
                ("pid", "[0-9]+"),
                " +",
                ("level", f"(?:{LEVELS})"),
                " +",
                ("logger", "[^ ]+"),
                ": ?",
                ("message", "(?s:.*)"),
            ),
            {"ts": "ts", "pid": "int"},
            ("%y%m%d %H%M%S",),
            ("%y%m%d %H%M%S",),
        ),
    ),
    "tomcat": (
        "Tomcat JULI OneLineFormatter (catalina.out): dd-MMM-yyyy HH:mm:ss.SSS LEVEL [thread] "
        "class.method msg",
        _layout(
            (
                ("ts", "[0-9]{2}-[A-Za-z]{3}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]{3})?"),
                " +",
                ("level", f"(?:{LEVELS})"),
                " +\\[",
                ("thread", "[^\\]]*"),
                "\\] +",
                ("logger", "[^ ]+"),
                " ",
                ("message", "(?s:.*)"),
            ),
            {"ts": "ts"},
            ("%d-%b-%Y %H:%M:%S.%g", "%d-%b-%Y %H:%M:%S"),
            ("%d-%b-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M:%S"),
        ),
    ),
    "python": (
        "Python logging's default (%(levelname)s:%(name)s:%(message)s)",
        _layout(
            (
                ("level", "(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)"),
                ":",
                ("logger", "[^:]*"),
                ":",
                ("message", "(?s:.*)"),
            ),
            {},
        ),
    ),
    "syslog": (
        "syslog RFC 3164 (Dec  7 04:29:25 host app[pid]: msg; the year is taken as this one)",
        _layout(
            (
                "(?:<",
                ("priority", "[0-9]{1,3}"),
                ">)?",
                ("ts", _MONTH_DAY_TIME),
                " ",
                ("host", "[^ ]+"),
                " ",
                ("app", "[^ :\\[]+"),
                "(?:\\[",
                ("pid", "[0-9]+"),
                "\\])?: ?",
                ("message", ".*"),
            ),
            {"ts": "ts", "priority": "int", "pid": "int"},
            ("%Y %b %d %H:%M:%S",),
            ("%Y %b %d %H:%M:%S",),
            multiline=False,
            ts_without_year=True,
        ),
    ),
    "syslog5424": (
        "syslog RFC 5424 (<pri>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG)",
        _layout(
            (
                "<",
                ("priority", "[0-9]{1,3}"),
                ">1 ",
                ("ts", "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:[0-9]{2})"),
                " ",
                ("host", "[^ ]+"),
                " ",
                ("app", "[^ ]+"),
                " ",
                ("pid", "[^ ]+"),
                " ",
                ("msgid", "[^ ]+"),
                " ",
                ("structured_data", "-|(?:\\[(?:[^\\]\\\\]|\\\\.)*\\])+"),
                "(?: ",
                ("message", ".*"),
                ")?",
            ),
            {"ts": "ts", "priority": "int"},
            multiline=False,
        ),
    ),
    "apache-error": (
        "Apache httpd error log ([Wed Oct 11 14:32:52.123456 2026] [module:level] [pid N] msg)",
        _layout(
            (
                "\\[",
                ("ts", "[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}(?:\\.[0-9]+)? [0-9]{4}"),
                "\\] \\[(?:",
                ("module", "[^:\\] ]*"),
                ":)?",
                ("level", "[a-z]+[0-9]?"),
                "\\](?: \\[pid ",
                ("pid", "[0-9]+"),
                "(?::tid [0-9]+)?\\])?(?: \\[client ",
                ("client", "[^\\]]+"),
                "\\])? ",
                ("message", ".*"),
            ),
            {"ts": "ts", "pid": "int"},
            ("%a %b %d %H:%M:%S.%f %Y", "%a %b %d %H:%M:%S %Y"),
            ("%a %b %d %H:%M:%S.%f %Y", "%a %b %d %H:%M:%S %Y"),
            multiline=False,
        ),
    ),
}
