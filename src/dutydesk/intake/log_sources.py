"""Log archives scanned on a schedule: each source is a glob; each scan counts only what is
new since the last (a growing plain file from its old end, a new file whole), remembering per
file its size, modification time and the offset counted so far."""

from __future__ import annotations

import datetime as dt
import glob as globbing
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.idents import as_id
from dutydesk.intake import logs
from dutydesk.intake.models import LogSource
from dutydesk.logs.formats import FORMATS

MAX_FILES_PER_SCAN = 10_000
MAX_GLOB_CHARS = 1000  # the column's size


class LogSourceError(ValueError):
    """A log source that cannot be made; the message says why."""


def create_log_source(
    session: Session, *, name: str, glob: str, actor: str, fmt: str = "auto"
) -> LogSource:
    """Make a scanned source (its files are counted at the next scan)."""
    if not logs.SOURCE_PATTERN.match(name):
        raise LogSourceError(f"source {name!r} must be letters, digits and ._:/- only")
    if len(glob) > MAX_GLOB_CHARS:
        raise LogSourceError(f"the glob is over {MAX_GLOB_CHARS} characters")
    if not Path(glob).is_absolute():
        raise LogSourceError("the glob must be an absolute path, such as /var/log/app/*.log*")
    if fmt != "auto" and fmt not in FORMATS:
        raise LogSourceError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)} or auto")
    if session.scalar(select(LogSource.id).where(LogSource.name == name)) is not None:
        raise LogSourceError(f"a log source named {name!r} exists")
    source = LogSource(name=name, glob=glob, format=fmt, created_by=actor, scanned={})
    session.add(source)
    session.flush()
    return source


def list_log_sources(session: Session) -> list[LogSource]:
    """Scanned sources by name."""
    return list(session.scalars(select(LogSource).order_by(LogSource.name)))


def get_log_source(session: Session, ident: str) -> LogSource:
    """A source by its name or id; LogSourceError when there is none."""
    found = session.scalar(select(LogSource).where(LogSource.name == ident))
    if found is None and (number := as_id(ident)) is not None:
        found = session.get(LogSource, number)
    if found is None:
        raise LogSourceError(f"no log source {ident!r}")
    return found


def delete_log_source(session: Session, source: LogSource) -> None:
    """Stop scanning a source (the lines it counted stay)."""
    session.delete(source)
    session.flush()


def _new_text(path: Path, seen: dict[str, Any] | None, size: int) -> tuple[str, int] | None:
    """The text to count and the new offset, or None when nothing is new."""
    if path.suffix == ".gz":
        if seen is not None:
            return None  # a compressed archive is counted once
        return logs.read_log_file(path), size
    start = seen["offset"] if seen is not None and size >= seen["offset"] else 0
    if seen is not None and size == seen["offset"]:
        return None
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    cut = data.rfind(b"\n") + 1  # a line still being written waits for the next scan
    if cut == 0:
        return None
    return data[:cut].decode("utf-8", errors="replace"), start + cut


def scan_source(session: Session, source: LogSource, now: dt.datetime) -> dict[str, Any]:
    """Count the new lines of the source's files; returns what was scanned."""
    from dutydesk.alarms.watch import log_deadline_rules, note_log_lines
    from dutydesk.diagnose.scrape import access_series

    scanned = dict(source.scanned)
    files = events = 0
    # Each line's time and message are kept only when a deadline rule waits for a log line.
    watched = bool(log_deadline_rules(session, source.name))
    for name in sorted(globbing.glob(source.glob))[:MAX_FILES_PER_SCAN]:
        path = Path(name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        seen = scanned.get(name)
        if seen is not None and seen["size"] == st.st_size and seen["mtime"] == st.st_mtime:
            continue
        found = _new_text(path, seen, st.st_size)
        if found is not None:
            text, offset = found
            fmt = logs.pick_format(source.format, text)
            batch = logs.count_text(text, fmt, now, keep=watched)
            events += logs.store_counts(session, source.name, batch)["events"]
            access_series(session, source.name, text, fmt, now=now)  # requests, 5xx, p95
            if watched:
                note_log_lines(session, source.name, batch.messages)
            files += 1
        else:
            offset = seen["offset"] if seen else st.st_size
        scanned[name] = {"size": st.st_size, "mtime": st.st_mtime, "offset": offset}
    source.scanned = scanned
    source.last_scanned_at = now
    source.last_result = {"files": files, "events": events}
    return {"source": source.name, "files": files, "events": events}
