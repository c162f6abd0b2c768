"""Reading a request's JSON so that no value in it can fail the request.

`load_payload` parses a body and, when it may hold any, walks it once for values no database
or no later step can take: text the databases cannot hold (NUL, which PostgreSQL refuses, and
lone surrogates, which no driver can encode as UTF-8) is replaced by U+FFFD, the same on SQLite
and PostgreSQL; numbers too long for Python to read and nesting too deep to handle are replaced
by a marker and reported by their path, so the caller can refuse just the item they are in.
The raw body stays in the inbox as it came.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dutydesk.intake._parse import Rejected

REPLACEMENT = "\ufffd"
# Containers deeper than this are not read: far beyond any alert or CI event, well inside
# Python's recursion limit (json and the database drivers recurse once per level).
MAX_DEPTH = 64
TOO_DEEP = f"{REPLACEMENT}nested deeper than {MAX_DEPTH} levels{REPLACEMENT}"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What in a JSON body can become NUL or a lone surrogate: the escapes `\u0000` and
# `\ud800`-`\udfff`, and surrogates encoded as UTF-8 (json reads bytes with surrogatepass).
_UNSTORABLE_JSON = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])|\xed[\xa0-\xbf]")
_JSON_TOKENS = re.compile(rb'[\\"\[\]{}]')
Path = tuple[str | int, ...]


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD (what both databases can hold)."""
    return _UNSTORABLE.sub(REPLACEMENT, text) if _UNSTORABLE.search(text) else text


def storable_bytes(raw: bytes) -> str:
    """Bytes as storable text: undecodable bytes, NUL and lone surrogates become U+FFFD."""
    return storable(raw.decode("utf-8", errors="replace"))


class LongNumber(str):
    """The digits of an integer longer than Python converts (`sys.get_int_max_str_digits`)."""


def _needs_walk(body: bytes) -> bool:
    """Whether a body read without long numbers may hold anything to repair or refuse. Most
    cannot: no escape that makes NUL or a surrogate, too few brackets to nest too deep."""
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        return True
    # `in` first: a regex without a literal prefix tries every position of the body.
    maybe = b"\\u" in body or b"\xed" in body
    return maybe and _UNSTORABLE_JSON.search(body) is not None


def show_path(path: Path) -> str:
    """A path as the sender would write it: `alerts[2].labels.instance`."""
    shown = ""
    for part in path:
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else part)
    return shown or "the body"


