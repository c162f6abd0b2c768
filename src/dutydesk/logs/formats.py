"""Log line formats: one regular expression per format, with stable field names.

Shared by the query engine (DuckDB runs the same expressions through RE2) and by log intake
(`parse_line`). Each regex format is a sequence of pieces; a piece is either plain regex text or
a named field with its own sub-expression. The pieces use only the syntax Python's `re` and
RE2 read alike (no look-around, no back-references, no named groups inside a piece), so the
engine can render the expression with only the fields a query needs as capture groups: RE2 is
much faster with four captures or fewer.

Field names are the same across formats: `ts`, `client`, `method`, `path`, `protocol`,
`status`, `bytes`, `referrer`, `user_agent`, `request_time`, `level`, `logger`, `message`, ...
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Literal

from dutydesk.logs._layouts import PRESETS, Layout, LayoutError, compile_layout

FieldType = Literal["text", "int", "float", "ts"]

# Pieces shared by the formats.
_QUOTED = r'(?:[^"\\]|\\.)*'  # inside "...": nginx writes \x22 for a quote, Apache \"
_WORD = r"[^ ]+"
_ESCAPED_WORD = r'(?:[^" \\]|\\.)*'  # no space or quote, but \" and \\ (Apache's escapes)
_NUMBER_OR_DASH = r"(?:[0-9]+|-)"
_DECIMAL_OR_DASH = r"(?:-?[0-9]+(?:\.[0-9]+)?|-)"
_ISO_TS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z"

Piece = str | tuple[str, str]


@dataclass(frozen=True)
class LogFormat:
    """A log format: its pieces, the type of each field and how its timestamp reads."""

    name: str
    description: str
    pieces: tuple[Piece, ...] = ()
    types: dict[str, FieldType] = field(default_factory=dict)
    # DuckDB strptime formats of the `ts` text, tried in order.
    ts_formats: tuple[str, ...] = ()
    # A field that is never empty when the line matches: the engine's "did it parse" test.
    witness: str = "ts"
    # Pieces from this index on are optional and followed by `(?: .*)?`: a query that
    # captures none of their fields may stop matching there (RE2 is much faster then).
    tail_start: int | None = None
    # Java logs: lines that do not start a new event belong to the event above.
    multiline: bool = False
    # JSON lines: each field is the first of these keys the object has.
    json_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Multiline: where an event starts (a line this matches at its start); "" for Java's.
    event_start: str = ""
    # Python strptime formats of the `ts` text (layouts), in `ts_formats`' order.
    python_ts: tuple[str, ...] = ()
    # The `ts` text has no year (syslog): the current year is assumed.
    ts_without_year: bool = False
    # Text fields whose escapes (`\"`, `\\`, `\x22`, `\x5C`) are undone (see `unescape`).
    unescaped: tuple[str, ...] = ()

    def events(self) -> re.Pattern[str]:
        """Where a text splits into this multiline format's events: before each start."""
        if not (self.multiline and self.event_start):
            return JAVA_EVENTS  # Java's, or unused: each line is an event
        if self.name not in _SPLITTERS:
            _SPLITTERS[self.name] = re.compile(r"\n(?=" + self.event_start + ")")
        return _SPLITTERS[self.name]

    @property
    def fields(self) -> tuple[str, ...]:
        """The format's field names, in line order."""
        if self.json_keys:
            return tuple(self.json_keys)
        return tuple(piece[0] for piece in self.pieces if isinstance(piece, tuple))

    def field_type(self, name: str) -> FieldType:
        """How the engine types field `name` (text unless the format says otherwise)."""
        return self.types.get(name, "text")

    def pattern(self, captured: tuple[str, ...] | None = None) -> str:
        """The format's regex; only the fields in `captured` (all when None) capture, in order.

        Python's `re` gets named groups (`named=True` through `python_pattern`); RE2 in DuckDB
        gets plain positional groups. Without `captured`'s fields in the optional tail, the
        expression stops before it: it matches the same lines, as a prefix.
        """
        pieces = self.pieces
        tail = self.tail_start
        if captured is not None and tail is not None:
            tail_fields = {p[0] for p in pieces[tail:] if isinstance(p, tuple)}
            if not tail_fields & set(captured):
                # The tail accepts exactly: the end, or a space and anything.
                return "^" + self._render(pieces[:tail], captured) + "(?: |$)"
        return "^" + self._render(pieces, captured) + "$"

    @staticmethod
    def _render(pieces: tuple[Piece, ...], captured: tuple[str, ...] | None) -> str:
        parts = []
        for piece in pieces:
            if isinstance(piece, str):
                parts.append(piece)
            elif captured is None or piece[0] in captured:
                parts.append(f"({piece[1]})")
            else:
                parts.append(f"(?:{piece[1]})")
        return "".join(parts)

    def python_pattern(self) -> re.Pattern[str]:
        """The format's regex with named groups, for Python's `re`."""
        parts = []
        for piece in self.pieces:
            parts.append(piece if isinstance(piece, str) else f"(?P<{piece[0]}>{piece[1]})")
        return re.compile("^" + "".join(parts) + "$", re.DOTALL if self.multiline else 0)


