"""Log analytics: query access and application logs by glob (local, gzip, S3) with DuckDB.

The public surface: a `Query`, `run(query)` answering with an Arrow table and a `Report` of
unparsed lines and unreadable files, the formats (`formats.parse_line` is shared with log
intake) and the saved extracts.

Each name is imported on first use: log intake and the command line import `dutydesk.logs.formats`
alone, which must not load DuckDB and Arrow with the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dutydesk.logs._report import Report, Unparsed
    from dutydesk.logs.extracts import Extract, ExtractError, get_extract, list_extracts
    from dutydesk.logs.formats import FORMAT_NAMES, FORMATS, LogFormat, parse_line
    from dutydesk.logs.query import Query, QueryError, QueryResult, run

_HOME = {
    "Report": "_report",
    "Unparsed": "_report",
    "Extract": "extracts",
    "ExtractError": "extracts",
    "get_extract": "extracts",
    "list_extracts": "extracts",
    "FORMAT_NAMES": "formats",
    "FORMATS": "formats",
    "LogFormat": "formats",
    "parse_line": "formats",
    "Query": "query",
    "QueryError": "query",
    "QueryResult": "query",
    "run": "query",
}

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "Extract",
    "ExtractError",
    "LogFormat",
    "Query",
    "QueryError",
    "QueryResult",
    "Report",
    "Unparsed",
    "get_extract",
    "list_extracts",
    "parse_line",
    "run",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module the first time it is asked for."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
