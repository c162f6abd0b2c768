"""Backups: targets, taking a backup, the restore drill, retention, the freshness gate.

Functions take a session and never commit; the job, request or command owns the transaction.
Taking and restoring happen before any row is written, so a long backup of the ops database
does not hold its write lock.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from dutydesk.backups import _postgres, _sqlite, _store
from dutydesk.backups.models import (
    Backup,
    BackupState,
    BackupTarget,
    DrillState,
    Method,
    RestoreDrill,
    TargetKind,
    Verification,
)
from dutydesk.db import redacted, utcnow
from dutydesk.settings import get_settings

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
OPS_TARGET = "ops"
RECORDS_TARGET = "records"


class BackupFailed(Exception):
    """No verified backup could be had; the message says why, readably."""


class BackupInputError(ValueError):
    """A target or request that makes no sense; the message names what is wrong."""


# --- targets -----------------------------------------------------------------------------


def kind_of(url: str) -> TargetKind:
    """The target kind of a database URL (`sqlite:///PATH` or `postgresql...://`)."""
    if any(ord(character) < 32 for character in url):
        raise BackupInputError("the database URL holds control characters")
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        parsed.port  # noqa: B018 - a port that is not a number fails here, not later
    except (ArgumentError, ValueError):
        raise BackupInputError(f"{url[:200]!r} is not a database URL") from None
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise BackupInputError("a SQLite target needs a file: sqlite:///PATH")
        return TargetKind.sqlite
    if backend == "postgresql":
        return TargetKind.postgresql
    raise BackupInputError(f"cannot back up {backend} databases; give sqlite:/// or postgresql://")


def add_target(
    session: Session,
    name: str,
    source_url: str,
    *,
    destination: str = "",
    every_minutes: int = 24 * 60,
    drill_every_minutes: int = 24 * 60,
    max_age_minutes: int = 26 * 60,
    keep: tuple[int, int, int] = (24, 7, 4),
    continuous: bool = False,
) -> BackupTarget:
    """Register a database to back up; its backups go to `destination` (default: a folder of
    the target's name under `DUTYDESK_BACKUP_FOLDER`)."""
    if not NAME.match(name):
        raise BackupInputError(
            f"target name {name!r}: use lower-case letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    kind = kind_of(source_url)
    if any(ord(character) < 32 for character in destination):
        raise BackupInputError("the destination holds control characters")
    if continuous and kind is not TargetKind.sqlite:
        raise BackupInputError("continuous replication (Litestream) is for SQLite targets only")
    for label, value in (
        ("every_minutes", every_minutes),
        ("drill_every_minutes", drill_every_minutes),
        ("max_age_minutes", max_age_minutes),
    ):
        if value < 1:
            raise BackupInputError(f"{label} must be at least 1")
    if min(keep) < 0 or sum(keep) < 1:
        raise BackupInputError("retention keeps at least one backup (hourly, daily, weekly)")
    if session.scalar(select(BackupTarget.id).where(BackupTarget.name == name)) is not None:
        raise BackupInputError(f"a backup target named {name!r} exists already")
    target = BackupTarget(
        name=name,
        kind=kind.value,
        source_url=source_url,
        destination=destination or _store.join(get_settings().effective_backup_folder, name),
        every_minutes=every_minutes,
        drill_every_minutes=drill_every_minutes,
        max_age_minutes=max_age_minutes,
        keep_hourly=keep[0],
        keep_daily=keep[1],
        keep_weekly=keep[2],
        continuous=continuous,
        enabled=True,
    )
    session.add(target)
    session.flush()
    return target


def ensure_builtin_targets(session: Session) -> list[BackupTarget]:
    """The desk's own ops database and record store as targets (made on first need)."""
    settings = get_settings()
    made = []
    for name, url in (
        (OPS_TARGET, settings.effective_database_url),
        (RECORDS_TARGET, settings.effective_records_url),
    ):
        target = session.scalar(select(BackupTarget).where(BackupTarget.name == name))
        if target is None:
            continuous = settings.backup_litestream and url.startswith("sqlite")
            target = add_target(session, name, url, continuous=continuous)
        made.append(target)
    return made


def list_targets(session: Session) -> list[BackupTarget]:
    """Every target, by name."""
    return list(session.scalars(select(BackupTarget).order_by(BackupTarget.name)))


def find_target(session: Session, target: str) -> BackupTarget:
    """A target by name, or by its database URL (a URL no target has is registered now);
    the built-in `ops` and `records` are made on first use."""
    if target in (OPS_TARGET, RECORDS_TARGET):
        ensure_builtin_targets(session)
    found = session.scalar(select(BackupTarget).where(BackupTarget.name == target))
    if found is not None:
        return found
    if "://" in target:
        for candidate in list_targets(session):
            if candidate.source_url == target:
                return candidate
        kind = kind_of(target)
        database = make_url(target).database or "db"
        base = re.sub(r"[^a-z0-9_.-]+", "-", Path(database).stem.lower()).strip("-.") or "db"
        name = f"{kind.value}-{base}"[:90]
        taken = {t.name for t in list_targets(session)}
        suffix = 2
        unique = name
        while unique in taken:
            unique, suffix = f"{name}-{suffix}", suffix + 1
        return add_target(session, unique, target)
    known = ", ".join(t.name for t in list_targets(session)) or "none"
    raise BackupInputError(f"no backup target named {target!r}; known targets: {known}")


def shown_url(target: BackupTarget) -> str:
    """The target's source URL with any password hidden."""
    return redacted(target.source_url)


# --- taking a backup ---------------------------------------------------------------------


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder in the home for backups and restores on their way."""
    root = get_settings().ensure_home() / "scratch"
    root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="backup-") as folder:
        yield Path(folder)


def take_backup(session: Session, target: BackupTarget) -> Backup:
    """Take a backup of the target now and store it; the row says `succeeded` or, with the
    reason, `failed` (nothing is raised for a failed backup)."""
    backup = produce_backup(target)
    session.add(backup)
    session.flush()
    return backup


def produce_backup(target: BackupTarget) -> Backup:
    """Take and store a backup, writing nothing to the ops database: the unsaved row."""
    started = utcnow()
    method = Method.snapshot if target.kind == TargetKind.sqlite.value else Method.pg_dump
    stamp = started.strftime("%Y%m%dT%H%M%S.%fZ")
    values: dict[str, Any] = {}
    try:
        with scratch() as folder:
            if method is Method.snapshot:
                raw = folder / "snapshot.sqlite"
                _sqlite.snapshot(_sqlite.path_of(target.source_url), raw)
                values.update(_sqlite.describe(raw))
                stored = folder / "snapshot.sqlite.zst"
                _store.compress(raw, stored)
                file_name = f"{target.name}-{stamp}.sqlite.zst"
            else:
                stored = folder / "dump.pgdump"
                values.update(_postgres.dump(target.source_url, stored))
                file_name = f"{target.name}-{stamp}.pgdump"
            location = _store.join(target.destination, file_name)
            values["sha256"] = _store.sha256_of(stored)
            values["size_bytes"] = stored.stat().st_size
            _store.put(stored, location)
            values["location"] = location
    except (OSError, _postgres.ToolFailed, ValueError, RuntimeError) as error:
        backup = Backup(
            target_id=target.id,
            method=method.value,
            state=BackupState.failed.value,
            started_at=started,
            finished_at=utcnow(),
            error=_reason(error),
        )
    else:
        backup = Backup(
            target_id=target.id,
            method=method.value,
            state=BackupState.succeeded.value,
            started_at=started,
            finished_at=utcnow(),
            **values,
        )
    return backup


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500] if "\n" in text else text[:500]


# --- the drill ---------------------------------------------------------------------------


def _compare(expected: Backup, found: dict[str, Any]) -> list[str]:
    """What differs between what the backup recorded and what the restore holds."""
    problems = []
    if expected.schema_revision != found["schema_revision"]:
        problems.append(
            f"schema revision {found['schema_revision']} restored, "
            f"{expected.schema_revision} backed up"
        )
    for table, count in sorted(expected.table_counts.items()):
        restored = found["table_counts"].get(table)
        if restored != count:
            problems.append(f"table {table}: {restored} rows restored, {count} backed up")
    for table, checksum in sorted(expected.row_checksums.items()):
        if found["row_checksums"].get(table) != checksum:
            problems.append(f"table {table}: sampled rows differ from the backup")
    return problems


def _restore_and_check(
    backup: Backup, target: BackupTarget, folder: Path, checks: dict[str, Any]
) -> None:
    """Fetch, checksum, restore into scratch space and check, noting each check in `checks`.
    Raises BackupFailed at the first check that fails."""
    if backup.location is None or backup.sha256 is None:
        raise BackupFailed(f"backup {backup.id} was never stored ({backup.error or 'failed'})")
    fetched = folder / "fetched"
    try:
        _store.fetch(backup.location, fetched)
    except (OSError, ValueError) as error:
        raise BackupFailed(f"cannot read {backup.location}: {_reason(error)}") from None
    checksum = _store.sha256_of(fetched)
    checks["sha256"] = "ok" if checksum == backup.sha256 else f"mismatch: {checksum}"
    if checksum != backup.sha256:
        raise BackupFailed(
            f"checksum mismatch: {backup.location} has SHA-256 {checksum[:16]}..., "
            f"recorded {backup.sha256[:16]}... (the file changed or is corrupt)"
        )
    if backup.method == Method.snapshot.value:
        import zstandard

        restored = folder / "restored.sqlite"
        try:
            _store.decompress(fetched, restored)
        except (zstandard.ZstdError, OSError) as error:
            raise BackupFailed(f"cannot decompress the snapshot: {_reason(error)}") from None
        checks["integrity_check"] = _sqlite.integrity(restored)
        if checks["integrity_check"] != "ok":
            raise BackupFailed(f"integrity_check: {checks['integrity_check']}")
        found = _sqlite.describe(restored)
    else:
        server = get_settings().backup_scratch_postgres_url or target.source_url
        try:
            with _postgres.scratch_database(server) as url:
                _postgres.restore(fetched, url)
                checks["pg_amcheck"] = _postgres.amcheck(url)
                if not checks["pg_amcheck"].startswith(("ok", "skipped")):
                    raise BackupFailed(f"pg_amcheck: {checks['pg_amcheck']}")
                found = _postgres.describe(url)
        except _postgres.ToolFailed as error:
            raise BackupFailed(f"restore failed: {error}") from None
    checks["schema_revision"] = found["schema_revision"]
    checks["tables"] = len(found["table_counts"])
    checks["rows"] = sum(found["table_counts"].values())
    problems = _compare(backup, found)
    if problems:
        checks["problems"] = problems
        raise BackupFailed("; ".join(problems[:5]))


def verify_backup(session: Session, backup: Backup) -> RestoreDrill:
    """The drill: restore the backup into scratch space, check it, record RPO and RTO, mark
    the backup verified or failed, and raise or resolve the target's drill alarm."""
    target = session.get(BackupTarget, backup.target_id)
    assert target is not None
    return record_drill(session, target, backup, run_drill(target, backup))


def run_drill(target: BackupTarget, backup: Backup) -> RestoreDrill:
    """Restore and check the backup, writing nothing to the ops database: the unsaved drill."""
    started = utcnow()
    clock = time.perf_counter()
    checks: dict[str, Any] = {}
    error: str | None = None
    with scratch() as folder:
        try:
            _restore_and_check(backup, target, folder, checks)
        except BackupFailed as failure:
            error = str(failure)
    rto = time.perf_counter() - clock
    finished = utcnow()
    drill = RestoreDrill(
        target_id=target.id,
        backup_id=backup.id,
        state=DrillState.failed.value if error else DrillState.passed.value,
        started_at=started,
        finished_at=finished,
        rpo_seconds=(started - backup.started_at).total_seconds(),
        rto_seconds=round(rto, 3),
        checks=checks,
        error=error,
    )
    return drill


def record_drill(
    session: Session, target: BackupTarget, backup: Backup | None, drill: RestoreDrill
) -> RestoreDrill:
    """Save a drill, mark its backup verified or failed, raise or resolve the drill alarm."""
    session.add(drill)
    if backup is not None:
        failed = drill.state == DrillState.failed.value
        backup.verification = (Verification.failed if failed else Verification.verified).value
        backup.verified_at = drill.finished_at
    session.flush()
    from dutydesk.backups import alarms

    alarms.drill_outcome(session, target, drill)
    return drill


def newest_backup(session: Session, target: BackupTarget) -> Backup | None:
    """The target's newest stored backup."""
    return session.scalar(
        select(Backup)
        .where(Backup.target_id == target.id, Backup.state == BackupState.succeeded.value)
        .order_by(Backup.started_at.desc(), Backup.id.desc())
        .limit(1)
    )


def drill(session: Session, target: BackupTarget) -> RestoreDrill:
    """Restore-test the target's newest backup (a failed drill when there is none)."""
    backup = newest_backup(session, target)
    return record_drill(session, target, backup, drill_of(target, backup))


def drill_of(target: BackupTarget, backup: Backup | None) -> RestoreDrill:
    """`run_drill` of the backup; a failed drill when there is no backup."""
    if backup is not None:
        return run_drill(target, backup)
    return RestoreDrill(
        target_id=target.id,
        state=DrillState.failed.value,
        started_at=utcnow(),
        finished_at=utcnow(),
        checks={},
        error=f"no backup to restore: run `dutydesk backup run {target.name}` first",
    )


# --- the gate ----------------------------------------------------------------------------


def verified_backup_within(session: Session, target: str, max_age: dt.timedelta) -> Backup | None:
    """The newest backup of the target that a drill verified and that is newer than `max_age`,
    or None."""
    try:
        found = find_target(session, target)
    except BackupInputError:
        return None
    return _verified_since(session, found, utcnow() - max_age)


def _verified_since(session: Session, target: BackupTarget, since: dt.datetime) -> Backup | None:
    return session.scalar(
        select(Backup)
        .where(
            Backup.target_id == target.id,
            Backup.verification == Verification.verified.value,
            Backup.started_at >= since,
        )
        .order_by(Backup.started_at.desc(), Backup.id.desc())
        .limit(1)
    )


def ensure_verified_backup(session: Session, target: str, max_age: dt.timedelta) -> Backup:
    """A verified backup of the target newer than `max_age`: the one there is, or one taken
    and drilled now. Raises BackupFailed saying why when that cannot be had."""
    try:
        found = find_target(session, target)
    except BackupInputError as error:
        raise BackupFailed(str(error)) from None
    existing = _verified_since(session, found, utcnow() - max_age)
    if existing is not None:
        return existing
    backup = take_backup(session, found)
    if backup.state != BackupState.succeeded.value:
        raise BackupFailed(f"backup of {found.name} failed: {backup.error}")
    checked = verify_backup(session, backup)
    if checked.state != DrillState.passed.value:
        raise BackupFailed(f"backup of {found.name} failed its restore drill: {checked.error}")
    return backup


# --- retention ---------------------------------------------------------------------------


def _kept(backups: list[Backup], target: BackupTarget) -> set[int]:
    """Ids kept by the hourly, daily and weekly counts: the newest backup of each of the
    newest N hours, days and ISO weeks that have one."""
    kept: set[int] = set()
    for count, bucket in (
        (target.keep_hourly, lambda at: at.strftime("%Y%m%d%H")),
        (target.keep_daily, lambda at: at.strftime("%Y%m%d")),
        (target.keep_weekly, lambda at: f"{at.isocalendar()[0]}-{at.isocalendar()[1]:02d}"),
    ):
        seen: set[str] = set()
        for backup in backups:  # newest first
            key = bucket(backup.started_at)
            if key in seen or len(seen) >= count:
                continue
            seen.add(key)
            kept.add(backup.id)
    return kept


def prune(session: Session, target: BackupTarget) -> list[Backup]:
    """Delete the stored files and rows of backups the retention no longer keeps (failed
    backups after a day); returns the deleted ones."""
    backups = list(
        session.scalars(
            select(Backup)
            .where(Backup.target_id == target.id)
            .order_by(Backup.started_at.desc(), Backup.id.desc())
        )
    )
    stored = [b for b in backups if b.state == BackupState.succeeded.value]
    keep = _kept(stored, target)
    day_ago = utcnow() - dt.timedelta(days=1)
    gone = [
        b
        for b in backups
        if (b.state == BackupState.succeeded.value and b.id not in keep)
        or (b.state == BackupState.failed.value and b.started_at < day_ago)
    ]
    for backup in gone:
        if backup.location:
            _store.remove(backup.location)
        session.delete(backup)
    session.flush()
    return gone


# --- reading -----------------------------------------------------------------------------


def list_backups(
    session: Session, target: BackupTarget | None = None, limit: int = 100
) -> list[Backup]:
    """Backups, newest first."""
    statement = select(Backup).order_by(Backup.started_at.desc(), Backup.id.desc())
    if target is not None:
        statement = statement.where(Backup.target_id == target.id)
    return list(session.scalars(statement.limit(limit)))


def list_drills(
    session: Session, target: BackupTarget | None = None, limit: int = 100
) -> list[RestoreDrill]:
    """Restore drills, newest first."""
    statement = select(RestoreDrill).order_by(
        RestoreDrill.started_at.desc(), RestoreDrill.id.desc()
    )
    if target is not None:
        statement = statement.where(RestoreDrill.target_id == target.id)
    return list(session.scalars(statement.limit(limit)))


def newest_drill(session: Session, target: BackupTarget) -> RestoreDrill | None:
    """The target's newest drill."""
    drills = list_drills(session, target, limit=1)
    return drills[0] if drills else None


def is_fresh(session: Session, target: BackupTarget, at: dt.datetime | None = None) -> bool:
    """Whether the target has a verified backup within its maximum age."""
    since = (at or utcnow()) - dt.timedelta(minutes=target.max_age_minutes)
    return _verified_since(session, target, since) is not None


def is_stale(session: Session, target: BackupTarget, at: dt.datetime | None = None) -> bool:
    """Whether the target lacks a verified backup within its maximum age although it has been
    a target that long (a target added an hour ago is not stale yet with a day's maximum)."""
    at = at or utcnow()
    old_enough = target.created_at <= at - dt.timedelta(minutes=target.max_age_minutes)
    return old_enough and not is_fresh(session, target, at)


def due_times(
    session: Session, target: BackupTarget
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """When the next backup and the next drill are due (None: now, nothing yet)."""
    newest = session.scalar(
        select(Backup.started_at)
        .where(Backup.target_id == target.id)
        .order_by(Backup.started_at.desc())
        .limit(1)
    )
    drilled = session.scalar(
        select(RestoreDrill.started_at)
        .where(RestoreDrill.target_id == target.id)
        .order_by(RestoreDrill.started_at.desc())
        .limit(1)
    )
    return (
        newest + dt.timedelta(minutes=target.every_minutes) if newest else None,
        drilled + dt.timedelta(minutes=target.drill_every_minutes) if drilled else None,
    )


def status_of(session: Session, target: BackupTarget) -> dict[str, Any]:
    """What the Backups page and the overview show of one target; `red` when it has no fresh
    verified backup or its newest drill failed."""
    drill = newest_drill(session, target)
    fresh = is_fresh(session, target)
    backup_due, drill_due = due_times(session, target)
    failed_drill = drill is not None and drill.state == DrillState.failed.value
    stale = is_stale(session, target)
    return {
        "target": target,
        "source": shown_url(target),
        "newest": newest_backup(session, target),
        "drill": drill,
        "fresh": fresh,
        "stale": stale,
        "red": failed_drill or stale,
        "next_backup_due": backup_due,
        "next_drill_due": drill_due,
    }
