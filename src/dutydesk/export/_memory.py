"""How much memory the export's DuckDB may hold, and where it spills the rest."""

from __future__ import annotations

from pathlib import Path

import duckdb

from dutydesk.settings import get_settings


def spill_folder() -> Path:
    """Where DuckDB writes what does not fit its memory limit (`DUTYDESK_EXPORT_SPILL_FOLDER`,
    default `$DUTYDESK_HOME/export-spill`)."""
    settings = get_settings()
    return Path(settings.export_spill_folder or settings.home_path / "export-spill")


def limit_memory(database: duckdb.DuckDBPyConnection) -> None:
    """Cap `database` at `DUTYDESK_EXPORT_MEMORY_LIMIT`; beyond it, sorts, joins and
    aggregates spill to the spill folder instead of growing the process."""
    settings = get_settings()
    folder = spill_folder()
    folder.mkdir(parents=True, exist_ok=True)
    # Both values are checked settings; the folder is passed as a quoted literal.
    quoted = "'" + str(folder).replace("'", "''") + "'"
    database.execute(f"SET memory_limit = '{settings.export_memory_limit}'")
    database.execute(f"SET temp_directory = {quoted}")
