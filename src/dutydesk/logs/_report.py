"""What a query's answer leaves out: unparsed lines per file, unreadable files, the extract;
with `--format auto`, which format each file was read in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dutydesk.logs import extracts
from dutydesk.logs._files import Problem

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Unparsed:
    """Lines of one file that the format does not read."""

    file: str
    count: int
    sample: str
    format: str = ""  # the format it was read in, when files were read in several


@dataclass
class Report:
    """What the answer leaves out, so nothing is dropped in silence."""

    format: str = ""
    files: int = 0
    unparsed: list[Unparsed] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    saved: extracts.Extract | None = None
    # `--format auto`: the files read in each format, in the order the formats were found.
    formats: dict[str, list[str]] = field(default_factory=dict)
    # Files left out whole because their format lacks a field the query names, and why.
    skipped: list[Problem] = field(default_factory=list)

    FORMAT_NAMES_SHOWN = 3  # file names the summary of each format shows

    @property
    def unparsed_lines(self) -> int:
        """Lines that did not parse, over all files."""
        return sum(item.count for item in self.unparsed)

    def lines(self) -> list[str]:
        """The report as lines for a terminal (empty when everything was read in one format).

        When files were read in several formats, each format's file count and first few names
        come first."""
        out = []
        if len(self.formats) > 1:
            for name, files in self.formats.items():
                shown = ", ".join(files[: self.FORMAT_NAMES_SHOWN])
                more = len(files) - self.FORMAT_NAMES_SHOWN
                out.append(
                    f"format {name}: {len(files)} file(s): {shown}"
                    + (f" and {more} more" if more > 0 else "")
                )
        out += [f"unreadable: {item.file}: {item.reason}" for item in self.problems]
        out += [f"skipped: {item.file}: {item.reason}" for item in self.skipped]
        for item in self.unparsed:
            sample = item.sample if len(item.sample) <= 200 else item.sample[:200] + "..."
            out.append(
                f"unparsed: {item.count} line(s) of {item.file} are not "
                f"{item.format or self.format}; e.g. {sample!r}"
            )
        return out

    def file_formats(self) -> list[str]:
        """Each file read and its format, one `format: FILE: NAME` line each (`--file-formats`)."""
        return [f"format: {path}: {name}" for name, files in self.formats.items() for path in files]

    def add_unparsed(self, files: list[str], bad: pa.Table) -> None:
        """Merge rows (file id, count, sample) of lines that did not parse."""
        ids, counts, samples = (bad.column(i).to_pylist() for i in range(3))
        self.add_unparsed_rows(files, zip(ids, counts, samples, strict=True))

    def add_unparsed_rows(
        self, files: list[str], rows: Iterable[tuple[int | None, int, str | None]]
    ) -> None:
        """Merge (file id, count, sample) of lines that did not parse; files stay in order."""
        index = {name: i for i, name in enumerate(files)}
        by_file = {index[item.file]: item for item in self.unparsed if item.file in index}
        for file_id, count, sample in rows:
            if file_id is None:
                continue
            entry = by_file.get(file_id)
            if entry is None:
                entry = Unparsed(files[file_id], 0, sample or "")
                by_file[file_id] = entry
                self.unparsed.append(entry)
            entry.count += int(count)
        self.unparsed.sort(key=lambda item: index.get(item.file, len(files)))