_ACCESS_PIECES: tuple[Piece, ...] = (
    ("client", _WORD),  # an IPv4 or IPv6 address, or a host name
    " ",
    ("ident", _WORD),
    " ",
    ("user", _WORD),
    r" \[",
    ("ts", r"[^\]]+"),
    # The request line may be "-" or "" (a client that sent nothing) or garbage bytes.
    # Apache writes a quote in the request as \" (nginx as \x22): an escape is part of a word.
    r'\] "',
    ("method", _ESCAPED_WORD),
    "(?: ",
    ("path", _ESCAPED_WORD),
    "(?: ",
    ("protocol", _QUOTED),
    ')?)?" ',
    ("status", "[0-9]{3}"),
    " ",
    ("bytes", _NUMBER_OR_DASH),
    # From here on everything is optional and the line may go on with anything after a
    # space, so a line parses exactly when the part above does (see `tail_start`).
    # Combined adds referrer and user agent (the last quote may be missing: a cut line);
    # nginx's `main` adds "$http_x_forwarded_for", a list like "203.0.113.7, 10.0.0.1".
    '(?: "',
    ("referrer", _QUOTED),
    '" "',
    ("user_agent", _QUOTED),
    '(?:"|$)(?: "',
    ("forwarded_for", _QUOTED),
    # A number next is nginx's $request_time (seconds), as `log_format` lines add it.
    '")?(?: ',
    ("request_time", r"[0-9]+(?:\.[0-9]+)?"),
    ")?)?(?: .*)?",
)
_ACCESS_TAIL = _ACCESS_PIECES.index('(?: "')
_ACCESS_TYPES: dict[str, FieldType] = {
    "ts": "ts",
    "status": "int",
    "bytes": "int",
    "request_time": "float",
}
_ACCESS_TS = ("%d/%b/%Y:%H:%M:%S %z",)
_ACCESS_UNESCAPED = ("referrer", "user_agent")

# How `unescape` (and the engine's SQL alike) undoes nginx's (`\x22`, `\x5C`, and `\"` with
# `escape=json`) and Apache's (`\"`, `\\`) escapes, as plain replacements in this order: an
# escaped backslash is set aside first, so `\\x22` (Apache's literal `\x22`) stays as logged.
SET_ASIDE = "\ue000"  # a private-use character, for Apache's `\\` while the rest is undone
UNESCAPES = (
    ("\\\\", SET_ASIDE),
    ('\\"', '"'),
    ("\\x22", '"'),
    ("\\x5C", "\\"),
    ("\\x5c", "\\"),
    (SET_ASIDE, "\\"),
)


def unescape(text: str) -> str:
    """An access log's quoted text with its escapes undone (`UNESCAPES`); other `\\xHH` stay."""
    if "\\" not in text:
        return text
    for escaped, plain in UNESCAPES:
        text = text.replace(escaped, plain)
    return text


