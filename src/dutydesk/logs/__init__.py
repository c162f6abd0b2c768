"""Log analytics: query access and application logs by glob (local, gzip, S3) with DuckDB.

The public surface: a `Query`, `run(query)` answering with an Arrow table and a `Report` of
unparsed lines and unreadable files, the formats (`formats.parse_line` is shared with log
intake) and the saved extracts.
"""

from dutydesk.logs._report import Report, Unparsed
from dutydesk.logs.extracts import Extract, ExtractError, get_extract, list_extracts
from dutydesk.logs.formats import FORMAT_NAMES, FORMATS, LogFormat, parse_line
from dutydesk.logs.query import Query, QueryError, QueryResult, run

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
