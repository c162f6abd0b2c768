"""Log lines for alarms: parsed with the shared parser, counted per (source, minute, level),
warnings and errors grouped by template. Raw lines are not kept beyond a few samples a group.

Used by `POST /api/v1/logs`, the archive scan and the benchmark; `count_text` is the pure
part (parse and count in memory), `store_counts` writes one batch.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dutydesk.intake._payload import storable
from dutydesk.intake.models import ErrorGroup, ErrorGroupCount, LogCount
from dutydesk.logs.formats import (
    FORMATS,
    LogFormat,
    parse_fields,
    parse_line,
    parse_timestamp,
    sniff,
)

SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
GROUPED_LEVELS = frozenset({"WARN", "ERROR", "FATAL"})
LEVEL_ALIASES = {
    "WARNING": "WARN",
    "SEVERE": "ERROR",
    "CRITICAL": "FATAL",
    "CRIT": "FATAL",
    "ERR": "ERROR",
    "FINE": "DEBUG",
    "FINER": "TRACE",
    "FINEST": "TRACE",
    "CONFIG": "INFO",
}
UNPARSED = "UNPARSED"
SAMPLES_KEPT = 5
MAX_SAMPLE = 2_000
MAX_TEMPLATE = 1_000

# Masked in this order: quoted values first (they may hold numbers), then UUIDs, hex, numbers.
_MASKS = (
    (re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''), "<str>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (
        re.compile(
            r"\b(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,})\b"
        ),
        "<hex>",
    ),
    (re.compile(r"(?<![A-Za-z_])-?[0-9]+(?:[.,:][0-9]+)*"), "<num>"),
)


class LogInputError(ValueError):
    """A batch of log lines the desk cannot read; the message names the problem and where."""


def template_of(message: str) -> str:
    """The message's first line with numbers, hex, UUIDs and quoted values masked."""
    text = message.split("\n", 1)[0].strip()
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:MAX_TEMPLATE]


def normal_level(level: object) -> str:
    """A level name as counted: upper case, with the usual aliases folded in."""
    name = str(level or "").strip().upper()
    if not name:
        return UNPARSED
    return LEVEL_ALIASES.get(name, name)[:16]


@dataclass
class GroupTally:
    """What one batch saw of one error group."""

    level: str
    template: str
    count: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    samples: list[str] = field(default_factory=list)
    minutes: dict[dt.datetime, int] = field(default_factory=dict)


@dataclass
class LogBatch:
    """Counts of one batch, in memory: per (minute, level), and per error group."""

    events: int = 0
    unparsed: int = 0
    counts: dict[tuple[dt.datetime, str], int] = field(default_factory=dict)
    groups: dict[str, GroupTally] = field(default_factory=dict)
    # Messages of every event, for rules that look for a line (deadline rules); only when asked.
    messages: list[tuple[dt.datetime, str]] = field(default_factory=list)
    # Lines refused (JSON lines sent to the API that are no JSON object): number and why.
    refused: list[tuple[int, str]] = field(default_factory=list)

    def count(self, minute: dt.datetime, level: str) -> None:
        """Count one event in its minute, without grouping it."""
        key = (minute, level)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.events += 1

    def add(
        self, at: dt.datetime, level: str, message: str, line: str, *, keep: bool = False
    ) -> None:
        """Count one event at `at`; group it when it is a warning or worse."""
        minute = at.replace(second=0, microsecond=0)
        self.count(minute, level)
        if keep:
            self.messages.append((at, message))
        if level not in GROUPED_LEVELS:
            return
        template = template_of(message)
        group_key = hashlib.sha256(f"{level}\0{template}".encode()).hexdigest()
        tally = self.groups.get(group_key)
        if tally is None:
            tally = self.groups[group_key] = GroupTally(level, template)
        tally.count += 1
        tally.first = at if tally.first is None else min(tally.first, at)
        tally.last = at if tally.last is None else max(tally.last, at)
        tally.minutes[minute] = tally.minutes.get(minute, 0) + 1
        tally.samples.append(line[:MAX_SAMPLE])
        del tally.samples[:-SAMPLES_KEPT]


