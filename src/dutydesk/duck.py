"""DuckDB extensions from their PyPI packages: loaded from site-packages, never downloaded.

`INSTALL` would reach for the network; the `duckdb-extension-<name>` packages ship the file
for the pinned DuckDB version, and `load_extension` loads it from there.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

DUCKDB_VERSION = "1.5.5"


def extension_path(name: str) -> str:
    """The file of extension `name` (e.g. `sqlite_scanner`, `httpfs`) shipped by its package."""
    package = importlib.import_module(f"duckdb_extension_{name}")
    folder = Path(package.__file__ or "").parent / "extensions" / f"v{DUCKDB_VERSION}"
    path = folder / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(
            f"DuckDB extension {name} v{DUCKDB_VERSION} is not installed at {path}; "
            f"install duckdb-extension-{name.replace('_', '-')}=={DUCKDB_VERSION}"
        )
    return str(path)


def load_extension(connection: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load extension `name` into `connection` from its package."""
    literal = "'" + extension_path(name).replace("'", "''") + "'"
    connection.execute(f"LOAD {literal}")
