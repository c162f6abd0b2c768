"""A query's report as the Logs page shows it: what `dutydesk logs query` writes on stderr
(one line per format, unreadable and skipped files, unparsed lines per file with a sample) and
what `--file-formats` adds (every file and its format), each list cut to a page's worth with
the number left out.

Samples are log text, which anyone who can write to a log can choose: the template escapes
them (Jinja's autoescape), and control characters are written as `\\xNN` so a TLS hello or a
terminal escape sent to a plain port shows as what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from dutydesk.logs._files import Problem
from dutydesk.logs._report import Report

NAMES_SHOWN = Report.FORMAT_NAMES_SHOWN  # names in each format's summary line, as on stderr
FILES_LISTED = 500  # files the "every file and its format" list shows
ITEMS_LISTED = 200  # files each list of unreadable, skipped or unparsed files shows
SAMPLE_CHARS = 300  # characters of an unparsed sample shown
Item = TypeVar("Item")


@dataclass
class Capped(Generic[Item]):
    """The first items of a list, and how many more there are."""

    items: list[Item]
    more: int = 0

    @classmethod
    def of(cls, items: list[Item], limit: int) -> Capped[Item]:
        """The first `limit` of `items`."""
        return cls(items[:limit], max(len(items) - limit, 0))


@dataclass
class FormatFiles:
    """The files read in one format: how many, and the first few names."""

    name: str
    count: int
    first: list[str]

    @property
    def more(self) -> int:
        """Files of this format not named in `first`."""
        return self.count - len(self.first)


@dataclass
class FileFormat:
    """One file and the format it was read in (a `--file-formats` line)."""

    file: str
    format: str


@dataclass
class UnparsedFile:
    """Lines of one file that did not parse in the format it was read in, with a sample."""

    file: str
    format: str
    lines: int
    sample: str


@dataclass
class QueryReport:
    """Everything the CLI reports about one query, lists capped for a page."""

    format: str  # the format, or the formats found joined by ", " (`auto` over mixed files)
    files: int  # files listed by the glob, read or not
    formats: list[FormatFiles] = field(default_factory=list)
    file_formats: Capped[FileFormat] = field(default_factory=lambda: Capped([]))
    unreadable: Capped[Problem] = field(default_factory=lambda: Capped([]))
    skipped: Capped[Problem] = field(default_factory=lambda: Capped([]))
    unparsed: Capped[UnparsedFile] = field(default_factory=lambda: Capped([]))
    unparsed_lines: int = 0
    unparsed_files: int = 0

    @property
    def several_formats(self) -> bool:
        """Whether the files were read in more than one format."""
        return len(self.formats) > 1

    @property
    def complete(self) -> bool:
        """Whether every line of every file was read (nothing unreadable, skipped or unparsed)."""
        return not (self.unreadable.items or self.skipped.items or self.unparsed.items)


def visible(text: str) -> str:
    """`text` with control characters other than newline and tab written as `\\xNN`/`\\uNNNN`,
    and cut to SAMPLE_CHARS (then "...")."""
    cut = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "..."
    return "".join(
        char if char.isprintable() or char in "\n\t" else repr(char)[1:-1] for char in cut
    )


def query_report(report: Report) -> QueryReport:
    """The page's view of `report`."""
    every = [FileFormat(path, name) for name, paths in report.formats.items() for path in paths]
    unparsed = [
        UnparsedFile(item.file, item.format or report.format, item.count, visible(item.sample))
        for item in report.unparsed
    ]
    return QueryReport(
        format=report.format,
        files=report.files,
        formats=[
            FormatFiles(name, len(paths), paths[:NAMES_SHOWN])
            for name, paths in report.formats.items()
        ],
        file_formats=Capped.of(every, FILES_LISTED),
        unreadable=Capped.of(report.problems, ITEMS_LISTED),
        skipped=Capped.of(report.skipped, ITEMS_LISTED),
        unparsed=Capped.of(unparsed, ITEMS_LISTED),
        unparsed_lines=report.unparsed_lines,
        unparsed_files=len(report.unparsed),
    )
