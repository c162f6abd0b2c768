"""`--format auto`: each file is read in the format its own first lines are written in.

Sniffing every file's first lines before reading would cost as much as the query over tens of
thousands of small files, so the formats are found as the files are read:

1. The first file whose first lines tell a format (`formats.sniff`) gives the glob's format.
2. Every file is read in that format. A file none of whose lines fails to parse stays in it.
3. A file that has lines that did not parse is looked at: if its first event reads in the
   format it was read in, it stays (a few bad lines in a good file are reported as before);
   otherwise its first lines are sniffed, and it moves to the format they tell, or, when they
   tell none, it is reported unread with the reason.
4. A format that files left is read again without them (the parsed cache makes that cheap), and
   each format files moved to is read the same way, until no file moves.

A format that lacks a field the query names is not answered: its files are reported as
skipped, with the reason (a first reading with no field but `file` still finds the files in
it that are of another format). The engine (`query`) and the small-input path (`_small`) both
run this, each with its own way of reading a group of files, so their answers stay the same.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from dutydesk.logs import _files
from dutydesk.logs._files import Problem
from dutydesk.logs._report import Report
from dutydesk.logs.formats import FORMATS, LogFormat, UnknownFormat, parse_line, sniff

if TYPE_CHECKING:
    from dutydesk.logs._s3 import S3

HEAD_BYTES = 65536  # what is read of a file (after un-gzipping) to tell its format
FIRST_FILES = 10  # files tried, in order, for the glob's format before giving up
Answer = TypeVar("Answer")


@dataclass
class Group(Generic[Answer]):
    """One format's reading of its files: the answer, or why the format cannot answer."""

    answer: Answer | None
    report: Report
    skipped: str = ""  # the format lacks a field the query names (answer is None)


@dataclass
class Outcome(Generic[Answer]):
    """Every format's answer, in the order the formats were found, and what was left out."""

    answers: list[tuple[str, Answer]] = field(default_factory=list)
    report: Report = field(default_factory=Report)
    first_skipped: str = ""  # why the glob's format could not answer (when none could)


def head_lines(path: str, s3: S3 | None = None) -> list[str] | Problem:
    """The first whole lines of a file (about HEAD_BYTES, un-gzipped), or why it cannot be read."""
    if path.startswith("s3://"):
        assert s3 is not None
        content = s3.fetch([path])[0]
        if isinstance(content, Problem):
            return content
        raw = content[: HEAD_BYTES * 4]
    else:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(HEAD_BYTES)
        except OSError as error:
            return Problem(path, error.strerror or str(error))
    if raw[:2] == _files.GZIP_MAGIC:
        try:
            raw = zlib.decompressobj(47).decompress(raw, HEAD_BYTES)
        except zlib.error as error:
            return Problem(path, f"not a readable gzip file ({error})")
    text = raw.decode("utf-8", "replace").splitlines()
    return text[:-1] or text  # the last line may be cut


def first_format(files: list[str], head: Callable[[str], list[str] | Problem]) -> str:
    """The format of the first of `files` whose first lines tell one; UnknownFormat when the
    first FIRST_FILES files with lines tell none (its message is the first file's)."""
    first_error: UnknownFormat | None = None
    tried = 0
    for path in files:
        lines = head(path)
        if isinstance(lines, Problem) or not any(line.strip() for line in lines):
            continue
        try:
            return sniff(lines)
        except UnknownFormat as error:
            first_error = first_error or error
            tried += 1
            if tried >= FIRST_FILES:
                break
    raise first_error or UnknownFormat("cannot tell the format of empty files; give --format")


def _first_event_reads(fmt: LogFormat, lines: list[str]) -> bool:
    """Whether the first event of `lines` parses in `fmt`."""
    sample = [line for line in lines if line.strip()]
    if not sample:
        return False
    if fmt.multiline:
        events = [event for event in fmt.events().split("\n".join(sample)) if event.strip()]
        return bool(events) and parse_line(fmt, events[0]) is not None
    return parse_line(fmt, sample[0]) is not None


def verdict(path: str, current: str, head: Callable[[str], list[str] | Problem]) -> str | Problem:
    """The format file `path` (read in `current`, with lines that did not parse) is read in:
    `current` when its first event reads in it, else what its first lines tell, else why not."""
    lines = head(path)
    if isinstance(lines, Problem):
        return lines
    if _first_event_reads(FORMATS[current], lines):
        return current
    try:
        return sniff(lines)
    except UnknownFormat as error:
        return Problem(path, f"cannot tell its format: {error}")


def per_file(
    files: list[str],
    first: str,
    read: Callable[[str, list[str], bool], Group[Answer]],
    head: Callable[[str], list[str] | Problem],
) -> Outcome[Answer]:
    """Each file read in its own format, as the module says.

    `read(format, files, alone)` reads `files` in `format`; `alone` is true while only one
    format is known (it may then cut rows to `--top`). Raises nothing itself: a format that
    cannot answer comes back skipped.
    """
    assigned = dict.fromkeys(files, first)
    looked_at: set[str] = set()
    unread: list[Problem] = []
    order = [first]
    pending = [first]
    done: dict[str, Group[Answer]] = {}
    while pending:
        name = pending.pop(0)
        members = [path for path in files if assigned.get(path) == name]
        if not members:
            done.pop(name, None)
            continue
        group = read(name, members, len(order) == 1)
        left = False
        for item in group.report.unparsed:
            if item.file in looked_at:
                continue
            looked_at.add(item.file)
            found = verdict(item.file, name, head)
            if found == name:
                continue
            left = True
            if isinstance(found, Problem):
                unread.append(found)
                del assigned[item.file]
                continue
            assigned[item.file] = found
            if found not in order:
                order.append(found)
            done.pop(found, None)
            if found not in pending:
                pending.append(found)
        if left:
            pending.insert(0, name)  # again, without the files that left
        else:
            done[name] = group
    return _outcome(files, order, done, assigned, unread)


def _outcome(
    files: list[str],
    order: list[str],
    done: dict[str, Group[Answer]],
    assigned: dict[str, str],
    unread: list[Problem],
) -> Outcome[Answer]:
    """The answers and one report merged from each format's, files in list order."""
    outcome: Outcome[Answer] = Outcome()
    report = outcome.report
    index = {path: i for i, path in enumerate(files)}
    for name in order:
        group = done.get(name)
        if group is None:
            continue
        members = [path for path in files if assigned.get(path) == name]
        if group.answer is None:
            outcome.first_skipped = outcome.first_skipped or (
                group.skipped if name == order[0] else ""
            )
            report.skipped += [Problem(path, group.skipped) for path in members]
            continue
        outcome.answers.append((name, group.answer))
        unreadable = {problem.file for problem in group.report.problems}
        report.problems += group.report.problems
        report.formats[name] = [path for path in members if path not in unreadable]
        for item in group.report.unparsed:
            item.format = name
            report.unparsed.append(item)
    report.problems += unread
    report.unparsed.sort(key=lambda item: index.get(item.file, len(files)))
    report.format = ", ".join(report.formats) or order[0]
    return outcome
