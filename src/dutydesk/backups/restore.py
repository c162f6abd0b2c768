"""Restoring for real: a backup (or a Litestream replica, to a moment) into a new file or
database, and over a live one only when told to replace it."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.backups import _litestream, _postgres, _sqlite, _store
from dutydesk.backups.models import Backup, BackupState, BackupTarget, Method, TargetKind
from dutydesk.backups.service import BackupFailed, BackupInputError, scratch


def backup_for(session: Session, target: BackupTarget, at: dt.datetime | None) -> Backup:
    """The newest stored backup taken at or before `at` (or the newest of all)."""
    statement = select(Backup).where(
        Backup.target_id == target.id, Backup.state == BackupState.succeeded.value
    )
    if at is not None:
        statement = statement.where(Backup.started_at <= at)
    backup = session.scalar(statement.order_by(Backup.started_at.desc(), Backup.id.desc()))
    if backup is None:
        when = f" taken before {at.isoformat()}" if at else ""
        raise BackupFailed(f"{target.name} has no stored backup{when}")
    return backup


def restore_target(
    session: Session,
    target: BackupTarget,
    *,
    to: str | None = None,
    at: dt.datetime | None = None,
    replace: bool = False,
) -> str:
    """Restore the target into `to` (a file or database URL; default: the target's own
    database, which needs `replace`). A continuous SQLite target restores from its Litestream
    replica (to the moment `at`, or its newest change); others from the newest backup taken at
    or before `at`. Returns what was restored, in one line."""
    if target.kind == TargetKind.sqlite.value:
        return _restore_sqlite(session, target, to, at, replace)
    return _restore_postgres(session, target, to, at, replace)


def _restore_sqlite(
    session: Session,
    target: BackupTarget,
    to: str | None,
    at: dt.datetime | None,
    replace: bool,
) -> str:
    source = _sqlite.path_of(target.source_url).resolve()
    destination = _sqlite.path_of(to).resolve() if to else source
    if destination == source and not replace:
        raise BackupInputError(
            f"restoring over the live database {source} needs --replace (stop the desk first)"
        )
    if destination.exists() and not replace:
        raise BackupInputError(f"{destination} exists; choose a new path or give --replace")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with scratch() as folder:
        restored = folder / "restored.sqlite"
        if target.continuous:
            from dutydesk.backups.continuous import replicated

            try:
                txid = _litestream.restore(replicated(target), restored, at)
            except _litestream.LitestreamFailed as error:
                raise BackupFailed(str(error)) from None
            what = f"Litestream replica of {target.name} at {at.isoformat() if at else 'newest'}"
            what += f" (transaction {txid})"
        else:
            backup = backup_for(session, target, at)
            assert backup.location is not None and backup.sha256 is not None
            fetched = folder / "fetched"
            _store.fetch(backup.location, fetched)
            if _store.sha256_of(fetched) != backup.sha256:
                raise BackupFailed(f"backup {backup.id} fails its checksum: not restored")
            _store.decompress(fetched, restored)
            what = (
                f"backup {backup.id} of {target.name} taken {backup.started_at:%Y-%m-%d %H:%M:%S}"
            )
        problem = _sqlite.integrity(restored)
        if problem != "ok":
            raise BackupFailed(f"the restored file fails integrity_check: {problem}; not restored")
        # Same folder first, then one rename: the destination is never half written.
        staged = destination.with_name(destination.name + ".restoring")
        staged.write_bytes(restored.read_bytes())
        for suffix in ("-wal", "-shm"):
            Path(str(destination) + suffix).unlink(missing_ok=True)
        os.replace(staged, destination)
    return f"restored {what} into {destination}"


def _restore_postgres(
    session: Session,
    target: BackupTarget,
    to: str | None,
    at: dt.datetime | None,
    replace: bool,
) -> str:
    destination = to or target.source_url
    if destination == target.source_url and not replace:
        raise BackupInputError(
            "restoring over the live database needs --replace; or give --to URL of an empty one"
        )
    backup = backup_for(session, target, at)
    if backup.method != Method.pg_dump.value or backup.location is None:
        raise BackupFailed(f"backup {backup.id} is not a pg_dump")
    with scratch() as folder:
        fetched = folder / "dump.pgdump"
        _store.fetch(backup.location, fetched)
        if _store.sha256_of(fetched) != backup.sha256:
            raise BackupFailed(f"backup {backup.id} fails its checksum: not restored")
        uri, env = _postgres.libpq(destination)
        args = [_postgres.program("pg_restore"), "--no-owner", "--exit-on-error"]
        if replace:
            args += ["--clean", "--if-exists"]
        try:
            _postgres.run([*args, "-d", uri, str(fetched)], env)
        except _postgres.ToolFailed as error:
            raise BackupFailed(str(error)) from None
    from dutydesk.db import redacted

    return (
        f"restored backup {backup.id} of {target.name} taken "
        f"{backup.started_at:%Y-%m-%d %H:%M:%S} into {redacted(destination)}"
    )
