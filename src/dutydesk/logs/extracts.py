"""Saved extracts: the filtered rows of a query as Parquet, with a JSON sidecar.

`DUTYDESK_HOME/extracts/NAME.parquet` holds the rows; `NAME.json` the query that made them,
the format, the row count and when. An extract is also the console's saved query: its sidecar
is enough to run the query again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTRACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ExtractError(ValueError):
    """An extract name that is not allowed or names nothing."""


@dataclass(frozen=True)
class Extract:
    """One saved extract as its sidecar describes it."""

    name: str
    path: Path
    rows: int
    size: int
    created: str
    format: str
    columns: tuple[str, ...]
    query: dict[str, Any]

    @property
    def command(self) -> str:
        """The `dutydesk logs query` command line that made it."""
        return str(self.query.get("command", ""))


def check_name(name: str) -> str:
    """`name` if it may name an extract (it becomes a file name), else ExtractError."""
    if not EXTRACT_NAME.match(name):
        raise ExtractError(
            f"{name!r} cannot name an extract: use letters, digits, '_', '.', '-' "
            "(up to 100, starting with a letter or digit)"
        )
    return name


def _read(sidecar: Path) -> Extract:
    data = json.loads(sidecar.read_text())
    parquet = sidecar.with_suffix(".parquet")
    return Extract(
        name=sidecar.stem,
        path=parquet,
        rows=int(data.get("rows", 0)),
        size=parquet.stat().st_size if parquet.exists() else 0,
        created=str(data.get("created", "")),
        format=str(data.get("format", "")),
        columns=tuple(data.get("columns", ())),
        query=dict(data.get("query", {})),
    )


def list_extracts(folder: Path) -> list[Extract]:
    """Every extract in `folder`, newest first."""
    if not folder.is_dir():
        return []
    found = [
        _read(sidecar) for sidecar in folder.glob("*.json") if EXTRACT_NAME.match(sidecar.stem)
    ]
    return sorted(found, key=lambda item: item.created, reverse=True)


def get_extract(folder: Path, name: str) -> Extract:
    """The extract called `name`, or ExtractError saying which ones exist."""
    sidecar = folder / f"{check_name(name)}.json"
    if not sidecar.exists() or not sidecar.with_suffix(".parquet").exists():
        known = ", ".join(item.name for item in list_extracts(folder)) or "none yet"
        raise ExtractError(f"no extract named {name!r} (extracts: {known})")
    return _read(sidecar)


def write_sidecar(
    folder: Path, name: str, *, rows: int, fmt: str, columns: list[str], query: dict[str, Any]
) -> Extract:
    """Record what made the extract `name` (its Parquet file is already in place)."""
    sidecar = folder / f"{name}.json"
    body = {
        "rows": rows,
        "format": fmt,
        "columns": columns,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "query": query,
    }
    temporary = sidecar.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(body, indent=2, default=str))
    temporary.replace(sidecar)
    return _read(sidecar)