def pick_format(name: str, text: str) -> LogFormat:
    """The format called `name`, or for `auto` the one the first lines read in."""
    if name == "auto":
        lines = text[:20_000].splitlines()
        try:
            try:
                name = sniff(lines)
            except RecursionError:  # a JSON line nested deeper than json reads: sniff the rest
                name = sniff([line for line in lines if line.count("[") + line.count("{") < 500])
        except ValueError as error:
            raise LogInputError(str(error).replace("; give --format", "; give ?format=")) from None
    if name not in FORMATS:
        raise LogInputError(f"unknown format {name!r}; use one of {', '.join(FORMATS)} or auto")
    return FORMATS[name]


def _events(fmt: LogFormat, text: str) -> Iterator[str]:
    if fmt.multiline:
        yield from fmt.events().split(text)
    else:
        yield from text.split("\n")


def _json_problem(line: str) -> str:
    import json

    try:
        document = json.loads(line)
    except RecursionError:
        return "JSON nested too deeply to read"
    except ValueError as error:
        return f"malformed JSON: {error}"
    return f"a JSON line must be an object, not {type(document).__name__}"


class _Minutes:
    """Event times from `ts` texts: the minute from a cache keyed by the text up to the minute
    (most lines of a file share a few minutes), the full time only when asked."""

    def __init__(self, fmt: LogFormat, now: dt.datetime) -> None:
        self.fmt = fmt
        self.now = now
        self.cache: dict[str, dt.datetime] = {}

    def minute(self, text: str | None) -> dt.datetime:
        """The minute of a timestamp text (`now`'s minute when there is none or it is bad)."""
        if not text:
            return self.now.replace(second=0, microsecond=0)
        # ISO-like stamps without a zone after the seconds share a prefix per minute.
        key = text[:16] if text[4:5] == "-" and not _ZONE.search(text, 16) else text
        found = self.cache.get(key)
        if found is None:
            found = (self.exact(text)).replace(second=0, microsecond=0)
            self.cache[key] = found
        return found

    def exact(self, text: str | None) -> dt.datetime:
        """The full time of a timestamp text (`now` when there is none or it is bad)."""
        return (parse_timestamp(self.fmt, text) if text else None) or self.now


_ZONE = re.compile(r"[Z+-]")


def count_text(
    text: str, fmt: LogFormat, now: dt.datetime, *, strict: bool = False, keep: bool = False
) -> LogBatch:
    """Parse and count the events of `text` (lines; Java stack traces join their event).

    Lines without a timestamp count at `now`. Unreadable lines count as UNPARSED, or with
    `strict` (JSON lines sent to the API) are refused, each with its number and why, while the
    others count. With `keep`, every event's time and message are kept for log deadline rules.
    NUL and lone surrogates, which PostgreSQL cannot store, are read as U+FFFD.
    """
    text = storable(text)
    batch = LogBatch()
    if fmt.json_keys:
        _count_json(batch, text, fmt, now, strict=strict, keep=keep)
        return batch
    access = "status" in fmt.fields
    times = _Minutes(fmt, now)
    for event in _events(fmt, text):
        if not event.strip():
            continue
        fields = parse_fields(fmt, event)
        if fields is None:
            batch.unparsed += 1
            batch.add(now, UNPARSED, event, event, keep=keep)
            continue
        ts = fields.get("ts")
        if access:
            status = fields.get("status") or "0"
            level = "ERROR" if status >= "500" else "WARN" if status >= "400" else "INFO"
            message = f"{fields.get('method') or '-'} {fields.get('path') or '-'} {status}"
        else:
            raw_level = fields.get("level") or "INFO"
            level = raw_level if raw_level in _PLAIN_LEVELS else normal_level(raw_level)
            message = fields.get("message") or event
        if keep or level in GROUPED_LEVELS:
            batch.add(times.exact(ts), level, message, event.rstrip(), keep=keep)
        else:
            batch.count(times.minute(ts), level)
    return batch


_PLAIN_LEVELS = frozenset({"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"})


def _count_json(
    batch: LogBatch, text: str, fmt: LogFormat, now: dt.datetime, *, strict: bool, keep: bool
) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            fields = parse_line(fmt, line)
        except RecursionError:  # nested deeper than json reads
            fields = None
        if fields is None:
            if strict:
                batch.refused.append((number, _json_problem(line)))
                continue
            batch.unparsed += 1
            batch.add(now, UNPARSED, line, line, keep=keep)
            continue
        ts = fields.get("ts")
        at = ts if isinstance(ts, dt.datetime) else now
        # JSON escapes (`\u0000`) can still make NUL or lone surrogates here.
        level = storable(normal_level(fields.get("level") or "INFO"))
        message = storable(str(fields.get("message") or line))
        batch.add(at, level, message, line.rstrip(), keep=keep)


