"""Splitting a dominant study into slices by table, so no single job holds a run hostage.

A study with more than `DUTYDESK_EXPORT_SLICE_RECORDS` records in a run's window, and more
than one schema table, becomes several parts. Each schema table is one file, so a table
written by one slice is the file the whole study would have written: the split cannot show in
the output. Slice 0 keeps the record-level work (it reads every record: counters, bad records,
the summary and default tables); each later slice reads only its own tables' records.
"""

from __future__ import annotations

import math
from collections import Counter

from sqlalchemy import func, select

from dutydesk.db import build_engine
from dutydesk.export._surveys import SURVEY_REVISION, SURVEY_SCHEMA
from dutydesk.export.request import SchemaKey
from dutydesk.records.models import Record

SchemaTable = tuple[str, int]
# Slice 0's own work, in records' worth of a schema table: it reads every record again and
# writes the summary table (a narrower row per accepted record) and the default table.
RECORD_LEVEL_WEIGHT = 0.5


def table_counts(
    records_url: str, study_id: str, start_ms: int, end_ms: int, at_least: int
) -> Counter[SchemaTable | None]:
    """The study's records in the window per schema table (None: no schema, the default
    table); empty when the study holds `at_least` records or fewer (not worth counting)."""
    engine = build_engine(records_url)
    try:
        with engine.connect() as connection:
            window = (
                Record.study_id == study_id,
                Record.uploaded_on >= start_ms,
                Record.uploaded_on < end_ms,
            )
            # The (study_id, uploaded_on) index answers this alone.
            total = connection.scalar(select(func.count()).select_from(Record).where(*window))
            if not total or total <= at_least:
                return Counter()
            rows = connection.execute(
                select(Record.schema_id, Record.schema_revision, func.count())
                .where(*window)
                .group_by(Record.schema_id, Record.schema_revision)
            ).all()
    finally:
        engine.dispose()
    counts: Counter[SchemaTable | None] = Counter()
    for schema_id, revision, count in rows:
        key = None if schema_id is None or revision is None else (str(schema_id), int(revision))
        counts[key] += int(count)
    return counts


def split_tables(
    study_id: str,
    counts: Counter[SchemaTable | None],
    slice_records: int,
    table_whitelist: frozenset[SchemaKey] | None = None,
) -> list[list[SchemaTable]]:
    """The schema tables of each slice (slice 0 first), or [] when the study stays whole.

    `n = min(tables, ceil(records / slice_records))` slices; tables go largest first into the
    lightest slice (the lowest number on a tie), slice 0 starting with its record-level work.
    """
    total = sum(counts.values())
    if slice_records <= 0 or total <= slice_records:
        return []
    tables = [
        (count, key)
        for key, count in counts.items()
        if key is not None
        and key != (SURVEY_SCHEMA, SURVEY_REVISION)  # surveys become other schemas' records
        and (table_whitelist is None or SchemaKey(study_id, key[0], key[1]) in table_whitelist)
    ]
    slices = min(len(tables), math.ceil(total / slice_records))
    if slices < 2:
        return []
    weights = [0.0] * slices
    weights[0] = RECORD_LEVEL_WEIGHT * total + counts.get(None, 0)
    assigned: list[list[SchemaTable]] = [[] for _ in range(slices)]
    for count, key in sorted(tables, key=lambda item: (-item[0], item[1])):
        lightest = min(range(slices), key=lambda n: (weights[n], n))
        weights[lightest] += count
        assigned[lightest].append(key)
    return [sorted(keys) for keys in assigned]
