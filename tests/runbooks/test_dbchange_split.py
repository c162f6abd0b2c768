"""Scripts split by a real SQL splitter: semicolons in strings, comments and dollar-quoted
bodies stay inside their statement; transaction control and DDL are named when refused."""

from __future__ import annotations

from dutydesk.runbooks.dbchange._split import refusal, split_script, touched_tables

SCRIPT = """-- tasks/20261207_fix_status/fix_status.sql; reviewed by the team
UPDATE items SET note = 'a;b' WHERE status = 'x;y';
/* a block comment; with a semicolon */
CREATE FUNCTION bump() RETURNS trigger AS $$
BEGIN
  NEW.n := NEW.n + 1; -- a semicolon in the body
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION tagged() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
DELETE FROM "Audit Log" WHERE detail = E'it\\'s; done';
INSERT INTO public.items (note, status) VALUES ('semi;colon', 'new');
-- only a comment at the end; nothing to run
"""


def test_semicolons_in_strings_comments_and_dollar_quotes_stay_in_their_statement() -> None:
    statements = split_script(SCRIPT)
    assert [s.kind for s in statements] == ["UPDATE", "CREATE", "CREATE", "DELETE", "INSERT"]
    assert [s.number for s in statements] == [1, 2, 3, 4, 5]
    assert "'a;b'" in statements[0].text and "'x;y'" in statements[0].text
    assert "NEW.n := NEW.n + 1; -- a semicolon in the body" in statements[1].text
    assert statements[1].text.endswith("LANGUAGE plpgsql")
    assert "$body$ SELECT 1; $body$" in statements[2].text
    assert "E'it\\'s; done'" in statements[3].text


def test_written_tables_and_where_clauses_are_found() -> None:
    update, _, _, delete, insert = split_script(SCRIPT)
    assert (update.table, update.where) == ("items", "status = 'x;y'")
    assert (delete.table, delete.where) == ('"Audit Log"', "detail = E'it\\'s; done'")
    assert (insert.table, insert.where) == ("public.items", None)
    assert touched_tables(split_script(SCRIPT)) == ["items", '"Audit Log"', "public.items"]


def test_a_script_of_only_comments_has_no_statements() -> None:
    assert split_script("-- nothing; here\n/* nor; here */\n") == []


def test_commit_rollback_and_statements_outside_transactions_are_refused_by_number() -> None:
    for text, number, word in [
        ("UPDATE t SET a = 1; COMMIT;", 2, "ends or opens a transaction"),
        ("update t set a = 1;\nrollback;", 2, "ends or opens a transaction"),
        ("BEGIN; UPDATE t SET a = 1;", 1, "ends or opens a transaction"),
        ("VACUUM t;", 1, "cannot run inside a transaction"),
        ("SELECT 1; CREATE INDEX CONCURRENTLY i ON t (a);", 2, "cannot run inside a transaction"),
        ("ALTER SYSTEM SET work_mem = '64MB';", 1, "cannot run inside a transaction"),
    ]:
        reason = refusal(split_script(text), ddl_commits=False)
        assert reason is not None and reason.startswith(f"statement {number} ("), text
        assert word in reason


def test_ddl_is_refused_only_where_ddl_commits_implicitly() -> None:
    statements = split_script("UPDATE t SET a = 1; ALTER TABLE t ADD COLUMN b int;")
    assert refusal(statements, ddl_commits=False) is None
    reason = refusal(statements, ddl_commits=True)
    assert reason is not None and reason.startswith("statement 2 (ALTER TABLE t ADD COLUMN b int)")
    assert "MariaDB/MySQL commit implicitly" in reason
    # A function body saying BEGIN or COMMIT inside $$ is not transaction control.
    assert refusal(split_script(SCRIPT), ddl_commits=False) is None
