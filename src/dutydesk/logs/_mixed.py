"""Answers of several formats made one (`--format auto` over a folder of mixed logs).

Rows follow one another, their columns matched by name; grouped counts are added up per
group; percentiles are taken again over every format's values (each format's answer counts
each value per group, so nothing is approximated).

The SQL is built from the plan's checked field names (through `quote_name`) and runs over
Arrow tables registered on the query's locked-down connection; no value a user typed is in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dutydesk.logs._engine import PERCENTILES, Plan, final_sql, quote_name

if TYPE_CHECKING:
    import duckdb


def union(tables: list[pa.Table]) -> pa.Table:
    """`tables` one after the other, columns by name in the order first seen; a column a
    table lacks is null there, and one typed differently in two tables becomes text."""
    types: dict[str, pa.DataType] = {}
    for table in tables:
        for column in table.schema:
            kind = column.type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            if column.name not in types:
                types[column.name] = kind
            elif types[column.name] != kind:
                types[column.name] = pa.string()
    parts = []
    for table in tables:
        columns = []
        for name, kind in types.items():
            if name in table.column_names:
                columns.append(table.column(name).cast(kind))
            else:
                columns.append(pa.nulls(table.num_rows, kind))
        parts.append(pa.table(columns, names=list(types)))
    return pa.concat_tables(parts)


def counts(
    connection: duckdb.DuckDBPyConnection, plan: Plan, top: int | None, tables: list[pa.Table]
) -> pa.Table:
    """The grouped answer of `plan` from each format's counts, ordered and cut as one format's.

    With percentiles, each table counts the rows per group and value of the percentiles' field
    (`count`); the values are spread out again for DuckDB's `quantile_cont`, as the engine
    takes it over one format's values."""
    keys = ", ".join(quote_name(name) for name in plan.group_by)
    connection.register("log_parts", union(tables))
    if plan.percentiles:
        value = quote_name(plan.percentiles)
        quantiles = ", ".join(f"{p / 100}" for p in PERCENTILES)
        spread = f"list_resize([CAST({value} AS DOUBLE)], n, CAST({value} AS DOUBLE))"
        selected = ", ".join(
            part
            for part in (
                keys,
                "CAST(sum(n) AS BIGINT) AS count",
                f"list_aggregate(flatten(list({spread}) FILTER (WHERE {value} IS NOT NULL)), "
                f"'quantile_cont', [{quantiles}]) AS _percentiles",
            )
            if part
        )
        by_value = ", ".join(part for part in (keys, value) if part)
        if plan.percentiles in plan.group_by:
            by_value = keys
        summed = f"SELECT {by_value}, sum(count) AS n FROM log_parts GROUP BY ALL"  # noqa: S608
        grouped = f"SELECT {selected} FROM ({summed}) GROUP BY ALL"  # noqa: S608
    else:
        added = "CAST(sum(count) AS BIGINT) AS count"
        grouped = f"SELECT {keys}, {added} FROM log_parts GROUP BY ALL"  # noqa: S608
    groups = connection.execute(grouped).to_arrow_table()
    connection.register("log_groups", groups)
    return connection.execute(final_sql(plan, top)).to_arrow_table()
