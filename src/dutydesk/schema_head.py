"""Whether a database is at the newest migration, told without Alembic where that is easy.

Every command that uses the ops database checks this first. Alembic (and reading its scripts
as modules) costs a third of a second of a command's start; the scripts' text names each
revision and the one before it, and the database's version table holds its revision, so a
database at the one head is recognised with a glance at both. Anything less plain (no version
table, a revision not the head, a merge, a script this reading does not follow) is left to
Alembic.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import inspect, text

VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"$', re.M)
_DOWN = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.M)
_ONE = re.compile(r'"([^"]+)"')


def script_head(folder: Path = VERSIONS) -> str | None:
    """The one head of the migration scripts in `folder`, read from their text; None when the
    text does not tell it plainly."""
    revisions: set[str] = set()
    earlier: set[str] = set()
    for path in folder.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        value = down[0].strip()
        if value == "None":
            continue
        one = _ONE.fullmatch(value)
        if one is None:  # a merge of two branches, or a form not read here
            return None
        earlier.add(one.group(1))
    heads = revisions - earlier
    return heads.pop() if len(heads) == 1 and earlier <= revisions else None


def at_head(url: str, version_table: str = "alembic_version") -> bool:
    """True when the database at `url` is plainly at the scripts' head; False when that is
    not plain (Alembic then decides). A database that cannot be reached raises DBAPIError."""
    from dutydesk.db import build_engine

    head = script_head()
    if head is None:
        return False
    engine = build_engine(url)
    try:
        with engine.connect() as connection:  # a database that cannot be reached raises
            if not inspect(connection).has_table(version_table):
                return False
            found = connection.execute(
                text(f"SELECT version_num FROM {version_table}")  # noqa: S608 (a constant)
            ).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in found] == [(head,)]