@dataclass(frozen=True)
class Problem:
    """A value that could not be read, where it is, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.reason} at {show_path(self.path)}"


@dataclass
class Payload:
    """A parsed body, made safe to store, with what was repaired and what could not be read."""

    value: Any
    repaired: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problems_by_item(self, key: str) -> dict[str | int, list[Problem]]:
        """The problems inside each item of the list at `key` (each alert of a batch), by
        index; read once, however many items and problems there are."""
        found: dict[str | int, list[Problem]] = {}
        for problem in self.problems:
            if len(problem.path) > 1 and problem.path[0] == key:
                found.setdefault(problem.path[1], []).append(problem)
        return found

    def repaired_under(self, prefix: Path) -> list[str]:
        """The paths inside `prefix` whose text was repaired, as the sender would write them."""
        return sorted({show_path(p) for p in self.repaired if p[: len(prefix)] == prefix})

    def whole(self) -> Any:
        """The value of a body that is one item: Rejected (422) naming what could not be read."""
        if self.problems:
            raise Rejected(422, "; ".join(str(p) for p in self.problems[:10]))
        return self.value


def _cut_deep(body: bytes) -> bytes:
    """The body with every array or object deeper than MAX_DEPTH replaced by TOO_DEEP (as a
    JSON string), found by its brackets outside strings; for bodies json cannot parse whole."""
    marker = json.dumps(TOO_DEEP).encode()
    out = bytearray()
    kept_from = depth = 0
    cut_at: int | None = None  # where the container being cut began
    in_string = False
    position = 0
    while (found := _JSON_TOKENS.search(body, position)) is not None:
        token, at = found.group(), found.start()
        position = at + 1
        if token == b"\\":
            position += 1 if in_string else 0  # the escaped character is skipped
        elif token == b'"':
            in_string = not in_string
        elif in_string:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH and cut_at is None:
                cut_at = at
        else:
            depth -= 1
            if depth == MAX_DEPTH and cut_at is not None:
                out += body[kept_from:cut_at] + marker
                kept_from, cut_at = position, None
    return bytes(out + body[kept_from:])


class _Parser:
    """json.loads that reads an integer too long for Python as a LongNumber, and says so."""

    def __init__(self) -> None:
        self.long_numbers = False

    def read_int(self, digits: str) -> int | LongNumber:
        try:
            return int(digits)
        except ValueError:  # over the int-str limit: kept as text, reported by its path
            self.long_numbers = True
            return LongNumber(digits)

    def __call__(self, body: bytes) -> Any:
        return json.loads(body, parse_int=self.read_int)


def _loaded(body: bytes, _parse: _Parser) -> Any:
    """The JSON document in `body`, or Rejected (400) naming why it cannot be read at all."""
    try:
        try:
            return _parse(body)
        except RecursionError:
            return _parse(_cut_deep(body))
    except RecursionError:
        raise Rejected(400, f"JSON nested too deeply to read (over {MAX_DEPTH} levels)") from None
    except UnicodeDecodeError as error:
        raise Rejected(400, f"body is not UTF-8 text: {error}", {"position": error.start}) from None
    except json.JSONDecodeError as error:
        raise Rejected(
            400,
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno} "
            f"(char {error.pos})",
            {"line": error.lineno, "column": error.colno, "position": error.pos},
        ) from None


# A value's path as a linked list from its container's: (container's link, key), None for the
# body itself. Made flat (`_flat`) only for what is reported, so the walk stays linear.
_Link = tuple[Any, str | int] | None


def _flat(link: _Link) -> Path:
    parts: list[str | int] = []
    while link is not None:
        link, part = link
        parts.append(part)
    return tuple(reversed(parts))


def load_payload(body: bytes) -> Payload:
    """The JSON in `body`, safe to store: Rejected (400) only when none of it can be read."""
    parse = _Parser()
    value = _loaded(body, parse)
    if not parse.long_numbers and not _needs_walk(body):
        return Payload(value)
    payload = Payload([value])
    # Walked without recursion: (container, key, link, depth) of each value still to look at.
    stack: list[tuple[Any, Any, _Link, int]] = [(payload.value, 0, None, 0)]
    while stack:
        parent, key, link, depth = stack.pop()
        value = parent[key]
        if isinstance(value, str):
            if isinstance(value, LongNumber):
                problem = f"an integer of {len(value)} digits, too long to read"
                payload.problems.append(Problem(_flat(link), problem))
            elif value == TOO_DEEP:
                problem = f"nesting deeper than {MAX_DEPTH} levels"
                payload.problems.append(Problem(_flat(link), problem))
            elif (repaired := storable(value)) is not value:
                parent[key] = repaired
                payload.repaired.append(_flat(link))
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                parent[key] = TOO_DEEP
                problem = f"nesting deeper than {MAX_DEPTH} levels"
                payload.problems.append(Problem(_flat(link), problem))
                continue
            if isinstance(value, dict):
                if any(_UNSTORABLE.search(name) for name in value):
                    _repair_keys(value, _flat(link), payload)
                names: Iterable[str | int] = value.keys()
            else:
                names = range(len(value))
            stack.extend((value, name, (link, name), depth + 1) for name in names)
    payload.value = payload.value[0]
    payload.problems.sort(key=lambda problem: show_path(problem.path))
    return payload


def _repair_keys(value: dict[str, Any], path: Path, payload: Payload) -> None:
    items = list(value.items())
    value.clear()
    for name, item in items:
        repaired = storable(name)
        if repaired is not name:
            payload.repaired.append((*path, repaired))
        value[repaired] = item
