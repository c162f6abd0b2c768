"""Changing an existing table's columns (spec §10): what may change, and the plan for a table.

Columns are compared by name, type and size only. The rules are Bridge's, stated on Synapse
types (see `Column.synapse_type`), so a table keeps the same changes allowed as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dutydesk.export._columns import Column

# Old Synapse type -> new types it may become. Booleans and dates never become text, and
# doubles never become integers, because old values would not survive the change.
_ALLOWED_TYPE_CHANGES = frozenset(
    {
        ("INTEGER", "DOUBLE"),
        ("INTEGER", "DATE"),
        ("INTEGER", "STRING"),
        ("INTEGER", "LARGETEXT"),
        ("DATE", "INTEGER"),
        ("DATE", "DOUBLE"),
        ("DOUBLE", "STRING"),
        ("DOUBLE", "LARGETEXT"),
        ("STRING", "LARGETEXT"),
    }
)
# The longest text of a number column, the size a STRING must have to take its values.
_TEXT_SIZES = {"DOUBLE": 22, "INTEGER": 20}


def column_changed(old: Column, new: Column) -> bool:
    """Whether a kept column's type or size differs (the source is not compared)."""
    return (old.type, old.max_length) != (new.type, new.max_length)


def compatible_change(old: Column, new: Column) -> bool:
    """Whether `old` may become `new` without losing data: same name, allowed type, no shrink."""
    if old.name != new.name:
        return False
    old_type, new_type = old.synapse_type, new.synapse_type
    if old_type != new_type and (old_type, new_type) not in _ALLOWED_TYPE_CHANGES:
        return False
    if new_type == "STRING" and old.max_length != new.max_length:
        old_size = old.max_length if old.max_length is not None else _TEXT_SIZES.get(old_type)
        return old_size is not None and new.max_length is not None and new.max_length >= old_size
    return True


@dataclass(frozen=True)
class MigrationPlan:
    """What turning a table's stored columns into the desired ones takes.

    `added` and `changed` (old, new pairs) are in the desired order, `deleted` in the stored
    order; `incompatible` names the changed columns that may not change. A plan with `error`
    must not be applied: the table fails without retry until its schema is fixed.
    """

    table_key: str
    columns: tuple[Column, ...]
    added: tuple[Column, ...]
    changed: tuple[tuple[Column, Column], ...]
    deleted: tuple[str, ...]
    incompatible: tuple[str, ...]

    @property
    def errors(self) -> tuple[str, ...]:
        """Bridge's error lines: deleted columns first, then incompatible ones."""
        lines = []
        if self.deleted:
            lines.append(f"Table {self.table_key} has deleted columns: {', '.join(self.deleted)}")
        if self.incompatible:
            names = ", ".join(self.incompatible)
            lines.append(f"Table {self.table_key} has incompatible modified columns: {names}")
        return tuple(lines)

    @property
    def error(self) -> str | None:
        """The error lines joined with "; ", or None when the plan may be applied."""
        return "; ".join(self.errors) or None

    @property
    def is_noop(self) -> bool:
        """Nothing added or changed: the table stays as it is (a new order alone is no change)."""
        return not (self.added or self.changed or self.deleted)


def plan_migration(
    table_key: str, old_columns: Iterable[Column], new_columns: Iterable[Column]
) -> MigrationPlan:
    """Compare a table's stored columns with the desired ones, by name."""
    old_by_name = {column.name: column for column in old_columns}
    desired = tuple(new_columns)
    new_names = {column.name for column in desired}
    changed = tuple(
        (old_by_name[column.name], column)
        for column in desired
        if column.name in old_by_name and column_changed(old_by_name[column.name], column)
    )
    return MigrationPlan(
        table_key=table_key,
        columns=desired,
        added=tuple(column for column in desired if column.name not in old_by_name),
        changed=changed,
        deleted=tuple(name for name in old_by_name if name not in new_names),
        incompatible=tuple(new.name for old, new in changed if not compatible_change(old, new)),
    )