_ELB_PIECES: tuple[Piece, ...] = (
    ("ts", _ISO_TS),
    " ",
    ("elb", _WORD),
    " ",
    ("client", r"[^ ]+"),
    ":",
    ("client_port", "[0-9]+"),
    " ",
    ("backend", _WORD),
    " ",
    ("request_processing_time", _DECIMAL_OR_DASH),
    " ",
    ("request_time", _DECIMAL_OR_DASH),
    " ",
    ("response_processing_time", _DECIMAL_OR_DASH),
    " ",
    ("status", _NUMBER_OR_DASH),
    " ",
    ("backend_status", _NUMBER_OR_DASH),
    " ",
    ("received_bytes", _NUMBER_OR_DASH),
    " ",
    ("bytes", _NUMBER_OR_DASH),
    ' "',
    ("method", r'[^" ]*'),
    " ?",
    ("path", r'[^" ]*'),
    " ?",
    ("protocol", _QUOTED),
    # Some writers leave out the space after a quoted field (`"-"1`): it is optional there.
    '" ?"',
    ("user_agent", _QUOTED),
    '" ?',
    ("ssl_cipher", _WORD),
    " ",
    ("ssl_protocol", _WORD),
    ("extra", "(?: .*)?"),
)
_ELB_TYPES: dict[str, FieldType] = {
    "ts": "ts",
    "client_port": "int",
    "request_processing_time": "float",
    "request_time": "float",
    "response_processing_time": "float",
    "status": "int",
    "backend_status": "int",
    "received_bytes": "int",
    "bytes": "int",
}
_AWS_TS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")

_ALB_PIECES: tuple[Piece, ...] = (
    ("type", _WORD),
    " ",
    *_ELB_PIECES[:-1],
    " ",
    ("target_group_arn", _WORD),
    ' "',
    ("trace_id", _QUOTED),
    '" ?"',
    ("domain_name", _QUOTED),
    '" ?"',
    ("chosen_cert_arn", _QUOTED),
    '"',
    # AWS appends fields to ALB lines over the years; whatever follows is ignored, after a
    # space or not (`"-"1`: matched_rule_priority right after the certificate's quote).
    ("extra", ".*"),
)
_ALB_TYPES = {**_ELB_TYPES}

_JAVA_TS = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
    r"|[0-9]{2}-[A-Za-z]{3}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,9})?"
)
_JAVA_LEVELS = "TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|SEVERE|FINE|FINER|FINEST|CONFIG"
_JAVA_PIECES: tuple[Piece, ...] = (
    ("ts", _JAVA_TS),
    " +",
    ("level", _JAVA_LEVELS),
    " +(?:\\[",
    ("thread", r"[^\]]*"),
    "\\] +)?",
    ("logger", "[^ ]+"),
    "(?: +-)? +",
    # A stack trace below the line is joined to it with newlines (see `multiline`).
    ("message", "(?s:.*)"),
)
# Where a new Java event starts: a line beginning with one of the timestamps above.
JAVA_EVENT_START = re.compile(
    r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:|[0-9]{2}-[A-Za-z]{3}-[0-9]{4} [0-9]{2}:)"
)

# Where a text splits into Java events: before each line that starts one.
JAVA_EVENTS = re.compile(r"\n(?=" + JAVA_EVENT_START.pattern.removeprefix("^") + ")")

_SPLITTERS: dict[str, re.Pattern[str]] = {}


def layout_format(name: str, description: str, layout: Layout) -> LogFormat:
    """The `LogFormat` of a compiled layout (a preset or `--layout`)."""
    return LogFormat(
        name,
        description,
        layout.pieces,
        layout.types,
        layout.ts_formats,
        witness=layout.witness,
        multiline=layout.multiline,
        event_start=layout.event_start,
        python_ts=layout.python_ts,
        ts_without_year=layout.ts_without_year,
    )


