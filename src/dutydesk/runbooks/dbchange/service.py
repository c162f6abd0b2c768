"""Database changes: targets, scripts as change requests (kind `db_change`), dry runs as their
evidence, and the apply a signed request runs as its job.

The rules for who signs come from the change-request engine: by default one signoff from an
operator or anyone above (an approver, an admin) who is not the author, which is "one approver
or a second operator".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from dutydesk.db import before_commit, utcnow
from dutydesk.idents import as_id
from dutydesk.people.models import User
from dutydesk.runbooks import (
    ChangeKind,
    ChangeRefused,
    ChangeRequest,
    ChangeState,
    open_change,
    register_kind,
    revise_change,
    run_change,
    submit_change,
)
from dutydesk.runbooks.dbchange import _targets
from dutydesk.runbooks.dbchange._crypto import encrypt_password
from dutydesk.runbooks.dbchange._dryrun import run_script
from dutydesk.runbooks.dbchange._split import Statement, split_script
from dutydesk.runbooks.dbchange._targets import TargetError
from dutydesk.runbooks.dbchange.models import DbChangeRun, DbChangeTarget, RunMode
from dutydesk.settings import get_settings

KIND = "db_change"
DRY_RUN_JOB = "dbchange.dry_run"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# The team convention: tasks/YYYYDDMM_task_name/name_of_task.sql (any 8-digit date).
TASK_PATH = re.compile(r"^tasks/(\d{8})_([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)\.sql$")
MAX_SCRIPT_BYTES = 1_000_000
MAX_TIMEOUT_MS = 3_600_000
EDITABLE = (ChangeState.draft, ChangeState.pending, ChangeState.approved)


class DbChangeError(ValueError):
    """A database-change request that cannot be done; `status` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.status = status


class ApplyFailed(RuntimeError):
    """The apply rolled back (a statement failed, or no backup could be taken)."""


# --- targets ---------------------------------------------------------------------------------


def _check_timeout(value: int, name: str) -> int:
    if not 1 <= value <= MAX_TIMEOUT_MS:
        raise DbChangeError(f"{name} must be 1 to {MAX_TIMEOUT_MS} milliseconds")
    return value


def save_target(
    session: Session,
    *,
    name: str,
    url: str,
    read_user: str = "",
    read_password: str = "",
    write_user: str = "",
    write_password: str = "",
    statement_timeout_ms: int = 30_000,
    lock_timeout_ms: int = 5_000,
    backup_target: str = "",
    replace: bool = False,
    actor: str = "system",
) -> DbChangeTarget:
    """Register a target (or, with `replace`, change one). A user and password in the URL are
    the read-write login unless given separately; passwords are stored encrypted."""
    name = name.strip()
    if not NAME.match(name):
        raise DbChangeError(
            "a target name is 1 to 100 lowercase letters, digits, dots, dashes or underscores"
        )
    try:
        bare, url_user, url_password = _targets.clean_url(url)
    except ValueError as error:
        raise DbChangeError(str(error)) from None
    write_user = write_user.strip() or url_user
    write_password = write_password or url_password
    existing = session.scalar(select(DbChangeTarget).where(DbChangeTarget.name == name))
    if existing is not None and not replace:
        raise DbChangeError(f"a target named {name!r} exists already", 409)
    target = existing or DbChangeTarget(name=name, created_by=actor)
    target.url = bare
    target.read_user = read_user.strip()
    target.read_password = encrypt_password(read_password)
    target.write_user = write_user
    target.write_password = encrypt_password(write_password)
    target.statement_timeout_ms = _check_timeout(statement_timeout_ms, "the statement timeout")
    target.lock_timeout_ms = _check_timeout(lock_timeout_ms, "the lock timeout")
    target.backup_target = backup_target.strip()
    target.updated_at = utcnow()
    session.add(target)
    session.flush()
    return target


def list_targets(session: Session) -> list[DbChangeTarget]:
    """Every target by name."""
    return list(session.scalars(select(DbChangeTarget).order_by(DbChangeTarget.name)))


def get_target(session: Session, key: str | int) -> DbChangeTarget:
    """The target with this name or id; DbChangeError 404 when there is none."""
    text = str(key).strip()
    query = select(DbChangeTarget).where(DbChangeTarget.name == text)
    if (number := as_id(text)) is not None:
        query = select(DbChangeTarget).where(DbChangeTarget.id == number)
    target = session.scalar(query)
    if target is None:
        raise DbChangeError(f"no database change target {text!r}", 404)
    return target