def _insert(session: Session, model: Any) -> Any:
    """An INSERT that can say ON CONFLICT, in the dialect of the session's database."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _add_counts(session: Session, model: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = _insert(session, model)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={"count": model.count + statement.excluded.count}
    )
    session.execute(statement, rows)


def store_counts(session: Session, source: str, batch: LogBatch) -> dict[str, int]:
    """Add one batch's counts and groups to the source's (never commits)."""
    rows = [
        {"source": source, "minute": minute, "level": level, "count": count}
        for (minute, level), count in batch.counts.items()
    ]
    _add_counts(session, LogCount, ["source", "minute", "level"], rows)
    if batch.groups:
        found = {
            group.key: group
            for group in session.scalars(
                select(ErrorGroup)
                .where(ErrorGroup.source == source, ErrorGroup.key.in_(list(batch.groups)))
                .with_for_update()
            )
        }
        for key, tally in batch.groups.items():
            assert tally.first is not None and tally.last is not None
            group = found.get(key)
            if group is None:
                group = ErrorGroup(
                    source=source,
                    key=key,
                    level=tally.level,
                    template=tally.template,
                    count=0,
                    first_seen=tally.first,
                    last_seen=tally.last,
                    samples=[],
                )
                session.add(group)
            group.count += tally.count
            group.first_seen = min(group.first_seen, tally.first)
            if tally.last >= group.last_seen:
                group.last_seen = tally.last
                group.last_sample = tally.samples[-1]
            group.samples = [*group.samples, *tally.samples][-SAMPLES_KEPT:]
            found[key] = group
        session.flush()
        group_rows = [
            {"group_id": found[key].id, "minute": minute, "count": count}
            for key, tally in batch.groups.items()
            for minute, count in tally.minutes.items()
        ]
        _add_counts(session, ErrorGroupCount, ["group_id", "minute"], group_rows)
    return {"events": batch.events, "unparsed": batch.unparsed, "groups": len(batch.groups)}


def ingest(
    session: Session, source: str, text: str, fmt_name: str, now: dt.datetime, *, strict: bool
) -> dict[str, Any]:
    """Parse, count and store one batch of lines from `source`; feeds log deadline rules."""
    from dutydesk.alarms.watch import note_log_lines

    fmt = pick_format(fmt_name, text)
    batch = count_text(text, fmt, now, strict=strict, keep=True)
    stored = store_counts(session, source, batch)
    note_log_lines(session, source, batch.messages)
    refused = [{"line": number, "reason": reason} for number, reason in batch.refused[:100]]
    return {
        "source": source,
        "format": fmt.name,
        **stored,
        "refused_count": len(batch.refused),
        "refused": refused,
    }


def level_counts(
    session: Session, source: str | None, since: dt.datetime, until: dt.datetime
) -> dict[str, int]:
    """Lines per level of one source (all when None) in [since, until)."""
    from sqlalchemy import func

    statement = select(LogCount.level, func.sum(LogCount.count)).where(
        LogCount.minute >= since, LogCount.minute < until
    )
    if source:
        statement = statement.where(LogCount.source == source)
    return {level: int(n) for level, n in session.execute(statement.group_by(LogCount.level))}


def error_groups(
    session: Session, *, source: str | None = None, limit: int = 100
) -> list[ErrorGroup]:
    """Error groups, most recently seen first."""
    statement = select(ErrorGroup).order_by(ErrorGroup.last_seen.desc())
    if source:
        statement = statement.where(ErrorGroup.source == source)
    return list(session.scalars(statement.limit(limit)))


def sources(session: Session) -> Iterable[str]:
    """Every log source that has sent lines."""
    return list(session.scalars(select(LogCount.source).distinct().order_by(LogCount.source)))


def read_log_file(path: Path) -> str:
    """A log file's text (gzip files unpacked); undecodable bytes replaced."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    return path.read_bytes().decode("utf-8", errors="replace")


def scan_file(
    session: Session, source: str, path: Path, fmt_name: str = "auto", *, now: dt.datetime
) -> dict[str, Any]:
    """Count one log file (an archive scan): parse, count per minute and level, group."""
    text = read_log_file(path)
    fmt = pick_format(fmt_name, text)
    batch = count_text(text, fmt, now)
    return {"path": str(path), "format": fmt.name, **store_counts(session, source, batch)}