def format_of_layout(pattern: str) -> LogFormat:
    """A format read by the log4j/logback layout `pattern`; UnknownFormat says what is wrong."""
    try:
        layout = compile_layout(pattern)
    except LayoutError as error:
        raise UnknownFormat(str(error)) from None
    return layout_format(f"layout:{pattern}", f"layout {pattern}", layout)


FORMATS: dict[str, LogFormat] = {
    "nginx": LogFormat(
        "nginx",
        "nginx `combined` (or `common`) access log",
        _ACCESS_PIECES,
        _ACCESS_TYPES,
        _ACCESS_TS,
        tail_start=_ACCESS_TAIL,
        unescaped=_ACCESS_UNESCAPED,
    ),
    "apache": LogFormat(
        "apache",
        "Apache httpd combined (or common) access log",
        _ACCESS_PIECES,
        _ACCESS_TYPES,
        _ACCESS_TS,
        tail_start=_ACCESS_TAIL,
        unescaped=_ACCESS_UNESCAPED,
    ),
    "elb": LogFormat(
        "elb", "AWS Classic Load Balancer access log", _ELB_PIECES, _ELB_TYPES, _AWS_TS
    ),
    "alb": LogFormat(
        "alb",
        "AWS Application Load Balancer access log (fields AWS appends later are ignored)",
        _ALB_PIECES,
        _ALB_TYPES,
        _AWS_TS,
    ),
    "java": LogFormat(
        "java",
        "Java/Tomcat log (log4j, logback, java.util.logging); stack traces join their event",
        _JAVA_PIECES,
        {"ts": "ts"},
        multiline=True,
    ),
    "json": LogFormat(
        "json",
        "JSON lines: one object per line; each field is the first of its keys present",
        types={
            "ts": "ts",
            "status": "int",
            "bytes": "int",
            "request_time": "float",
        },
        witness="",
        json_keys={
            "ts": ("ts", "time", "timestamp", "@timestamp"),
            "level": ("level", "severity", "levelname"),
            "logger": ("logger", "logger_name", "name"),
            "message": ("message", "msg"),
            "client": ("client", "remote_addr", "client_ip", "ip"),
            "method": ("method", "request_method"),
            "path": ("path", "uri", "request_uri", "url"),
            "status": ("status", "status_code"),
            "bytes": ("bytes", "body_bytes_sent", "size"),
            "referrer": ("referrer", "referer", "http_referer"),
            "user_agent": ("user_agent", "http_user_agent", "ua"),
            "request_time": ("request_time", "duration", "elapsed"),
        },
    ),
}
FORMATS.update(
    {
        name: layout_format(name, description, layout)
        for name, (description, layout) in PRESETS.items()
    }
)
FORMAT_NAMES = (*FORMATS, "auto")


class UnknownFormat(ValueError):
    """A format name that is not one of `FORMAT_NAMES`."""


def get_format(name: str) -> LogFormat:
    """The format called `name` (`layout:PATTERN` compiles a log4j/logback layout); a clear
    error naming the known ones otherwise."""
    if name.startswith("layout:"):
        return format_of_layout(name.removeprefix("layout:"))
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownFormat(
            f"unknown format {name!r}; use one of {', '.join(FORMAT_NAMES)}"
        ) from None


_COMPILED: dict[str, re.Pattern[str]] = {}


def _compiled(fmt: LogFormat) -> re.Pattern[str]:
    if fmt.name not in _COMPILED:
        _COMPILED[fmt.name] = fmt.python_pattern()
    return _COMPILED[fmt.name]