def shown_url(target: DbChangeTarget) -> str:
    """The target's URL with the read-write user and a redacted password, for pages and API."""
    url = make_url(target.url)
    if target.write_user:
        url = url.set(username=target.write_user)
    if target.write_password:
        url = url.set(password="-")  # noqa: S106 - a stand-in, rendered as ***
    return url.render_as_string(hide_password=True)


def test_target(session: Session, target: DbChangeTarget) -> dict[str, Any]:
    """Connect with each login, read the server version, and try a write transaction that is
    rolled back; kept on the target as its last test."""
    outcome: dict[str, Any] = {"ok": True}
    for label, write in (("read", False), ("write", True)):
        try:
            connection = _targets.connect(
                _targets.login_for(target, write=write), read_only=not write
            )
        except (TargetError, ValueError) as error:
            outcome[label] = {"ok": False, "detail": str(error)}
            outcome["ok"] = False
            continue
        try:
            version = connection.version()
            connection.begin(
                statement_timeout_ms=target.statement_timeout_ms,
                lock_timeout_ms=target.lock_timeout_ms,
            )
            connection.rollback()
            outcome[label] = {"ok": True, "detail": version}
        except Exception as error:  # noqa: BLE001 - any driver error is the test's answer
            outcome[label] = {"ok": False, "detail": _targets.first_line(error, connection.login)}
            outcome["ok"] = False
        finally:
            connection.close()
    target.last_tested_at = utcnow()
    target.last_test = outcome
    session.flush()
    return outcome


# --- scripts ---------------------------------------------------------------------------------


def script_sha256(script: str) -> str:
    """SHA-256 (hex) of the script's exact text, UTF-8."""
    return hashlib.sha256(script.encode("utf-8")).hexdigest()


