"""Run a script on a target in one transaction: rolled back always (dry run), or committed
unless a statement fails (apply); with per-statement figures, plans, samples and locks."""

from __future__ import annotations

import time
from typing import Any

from dutydesk.db import utcnow
from dutydesk.runbooks.dbchange import _targets
from dutydesk.runbooks.dbchange._split import Statement, refusal, touched_tables
from dutydesk.runbooks.dbchange._targets import TABLE_NAME, Connection, TargetError
from dutydesk.runbooks.dbchange.models import DbChangeTarget, RunMode

SAMPLE_ROWS = 20


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _rows(columns: list[str], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    return {"columns": columns, "rows": [[_targets.plain(value) for value in row] for row in rows]}


class _Sampler:
    """Up to SAMPLE_ROWS rows a writing statement touches, read before and after it inside the
    same transaction; after an UPDATE or DELETE the same rows are read again by primary key."""

    def __init__(self, connection: Connection, statement: Statement) -> None:
        self.connection = connection
        self.statement = statement
        self.table = (
            statement.table if statement.table and TABLE_NAME.match(statement.table) else None
        )
        self.key: list[str] = []
        self.key_values: list[tuple[Any, ...]] = []

    def _select(self, tail: str, params: list[Any] | None = None) -> dict[str, Any]:
        # The table (a checked identifier) and the WHERE clause are the script's own text, run
        # on the target the script itself runs on; values go as parameters.
        sql = f"SELECT * FROM {self.table} {tail}"  # noqa: S608
        columns, rows = self.connection.query(sql, params)
        if self.key:
            positions = [columns.index(name) for name in self.key if name in columns]
            if len(positions) == len(self.key):
                self.key_values = [tuple(row[i] for i in positions) for row in rows]
        return _rows(columns, rows)

    def before(self) -> dict[str, Any] | None:
        if self.table is None or self.statement.kind == "INSERT":
            return None
        with self.connection.savepoint():
            self.key = self.connection.primary_key(self.table)
            where = f"WHERE {self.statement.where}" if self.statement.where else ""
            return self._select(f"{where} LIMIT {SAMPLE_ROWS}")

    def after(self, affected: int) -> dict[str, Any] | None:
        if self.table is None:
            return None
        with self.connection.savepoint():
            if self.statement.kind == "INSERT":
                self.key = self.connection.primary_key(self.table)
                if not self.key:
                    return None
                order = ", ".join(f"{self.connection.quote(name)} DESC" for name in self.key)
                limit = min(SAMPLE_ROWS, max(affected, 0))
                return self._select(f"ORDER BY {order} LIMIT {limit}")
            if self.key and self.key_values:
                mark = self.connection.placeholder
                one = " AND ".join(f"{self.connection.quote(name)} = {mark}" for name in self.key)
                where = " OR ".join(f"({one})" for _ in self.key_values)
                params = [value for values in self.key_values for value in values]
                return self._select(f"WHERE {where}", params)
            if self.key:  # the WHERE matched nothing before: nothing to read again
                return {"columns": [], "rows": []}
            where = f"WHERE {self.statement.where}" if self.statement.where else ""
            return self._select(f"{where} LIMIT {SAMPLE_ROWS}")


def _message(number: int, kind: str | None, detail: str, target: DbChangeTarget) -> str:
    if kind == "lock":
        return (
            f"statement {number} waited longer than the lock timeout "
            f"({target.lock_timeout_ms} ms) for a lock another session holds ({detail})"
        )
    if kind == "statement":
        return (
            f"statement {number} ran longer than the statement timeout "
            f"({target.statement_timeout_ms} ms) ({detail})"
        )
    return f"statement {number} failed: {detail}"


def _fingerprints(target: DbChangeTarget, tables: list[str]) -> dict[str, dict[str, Any]]:
    if not tables:
        return {}
    connection = _targets.connect(_targets.login_for(target, write=False), read_only=True)
    try:
        return {table: _targets.table_fingerprint(connection, table) for table in tables}
    finally:
        connection.close()


def _run_statement(
    connection: Connection, statement: Statement, record: dict[str, Any], target: DbChangeTarget
) -> str | None:
    """Run one statement, filling its record; the error message when it failed."""
    sampler = _Sampler(connection, statement) if statement.writes_rows else None
    if sampler is not None:
        try:
            with connection.savepoint():
                record["plan"] = connection.explain(statement.text)
        except Exception as error:  # noqa: BLE001 - a plan the database cannot give is noted
            record["plan_error"] = _targets.first_line(error, connection.login)
        try:
            record["before"] = sampler.before()
        except Exception as error:  # noqa: BLE001 - a sample that cannot be read is noted
            record["sample_error"] = _targets.first_line(error, connection.login)
    started = time.perf_counter()
    try:
        record["rows"] = connection.execute(statement.text)
    except Exception as error:  # noqa: BLE001 - any database error stops the script here
        record["duration_ms"] = _ms(started)
        detail = _targets.first_line(error, connection.login)
        timeout = connection.timeout_kind(error)
        record["error"] = detail
        record["timeout"] = timeout
        return _message(statement.number, timeout, detail, target)
    record["duration_ms"] = _ms(started)
    if sampler is not None and "sample_error" not in record:
        try:
            record["after"] = sampler.after(int(record["rows"]))
        except Exception as error:  # noqa: BLE001
            record["sample_error"] = _targets.first_line(error, connection.login)
    return None


def run_script(
    target: DbChangeTarget, statements: list[Statement], mode: RunMode
) -> dict[str, Any]:
    """Run `statements` on `target` in one transaction and say what happened.

    Dry run: always rolled back, then every touched table's row count and checksum are compared
    with those read before. Apply: committed when every statement succeeded, else rolled back.
    """
    figures: dict[str, Any] = {
        "mode": mode.value,
        "target": target.name,
        "backend": target.backend,
        "statement_timeout_ms": target.statement_timeout_ms,
        "lock_timeout_ms": target.lock_timeout_ms,
        "started_at": utcnow().isoformat(),
        "statements": [],
        "locks": [],
        "tables": [],
        "ok": False,
        "error": None,
        "committed": False,
    }
    reason = refusal(statements, ddl_commits=target.backend == "mysql")
    if reason is not None:
        figures["error"] = figures["refused"] = reason
        return figures
    if not statements:
        figures["error"] = figures["refused"] = "the script has no statements"
        return figures
    started = time.perf_counter()
    tables = touched_tables(statements)
    try:
        before = _fingerprints(target, tables)
        connection = _targets.connect(_targets.login_for(target, write=True))
    except TargetError as error:
        figures["error"] = str(error)
        return figures
    failed: str | None = None
    try:
        connection.begin(
            statement_timeout_ms=target.statement_timeout_ms,
            lock_timeout_ms=target.lock_timeout_ms,
        )
        for statement in statements:
            record: dict[str, Any] = {
                "number": statement.number,
                "text": statement.text,
                "kind": statement.kind,
                "rows": None,
                "duration_ms": None,
                "error": None,
            }
            figures["statements"].append(record)
            failed = _run_statement(connection, statement, record, target)
            if failed is not None:
                break
        if failed is None:
            figures["locks"] = connection.locks()
        if mode is RunMode.apply and failed is None:
            connection.commit()
            figures["committed"] = True
        else:
            connection.rollback()
    except Exception as error:  # noqa: BLE001 - the transaction itself failed (commit, begin)
        failed = f"the transaction failed: {_targets.first_line(error, connection.login)}"
    finally:
        connection.close()
    figures["duration_ms"] = _ms(started)
    try:
        after = _fingerprints(target, tables)
    except TargetError as error:
        after = {table: {"table": table, "error": str(error)} for table in tables}
    for table in tables:
        figures["tables"].append(
            {
                "table": table,
                "before": before.get(table),
                "after": after.get(table),
                "unchanged": before.get(table) == after.get(table),
            }
        )
    figures["unchanged"] = all(entry["unchanged"] for entry in figures["tables"])
    if failed is not None:
        ending = "nothing was committed" if mode is RunMode.apply else "it was rolled back"
        figures["error"] = f"{failed}; {ending}"
    elif mode is RunMode.dry_run and not figures["unchanged"]:
        changed = [entry["table"] for entry in figures["tables"] if not entry["unchanged"]]
        figures["error"] = (
            f"after the rollback {', '.join(changed)} differ from before: another session "
            "wrote meanwhile, or a statement commits by itself; run the dry run again"
        )
    figures["ok"] = figures["error"] is None
    return figures