def parse_timestamp(fmt: LogFormat, text: str) -> dt.datetime | None:
    """The event time of a `ts` text in `fmt`, as an aware UTC datetime (naive means UTC)."""
    text = text.strip()
    value: dt.datetime | None = None
    if fmt.name in {"nginx", "apache"}:
        value = dt.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
    elif fmt.python_ts:
        if fmt.ts_without_year:
            text = f"{dt.datetime.now(dt.UTC).year} {text}"
        for layout in fmt.python_ts:
            try:
                value = dt.datetime.strptime(text, layout)
                break
            except ValueError:
                continue
        else:
            return None
    else:
        cleaned = text.replace(",", ".")
        try:
            value = dt.datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
        except ValueError:
            for layout in ("%d-%b-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M:%S"):
                try:
                    value = dt.datetime.strptime(cleaned, layout)
                    break
                except ValueError:
                    continue
            else:
                return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _typed(fmt: LogFormat, name: str, text: object) -> object:
    if text is None or text in ("", "-"):
        return None
    if name in fmt.unescaped:
        return unescape(str(text))
    kind = fmt.field_type(name)
    try:
        if kind == "int":
            return int(str(text))
        if kind == "float":
            return float(str(text))
        if kind == "ts":
            return parse_timestamp(fmt, str(text))
    except ValueError:
        return None
    return text


def parse_line(fmt: LogFormat | str, line: str) -> dict[str, object] | None:
    """The fields of one log line (one event, for Java) in `fmt`, or None when it does not parse.

    Values are typed as the engine types them: `ts` an aware UTC datetime, `status` and `bytes`
    integers, times floats; empty fields and `-` are None.
    """
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    line = line.rstrip("\r\n")
    if fmt.json_keys:
        try:
            document = json.loads(line)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        parsed: dict[str, object] = {}
        for name, keys in fmt.json_keys.items():
            found = next((document[key] for key in keys if document.get(key) is not None), None)
            if isinstance(found, dict | list):
                found = json.dumps(found)
            parsed[name] = _typed(fmt, name, None if found is None else str(found))
        return parsed
    match = _compiled(fmt).match(line)
    if match is None:
        return None
    return {name: _typed(fmt, name, value) for name, value in match.groupdict().items()}


def parse_fields(fmt: LogFormat | str, line: str) -> dict[str, str | None] | None:
    """The raw text of each field of one line (one event, for Java) in a regex format, untyped,
    or None when it does not parse: for callers that type only the fields they need."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if fmt.json_keys:
        raise UnknownFormat(f"{fmt.name} is not a regex format; use parse_line")
    match = _compiled(fmt).match(line.rstrip("\r\n"))
    return None if match is None else match.groupdict()


# The formats `auto` tries, the more specific first (the first of equals wins).
SNIFF_ORDER = (
    "nginx",
    "alb",
    "elb",
    "json",
    "zookeeper",
    "hadoop",
    "spark",
    "java",
    "hdfs-compact",
    "log4j",
    "log4j1",
    "python",
    "syslog5424",
    "syslog",
    "apache-error",
)


def _reads(fmt: LogFormat, line: str) -> bool:
    """Whether `line` parses in `fmt` (`parse_line` is not None), without typing its fields."""
    if fmt.json_keys:
        return parse_line(fmt, line) is not None
    return _compiled(fmt).match(line.rstrip("\r\n")) is not None


def sniff(lines: list[str]) -> str:
    """The format most of `lines` parse in (the first lines of a file), or raise UnknownFormat."""
    sample = [line for line in lines if line.strip()][:50]
    if not sample:
        raise UnknownFormat("cannot tell the format of empty files; give --format")
    best, best_share = "", 0.0
    for name in SNIFF_ORDER:
        events = sample
        if FORMATS[name].multiline:  # a stack trace's lines belong to the event above
            splitter = FORMATS[name].events()
            events = [e for e in splitter.split("\n".join(sample)) if e.strip()]
            if not events:
                continue
        share = sum(_reads(FORMATS[name], line) for line in events) / len(events)
        if share > best_share:
            best, best_share = name, share
            if share == 1.0:  # no later format can read more (the first of equals wins)
                break
    if best_share < 0.5:
        raise UnknownFormat(
            "cannot tell the format from the first lines (none of "
            f"{', '.join(FORMATS)} reads most of them); give --format"
        )
    return best