def check_script(script: str) -> str:
    """The script if it is text of a sane size with at least one statement."""
    if len(script.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise DbChangeError(f"a script may have at most {MAX_SCRIPT_BYTES} bytes")
    if not split_script(script):
        raise DbChangeError("the script has no SQL statements")
    return script


def read_task(path: str) -> tuple[str, str]:
    """The text of `tasks/<date>_<name>/<name>.sql` in DUTYDESK_DBCHANGE_TASKS_DIR, and the
    path as given; DbChangeError says what is wrong."""
    folder = get_settings().dbchange_tasks_dir
    if not folder:
        raise DbChangeError("no tasks folder is configured (DUTYDESK_DBCHANGE_TASKS_DIR)")
    path = path.strip().replace("\\", "/")
    if not TASK_PATH.match(path):
        raise DbChangeError(
            f"{path!r} is not a task script path: use tasks/<date>_<task_name>/<name>.sql"
        )
    root = Path(folder).resolve()
    file = (root / path).resolve()
    if root not in file.parents or not file.is_file():
        raise DbChangeError(f"no task script {path} in the tasks folder", 404)
    try:
        return file.read_text(encoding="utf-8"), path
    except UnicodeDecodeError:
        raise DbChangeError(f"{path} is not UTF-8 text") from None


def new_change(
    session: Session,
    *,
    target: DbChangeTarget,
    script: str,
    author: User,
    title: str = "",
    source: str = "pasted",
    tracker_url: str | None = None,
) -> ChangeRequest:
    """A draft change request holding the script's exact text, its SHA-256 and the target."""
    check_script(script)
    payload = {
        "target_id": target.id,
        "target": target.name,
        "script": script,
        "script_sha256": script_sha256(script),
        "source": source,
    }
    title = title.strip() or f"{source} on {target.name}"
    try:
        return open_change(
            session,
            kind=KIND,
            title=title,
            payload=payload,
            evidence={},
            author=author,
            tracker_url=tracker_url,
        )
    except ChangeRefused as error:
        raise DbChangeError(str(error), error.status) from None


def change_of(session: Session, change_id: int) -> ChangeRequest:
    """The db_change request with this id; DbChangeError 404 when there is none."""
    change = session.get(ChangeRequest, change_id)
    if change is None or change.kind != KIND:
        raise DbChangeError(f"no database change #{change_id}", 404)
    return change


def edit_script(session: Session, change: ChangeRequest, script: str, actor: User) -> None:
    """New script text: a new data_version without a dry run (every signoff is dropped)."""
    check_script(script)
    payload = dict(change.payload)
    payload.update(script=script, script_sha256=script_sha256(script), source="edited")
    try:
        revise_change(session, change, actor, payload=payload, evidence={})
    except ChangeRefused as error:
        raise DbChangeError(str(error), error.status) from None


def _record_run(
    session: Session, change: ChangeRequest, figures: dict[str, Any], actor: str
) -> DbChangeRun:
    run = DbChangeRun(
        change_id=change.id,
        mode=figures["mode"],
        script_sha256=change.payload["script_sha256"],
        target_id=change.payload.get("target_id"),
        ok=bool(figures["ok"]),
        actor=actor,
        started_at=dt.datetime.fromisoformat(figures["started_at"]),
        finished_at=utcnow(),
        figures=figures,
    )
    session.add(run)
    return run


@dataclass(frozen=True)
class DryRunPlan:
    """What a dry run needs, read in one short transaction so that none is held while the
    script runs on the target (a SQLite ops database has one write lock for everyone)."""

    change_id: int
    data_version: int
    target: DbChangeTarget  # a copy outside any session
    statements: list[Statement]


def prepare_dry_run(session: Session, change: ChangeRequest) -> DryRunPlan:
    """Check the change may have a dry run and copy what the run needs."""
    if ChangeState(change.state) not in EDITABLE:
        raise DbChangeError(f"change #{change.id} is {change.state}; it can no longer change", 409)
    target = get_target(session, change.payload["target_id"])
    columns = DbChangeTarget.__table__.columns.keys()
    copy = DbChangeTarget(**{name: getattr(target, name) for name in columns})
    return DryRunPlan(
        change_id=change.id,
        data_version=change.data_version,
        target=copy,
        statements=split_script(change.payload["script"]),
    )


def execute_dry_run(plan: DryRunPlan) -> dict[str, Any]:
    """Run the planned script on its target in a transaction that is rolled back."""
    return run_script(plan.target, plan.statements, RunMode.dry_run)


def record_dry_run(
    session: Session, change: ChangeRequest, actor: User, plan: DryRunPlan, figures: dict[str, Any]
) -> None:
    """Keep the dry run as a run and as the request's evidence (a new data_version: signoffs
    are dropped); a draft whose dry run succeeded is submitted for signoff."""
    if change.data_version != plan.data_version:
        raise DbChangeError(
            f"change #{change.id} was revised while its dry run ran; run the dry run again", 409
        )
    _record_run(session, change, figures, actor.username)
    evidence = {"script_sha256": change.payload["script_sha256"], "dry_run": figures}
    try:
        revise_change(session, change, actor, evidence=evidence)
        if figures["ok"] and change.state == ChangeState.draft:
            submit_change(session, change, actor)
    except ChangeRefused as error:
        raise DbChangeError(str(error), error.status) from None


def dry_run(session: Session, change: ChangeRequest, actor: User) -> dict[str, Any]:
    """Prepare, run and record a dry run in one go (the session's transaction stays open
    while the script runs: the job `dbchange.dry_run` and the command do it in three steps)."""
    plan = prepare_dry_run(session, change)
    figures = execute_dry_run(plan)
    record_dry_run(session, change, actor, plan, figures)
    return figures


def queue_dry_run(session: Session, change: ChangeRequest, actor: User) -> int:
    """Queue the job that runs a dry run of the change; its id."""
    from dutydesk.jobs.service import enqueue

    prepare_dry_run(session, change)  # refuses now what the job would refuse
    job = enqueue(
        session,
        DRY_RUN_JOB,
        {"change_id": change.id, "user_id": actor.id, "data_version": change.data_version},
        created_by=actor.username,
        max_attempts=1,
    )
    return job.id


def queued_dry_run(session: Session, change: ChangeRequest) -> int | None:
    """The id of a dry-run job of the change that is queued or running, if there is one."""
    from dutydesk.jobs.models import Job, JobState

    jobs = session.scalars(
        select(Job)
        .where(
            Job.kind == DRY_RUN_JOB,
            Job.state.in_([JobState.queued.value, JobState.running.value]),
        )
        .order_by(Job.id.desc())
        .limit(50)
    )
    return next((job.id for job in jobs if job.args.get("change_id") == change.id), None)


def _latest_dry_run_ok(change: ChangeRequest) -> None:
    """Refuse (409) unless the evidence is a successful dry run of the current script."""
    evidence = change.evidence or {}
    run = evidence.get("dry_run")
    if not run:
        raise DbChangeError(
            "the script has no dry run yet: run one, have it signed, then apply", 409
        )
    if evidence.get("script_sha256") != change.payload.get("script_sha256"):
        raise DbChangeError("the dry run is of another version of the script: run it again", 409)
    if not run.get("ok"):
        raise DbChangeError(f"the latest dry run failed ({run.get('error')}); fix the script", 409)


def request_apply(session: Session, change: ChangeRequest, actor: User) -> int:
    """Queue the apply job; refused unless the latest dry run succeeded and is signed off."""
    _latest_dry_run_ok(change)
    try:
        return run_change(session, change, actor)
    except ChangeRefused as error:
        raise DbChangeError(str(error), error.status) from None


def _backup_first(
    session: Session, target: DbChangeTarget, change: ChangeRequest
) -> dict[str, Any]:
    """A verified backup newer than DUTYDESK_DBCHANGE_BACKUP_MAX_AGE_HOURS of the target's
    backup target (taken and drilled now if there is none), else a plain dump of the target."""
    settings = get_settings()
    if target.backup_target:
        from dutydesk.backups import BackupFailed, ensure_verified_backup

        max_age = dt.timedelta(hours=settings.dbchange_backup_max_age_hours)
        try:
            backup = ensure_verified_backup(session, target.backup_target, max_age)
        except BackupFailed as error:
            raise ApplyFailed(f"no verified backup, so nothing ran: {error}") from None
        return {"kind": "verified backup", "backup_id": backup.id, "target": target.backup_target}
    folder = Path(settings.dbchange_dump_folder or settings.home_path / "dbchange-dumps")
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    try:
        path = _targets.dump(target, folder, f"{target.name}-change{change.id}-{stamp}")
    except TargetError as error:
        raise ApplyFailed(
            f"no dump of the target could be taken, so nothing ran: {error}"
        ) from None
    return {"kind": "dump", "path": str(path), "bytes": path.stat().st_size}


def execute_apply(session: Session, change: ChangeRequest) -> dict[str, Any]:
    """The run job's work: back the target up, then run the script in one transaction with
    the target's timeouts, committing only when every statement succeeded."""
    _latest_dry_run_ok(change)
    target = get_target(session, change.payload["target_id"])
    backup = _backup_first(session, target, change)
    statements = split_script(change.payload["script"])
    figures = run_script(target, statements, RunMode.apply)
    figures["backup"] = backup
    actor = str(session.info.get("actor", "run job"))
    if not figures["ok"]:
        # The engine rolls back what this function wrote when it raises: keep the figures of
        # the failed apply all the same, written as the job's transaction commits.
        def keep() -> None:
            _record_run(session, change, figures, actor)

        before_commit(session, keep)
        raise ApplyFailed(str(figures["error"]))
    _record_run(session, change, figures, actor)
    return {"apply": figures}


def runs(session: Session, change: ChangeRequest) -> list[DbChangeRun]:
    """Every dry run and apply of the change, newest first."""
    return list(
        session.scalars(
            select(DbChangeRun)
            .where(DbChangeRun.change_id == change.id)
            .order_by(DbChangeRun.id.desc())
        )
    )


def latest_apply(session: Session, change: ChangeRequest) -> DbChangeRun | None:
    """The latest apply of the change, if it ran."""
    return session.scalar(
        select(DbChangeRun)
        .where(DbChangeRun.change_id == change.id, DbChangeRun.mode == RunMode.apply.value)
        .order_by(DbChangeRun.id.desc())
        .limit(1)
    )


def list_changes(session: Session, *, limit: int = 100) -> list[ChangeRequest]:
    """Database changes, newest first."""
    return list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.kind == KIND)
            .order_by(ChangeRequest.id.desc())
            .limit(limit)
        )
    )


register_kind(
    ChangeKind(
        name=KIND,
        label="Database change",
        execute=execute_apply,
        detail_path=lambda change: f"/dbchanges/{change.id}",
        default_rules=(("operator", 1),),
    )
)
