"""Database changes end to end on real target databases: the dry run is the evidence, a second
person signs it, apply runs it in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.people.models import User
from dutydesk.runbooks import ChangeRefused, ChangeRequest, ChangeState, sign_off
from dutydesk.runbooks.dbchange import service
from dutydesk.runbooks.dbchange.models import DbChangeRun, DbChangeTarget
from tests.runbooks.dbchange_kit import ITEMS, TARGETS, Crew, TargetDb, make_crew, target_db

__all__ = ["target_db"]

SCRIPT = """-- tasks/20260712_close_old_items/close_old_items.sql
UPDATE items SET status = 'closed' WHERE n <= 1000;
DELETE FROM items WHERE n > 1990;
"""


@pytest.fixture
def people(db: Session) -> Crew:
    """Olga (operator) writes scripts; Abe (approver) and Otto (operator) may sign them."""
    return make_crew(db)


def add_target(db: Session, target_db: TargetDb, **timeouts: int) -> DbChangeTarget:
    """The throwaway database as a target (its URL's login is the read-write one)."""
    target = service.save_target(db, name="items-db", url=target_db.url, **timeouts)
    db.commit()
    return target


def drain(db: Session, factory: sessionmaker[Session]) -> list[str]:
    """Run the queued apply jobs here, as a worker would; the states they ended in."""
    queued = db.scalars(
        select(Job.id)
        .where(Job.state == "queued", Job.kind == "runbooks.run_change")
        .order_by(Job.id)
    ).all()
    db.commit()
    return [jobs.execute(job_id, "test-worker", factory) for job_id in queued]


def sign(db: Session, change: ChangeRequest, who: User) -> None:
    """`who` signs the change's current version and evidence."""
    sign_off(db, change, who, data_version=change.data_version, evidence_hash=change.evidence_hash)
    db.commit()


@pytest.mark.parametrize("target_db", TARGETS, indirect=True)
def test_dry_run_shows_counts_plans_samples_and_no_change_then_apply_changes_exactly_those_rows(
    db: Session, factory: sessionmaker[Session], people: Crew, target_db: TargetDb
) -> None:
    target_db.make_items()
    before = target_db.rows("SELECT id, n, status FROM items ORDER BY id")
    change = service.new_change(
        db, target=add_target(db, target_db), script=SCRIPT, author=people.olga
    )
    db.commit()
    assert change.payload["script"] == SCRIPT
    assert len(change.payload["script_sha256"]) == 64

    figures = service.dry_run(db, change, people.olga)
    db.commit()

    assert figures["ok"], figures["error"]
    update, delete = figures["statements"]
    assert (update["rows"], delete["rows"]) == (1000, 10)
    assert update["plan"] and delete["plan"]
    assert len(update["before"]["rows"]) == 20 and len(update["after"]["rows"]) == 20
    status = update["after"]["columns"].index("status")
    assert {row[status] for row in update["before"]["rows"]} == {"new"}
    assert {row[status] for row in update["after"]["rows"]} == {"closed"}
    assert len(delete["before"]["rows"]) == 10 and delete["after"]["rows"] == []
    (items,) = figures["tables"]
    assert items["unchanged"] and items["before"]["rows"] == ITEMS
    assert items["before"]["checksum"] == items["after"]["checksum"]
    if target_db.backend == "postgresql":
        assert ("items", "RowExclusiveLock") in {
            (lock["relation"], lock["mode"]) for lock in figures["locks"]
        }
    assert target_db.rows("SELECT id, n, status FROM items ORDER BY id") == before
    assert change.state == ChangeState.pending
    assert change.evidence["dry_run"] == figures

    with pytest.raises(service.DbChangeError) as refused:
        service.request_apply(db, change, people.olga)
    assert refused.value.status == 409 and "only once approved" in str(refused.value)

    sign(db, change, people.abe)
    assert change.state == ChangeState.approved
    service.request_apply(db, change, people.olga)
    db.commit()
    assert drain(db, factory) == ["succeeded"]
    db.refresh(change)

    assert change.state == ChangeState.done, change.error
    assert change.result is not None
    applied = change.result["apply"]
    assert applied["committed"] and [s["rows"] for s in applied["statements"]] == [1000, 10]
    assert applied["backup"]["kind"] == "dump" and Path(applied["backup"]["path"]).stat().st_size
    (table,) = applied["tables"]  # the same fingerprint sees the applied change
    assert (table["before"]["rows"], table["after"]["rows"]) == (ITEMS, ITEMS - 10)
    assert table["after"]["checksum"] != table["before"]["checksum"]
    after = target_db.rows("SELECT id, n, status FROM items ORDER BY id")
    assert len(after) == ITEMS - 10
    assert [row for row in after if row[2] == "closed"] == [
        (i, i, "closed") for i in range(1, 1001)
    ]
    assert [row for row in after if row[2] == "new"] == [(i, i, "new") for i in range(1001, 1991)]
    modes = [run.mode for run in service.runs(db, change)]
    assert modes == ["apply", "dry_run"]


@pytest.mark.parametrize("target_db", TARGETS, indirect=True)
def test_a_syntax_error_in_statement_3_is_named_nothing_of_1_and_2_is_left_and_apply_refuses(
    db: Session, people: Crew, target_db: TargetDb
) -> None:
    target_db.make_items()
    script = (
        "UPDATE items SET status = 'one' WHERE n <= 5;\n"
        "INSERT INTO items (id, n, status) VALUES (9001, 9001, 'two');\n"
        "UPDATE items SET status = 'three' WHER n = 7;\n"
    )
    change = service.new_change(
        db, target=add_target(db, target_db), script=script, author=people.olga
    )
    figures = service.dry_run(db, change, people.olga)
    db.commit()

    assert not figures["ok"]
    assert figures["error"].startswith("statement 3 failed: ")
    assert [s["error"] is None for s in figures["statements"]] == [True, True, False]
    assert target_db.rows("SELECT count(*) FROM items WHERE status <> 'new' OR id = 9001") == [(0,)]
    assert figures["tables"][0]["unchanged"]
    assert change.state == ChangeState.draft  # a failed dry run is not sent for signoff
    with pytest.raises(service.DbChangeError) as refused:
        service.request_apply(db, change, people.olga)
    assert refused.value.status == 409 and "dry run failed" in str(refused.value)
    assert "statement 3" in str(refused.value)


@pytest.mark.parametrize("target_db", TARGETS, indirect=True)
def test_a_statement_waiting_on_a_lock_another_connection_holds_fails_at_the_lock_timeout(
    db: Session, people: Crew, target_db: TargetDb
) -> None:
    target_db.make_items()
    target = add_target(db, target_db, lock_timeout_ms=300, statement_timeout_ms=10_000)
    change = service.new_change(
        db, target=target, script="UPDATE items SET status = 'x' WHERE id = 1;", author=people.olga
    )
    holder = target_db.connect()
    cursor = holder.cursor()
    if target_db.backend == "sqlite":
        cursor.execute("BEGIN IMMEDIATE")
    cursor.execute("UPDATE items SET n = n WHERE id = 1")
    try:
        figures = service.dry_run(db, change, people.olga)
    finally:
        holder.rollback()
        holder.close()
    db.commit()

    assert not figures["ok"]
    assert figures["statements"][0]["timeout"] == "lock"
    assert figures["error"].startswith(
        "statement 1 waited longer than the lock timeout (300 ms) for a lock another session holds"
    )
    assert target_db.rows("SELECT status FROM items WHERE id = 1") == [("new",)]


@pytest.mark.parametrize("target_db", TARGETS, indirect=True)
def test_scripts_with_their_own_commit_are_refused_naming_the_statement(
    db: Session, people: Crew, target_db: TargetDb
) -> None:
    target_db.make_items()
    script = "UPDATE items SET status = 'x' WHERE id = 1;\nCOMMIT;\n"
    change = service.new_change(
        db, target=add_target(db, target_db), script=script, author=people.olga
    )
    figures = service.dry_run(db, change, people.olga)
    assert figures["refused"].startswith("statement 2 (COMMIT) ends or opens a transaction")
    assert figures["statements"] == []
    assert target_db.rows("SELECT status FROM items WHERE id = 1") == [("new",)]


@pytest.mark.parametrize("target_db", TARGETS, indirect=True)
def test_ddl_is_rolled_back_in_a_dry_run_except_on_mariadb_where_it_is_refused_with_the_reason(
    db: Session, people: Crew, target_db: TargetDb
) -> None:
    target_db.make_items()
    script = "ALTER TABLE items ADD COLUMN note varchar(40);\nUPDATE items SET note = 'x';\n"
    change = service.new_change(
        db, target=add_target(db, target_db), script=script, author=people.olga
    )
    figures = service.dry_run(db, change, people.olga)
    columns = len(target_db.rows("SELECT * FROM items WHERE id = 1")[0])
    assert columns == 3  # no note column: rolled back, or never run
    if target_db.backend == "mysql":
        assert not figures["ok"] and figures["statements"] == []
        assert figures["refused"].startswith("statement 1 (ALTER TABLE items ADD COLUMN")
        assert "MariaDB/MySQL commit implicitly" in figures["refused"]
    else:
        assert figures["ok"], figures["error"]
        assert figures["statements"][1]["rows"] == ITEMS


def test_the_author_cannot_sign_and_an_edit_or_a_new_dry_run_drops_the_signoff(
    db: Session, people: Crew, tmp_path: Path
) -> None:
    target_db = TargetDb("sqlite", f"sqlite:///{tmp_path / 't.sqlite'}")
    target_db.make_items()
    change = service.new_change(
        db, target=add_target(db, target_db), script=SCRIPT, author=people.olga
    )
    service.dry_run(db, change, people.olga)
    db.commit()
    with pytest.raises(ChangeRefused) as refused:
        sign(db, change, people.olga)
    assert refused.value.status == 403
    sign(db, change, people.otto)  # a second operator is enough by default
    assert change.state == ChangeState.approved

    service.dry_run(db, change, people.olga)  # a new dry run is new evidence
    db.commit()
    assert change.state == ChangeState.pending and change.active_signoffs == []
    sign(db, change, people.abe)
    assert change.state == ChangeState.approved

    service.edit_script(
        db, change, SCRIPT + "UPDATE items SET n = n + 1 WHERE id = 2;\n", people.olga
    )
    db.commit()
    assert change.state == ChangeState.pending and change.active_signoffs == []
    assert change.evidence == {}
    with pytest.raises(service.DbChangeError) as no_run:
        service.request_apply(db, change, people.olga)
    assert "no dry run" in str(no_run.value)


def test_an_apply_whose_statement_fails_rolls_back_everything_and_keeps_its_figures(
    db: Session, factory: sessionmaker[Session], people: Crew, tmp_path: Path
) -> None:
    target_db = TargetDb("sqlite", f"sqlite:///{tmp_path / 't.sqlite'}")
    target_db.make_items()
    script = (
        "UPDATE items SET status = 'closed' WHERE n <= 10;\n"
        "INSERT INTO items (id, n, status) VALUES (5000, 5000, 'new');\n"
    )
    change = service.new_change(
        db, target=add_target(db, target_db), script=script, author=people.olga
    )
    service.dry_run(db, change, people.olga)
    db.commit()
    sign(db, change, people.abe)
    target_db.run("INSERT INTO items (id, n, status) VALUES (5000, 5000, 'someone else')")
    service.request_apply(db, change, people.olga)
    db.commit()
    drain(db, factory)
    db.refresh(change)

    assert change.state == ChangeState.failed
    assert "statement 2 failed" in str(change.error) and "nothing was committed" in str(
        change.error
    )
    assert target_db.rows("SELECT count(*) FROM items WHERE status = 'closed'") == [(0,)]
    run = db.scalars(select(DbChangeRun).where(DbChangeRun.mode == "apply")).one()
    assert not run.ok and [s["rows"] for s in run.figures["statements"]] == [10, None]


def test_a_task_script_is_read_from_the_tasks_folder_and_nothing_outside_it(
    db: Session, people: Crew, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import clear_caches

    repo = tmp_path / "repo"
    task = repo / "tasks" / "20261207_close_items" / "close_items.sql"
    task.parent.mkdir(parents=True)
    task.write_text(SCRIPT)
    (tmp_path / "secret.sql").write_text("SELECT 1;")
    monkeypatch.setenv("DUTYDESK_DBCHANGE_TASKS_DIR", str(repo))
    clear_caches()
    assert service.read_task("tasks/20261207_close_items/close_items.sql") == (
        SCRIPT,
        "tasks/20261207_close_items/close_items.sql",
    )
    for bad in ("tasks/20261207_x/../../../secret.sql", "secret.sql", "tasks/x/y.sql"):
        with pytest.raises(service.DbChangeError):
            service.read_task(bad)
    with pytest.raises(service.DbChangeError) as missing:
        service.read_task("tasks/20261207_other/other.sql")
    assert missing.value.status == 404


def test_the_demo_has_a_script_dry_run_and_waiting_for_a_signoff_once(
    db: Session, people: Crew
) -> None:
    from dutydesk.registry import DemoContext
    from dutydesk.runbooks.dbchange.demo import seed_dbchange

    context = DemoContext(password="demo-password", made=[])
    seed_dbchange(db, context)
    seed_dbchange(db, context)
    (change,) = service.list_changes(db)
    assert change.state == ChangeState.pending and change.author.username == "olga"
    run = change.evidence["dry_run"]
    assert run["ok"] and [s["rows"] for s in run["statements"]] == [35, 7]
    assert len(context.made) == 1


def test_apply_needs_a_verified_backup_of_its_backup_target_and_takes_one_first(
    db: Session, factory: sessionmaker[Session], people: Crew, tmp_path: Path
) -> None:
    from dutydesk.backups import service as backups
    from dutydesk.backups.models import Backup

    target_db = TargetDb("sqlite", f"sqlite:///{tmp_path / 't.sqlite'}")
    target_db.make_items()
    backups.add_target(db, "items-backup", target_db.url, destination=str(tmp_path / "backups"))
    target = service.save_target(
        db, name="items-db", url=target_db.url, backup_target="items-backup"
    )
    change = service.new_change(db, target=target, script=SCRIPT, author=people.olga)
    service.dry_run(db, change, people.olga)
    db.commit()
    sign(db, change, people.abe)
    service.request_apply(db, change, people.olga)
    db.commit()
    assert drain(db, factory) == ["succeeded"]
    db.refresh(change)

    assert change.state == ChangeState.done, change.error
    assert change.result is not None
    backup = change.result["apply"]["backup"]
    assert backup["kind"] == "verified backup" and backup["target"] == "items-backup"
    taken = db.get(Backup, backup["backup_id"])
    assert taken is not None and taken.verified_at is not None
    assert target_db.rows("SELECT count(*) FROM items") == [(ITEMS - 10,)]


@pytest.mark.parametrize(
    "target_db",
    [
        "sqlite",
        pytest.param("postgresql", marks=TARGETS[1].marks),  # type: ignore[union-attr]
    ],
    indirect=True,
)
def test_a_statement_running_past_the_statement_timeout_is_stopped_and_named(
    db: Session, people: Crew, target_db: TargetDb
) -> None:
    target_db.make_items()
    slow = (
        "SELECT pg_sleep(5)"
        if target_db.backend == "postgresql"
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    )
    script = f"UPDATE items SET status = 'x' WHERE id = 1;\n{slow};\n"
    target = add_target(db, target_db, statement_timeout_ms=300)
    change = service.new_change(db, target=target, script=script, author=people.olga)
    figures = service.dry_run(db, change, people.olga)

    assert figures["statements"][1]["timeout"] == "statement"
    assert figures["error"].startswith("statement 2 ran longer than the statement timeout (300 ms)")
    assert figures["statements"][1]["duration_ms"] < 3000
    assert target_db.rows("SELECT status FROM items WHERE id = 1") == [("new",)]
