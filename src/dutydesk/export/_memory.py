"""How much memory the export's DuckDB may hold, and where it spills the rest."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import socket
from pathlib import Path

import duckdb

from dutydesk.processes import process_runs
from dutydesk.settings import get_settings

# A database's own spill folder inside the spill folder: `<pid>-<n>-<random>@<host>`, the
# process that opened it, which of that process's databases it is, and the machine (a spill
# folder on a volume several containers mount must not look dead to the others).
OWN_FOLDER = re.compile(r"^(\d+)-\d+-[0-9a-f]{8}@(.+)$")
_opened = itertools.count(1)
_mine: set[str] = set()  # the folders this process named (a restarted container may reuse a pid)


def spill_folder() -> Path:
    """Where DuckDB writes what does not fit its memory limit (`DUTYDESK_EXPORT_SPILL_FOLDER`,
    default `$DUTYDESK_HOME/export-spill`)."""
    settings = get_settings()
    return Path(settings.export_spill_folder or settings.home_path / "export-spill")


def limit_memory(database: duckdb.DuckDBPyConnection) -> None:
    """Cap `database` at `DUTYDESK_EXPORT_MEMORY_LIMIT`; beyond it, sorts, joins and
    aggregates spill to a folder of this database's own in the spill folder.

    DuckDB names its spill files the same in every database (`duckdb_temp_storage_S64K-0.tmp`),
    so two databases spilling into one folder (two workers with one home, or two study jobs in
    one process) overwrite each other's blocks and fail or crash. Each database gets
    `<spill folder>/<pid>-<n>-<random>@<host>`, which DuckDB makes on its first spill and
    removes when the database closes; folders left by processes that died are removed here.
    """
    settings = get_settings()
    base = spill_folder()
    base.mkdir(parents=True, exist_ok=True)
    remove_dead_folders(base)
    name = f"{os.getpid()}-{next(_opened)}-{secrets.token_hex(4)}@{socket.gethostname()}"
    _mine.add(name)
    own = base / name
    # Both values are checked settings; the folder is passed as a quoted literal.
    quoted = "'" + str(own).replace("'", "''") + "'"
    database.execute(f"SET memory_limit = '{settings.export_memory_limit}'")
    database.execute(f"SET temp_directory = {quoted}")


def remove_dead_folders(base: Path) -> list[Path]:
    """Remove the databases' spill folders under `base` whose process on this machine is gone
    (killed, or crashed before DuckDB could clean up); return them."""
    removed = []
    here, me = socket.gethostname(), os.getpid()
    for entry in base.iterdir():
        match = OWN_FOLDER.match(entry.name)
        if match is None or match.group(2) != here or not entry.is_dir():
            continue
        pid = int(match.group(1))
        if (entry.name in _mine) if pid == me else process_runs(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
