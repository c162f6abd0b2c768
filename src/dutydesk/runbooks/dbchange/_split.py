"""A script split into statements by sqlparse, and what each statement is.

Strings, comments, dollar-quoted bodies and backslash escapes keep their semicolons: the split
is sqlparse's lexer, never `text.split(";")`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlparse
from sqlparse import sql as ast
from sqlparse import tokens as T

# Statements that end or open a transaction of their own: a script with them cannot be run
# inside the one transaction the desk rolls back (dry run) or commits (apply).
_TRANSACTION_CONTROL = re.compile(
    r"^(COMMIT|ROLLBACK|END|BEGIN|START\s+TRANSACTION|ABORT|SET\s+AUTOCOMMIT|"
    r"PREPARE\s+TRANSACTION|COMMIT\s+PREPARED|ROLLBACK\s+PREPARED)\b",
    re.IGNORECASE,
)
# Statements PostgreSQL (or any) refuses to run inside a transaction block.
_NOT_IN_TRANSACTION = re.compile(
    r"^(VACUUM|ALTER\s+SYSTEM|CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|"
    r"DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b.*\bCONCURRENTLY|CREATE\s+DATABASE|DROP\s+DATABASE|"
    r"ALTER\s+DATABASE|CREATE\s+TABLESPACE|DROP\s+TABLESPACE|CLUSTER\s*$|DETACH\s+PARTITION.*"
    r"CONCURRENTLY|ATTACH\s+DATABASE|DETACH\s+DATABASE)\b",
    re.IGNORECASE | re.DOTALL,
)
# Data definition: MariaDB/MySQL commit before and after each of these, whatever was begun.
_DDL = re.compile(r"^(CREATE|ALTER|DROP|TRUNCATE|RENAME|GRANT|REVOKE)\b", re.IGNORECASE)
WRITES = ("UPDATE", "DELETE", "INSERT")


@dataclass(frozen=True)
class Statement:
    """One statement of a script: its number (from 1), its exact text and what it does."""

    number: int
    text: str  # as written, comments included, without the closing semicolon
    code: str  # the statement without comments, collapsed to single spaces
    kind: str  # UPDATE, DELETE, INSERT, SELECT, CREATE, ALTER, ... or UNKNOWN
    table: str | None  # the table an UPDATE, DELETE or INSERT writes, as written
    where: str | None  # the WHERE clause of an UPDATE or DELETE, without the keyword

    @property
    def writes_rows(self) -> bool:
        """Whether the statement is an UPDATE, DELETE or INSERT."""
        return self.kind in WRITES

    @property
    def is_ddl(self) -> bool:
        """Whether the statement defines data (CREATE, ALTER, DROP, TRUNCATE, ...)."""
        return bool(_DDL.match(self.code))

    @property
    def headline(self) -> str:
        """The statement's first 80 characters on one line, for messages."""
        return self.code if len(self.code) <= 80 else self.code[:77] + "..."


def _strip_semicolon(text: str) -> str:
    text = text.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _code_of(text: str) -> str:
    stripped = sqlparse.format(text, strip_comments=True).strip()
    return " ".join(_strip_semicolon(stripped).split())


def _target_table(parsed: ast.Statement, kind: str) -> str | None:
    """The table written by an UPDATE (after UPDATE), DELETE (after FROM) or INSERT (INTO)."""
    after = {"UPDATE": "UPDATE", "DELETE": "FROM", "INSERT": "INTO"}[kind]
    seen = False
    for token in parsed.tokens:
        if token.is_whitespace or token.ttype in T.Comment or isinstance(token, ast.Comment):
            continue
        if not seen:
            seen = token.ttype in T.Keyword and token.normalized == after
            continue
        if isinstance(token, ast.Function):  # INSERT INTO t(a, b)
            token = token.tokens[0]
        if isinstance(token, ast.Identifier):
            name = token.get_real_name()  # type: ignore[no-untyped-call]
            parent = token.get_parent_name()  # type: ignore[no-untyped-call]
            if name is None:
                return None
            real = _quoted_part(token, name)
            return f"{_quoted_part(token, parent)}.{real}" if parent else real
        if isinstance(token, ast.Token) and token.ttype in T.Name:
            return str(token)
        return None
    return None


def _quoted_part(token: ast.Identifier, name: str) -> str:
    """`name` as the identifier wrote it (quotes kept, so case and spaces survive)."""
    for quote in ('"', "`"):
        if f"{quote}{name}{quote}" in str(token):
            return f"{quote}{name}{quote}"
    return name


def _where_of(parsed: ast.Statement) -> str | None:
    for token in parsed.tokens:
        if isinstance(token, ast.Where):
            text = _strip_semicolon(sqlparse.format(str(token), strip_comments=True))
            return text[len("WHERE") :].strip() or None
    return None


def split_script(script: str) -> list[Statement]:
    """The script's statements in order; text that is only comments or blank is skipped."""
    statements: list[Statement] = []
    for raw in sqlparse.split(script):
        code = _code_of(raw)
        if not code:
            continue
        parsed = sqlparse.parse(raw)[0]
        kind = str(parsed.get_type())  # type: ignore[no-untyped-call]
        table = where = None
        if kind in WRITES:
            table = _target_table(parsed, kind)
            where = _where_of(parsed) if kind != "INSERT" else None
        statements.append(
            Statement(
                number=len(statements) + 1,
                text=_strip_semicolon(raw),
                code=code,
                kind=kind,
                table=table,
                where=where,
            )
        )
    return statements


def refusal(statements: list[Statement], *, ddl_commits: bool) -> str | None:
    """Why the script cannot run in one transaction, naming the statement; None when it can.

    `ddl_commits`: the database commits data definition implicitly (MariaDB, MySQL).
    """
    for statement in statements:
        if _TRANSACTION_CONTROL.match(statement.code):
            return (
                f"statement {statement.number} ({statement.headline}) ends or opens a "
                "transaction itself; the desk runs the whole script in one transaction, so "
                "remove it"
            )
        if _NOT_IN_TRANSACTION.match(statement.code):
            return (
                f"statement {statement.number} ({statement.headline}) cannot run inside a "
                "transaction; run it by hand outside a change script"
            )
    if ddl_commits:
        for statement in statements:
            if statement.is_ddl:
                return (
                    f"statement {statement.number} ({statement.headline}) is DDL, which "
                    "MariaDB/MySQL commit implicitly: it cannot be rolled back, so there is no "
                    "dry run of this script; split the DDL off and apply it separately"
                )
    return None


def touched_tables(statements: list[Statement]) -> list[str]:
    """Tables the script writes or alters (as written), in order of first mention."""
    names: list[str] = []
    for statement in statements:
        name = statement.table
        if name is None and statement.is_ddl:
            match = re.match(
                r"^(?:ALTER|DROP|TRUNCATE)\s+(?:TABLE\s+)?(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?"
                r'("[^"]+"|`[^`]+`|[\w.]+)',
                statement.code,
                re.IGNORECASE,
            )
            name = match.group(1) if match else None
            if name and name.upper() in {"INDEX", "VIEW", "FUNCTION", "SEQUENCE", "SCHEMA"}:
                name = None
        if name and name not in names:
            names.append(name)
    return names
