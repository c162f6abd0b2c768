"""Continuous SQLite replication: which targets Litestream replicates, the `backupd` process
that runs it, and the drill of a replica (restore the newest change and one 10 minutes ago)."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.backups import _litestream, _sqlite
from dutydesk.backups.models import BackupTarget, DrillState, RestoreDrill, TargetKind
from dutydesk.db import utcnow
from dutydesk.settings import Settings

log = logging.getLogger(__name__)
# The drill also restores the replica as it stood this long ago (when it reaches back so far).
POINT_IN_TIME_AGE = dt.timedelta(minutes=10)


def replicated(target: BackupTarget) -> _litestream.Replicated:
    """The Litestream view of a SQLite target."""
    return _litestream.Replicated(_sqlite.path_of(target.source_url), target.destination)


def continuous_targets(session: Session, settings: Settings) -> list[BackupTarget]:
    """The enabled SQLite targets to replicate; with DUTYDESK_BACKUP_LITESTREAM the ops database
    is one of them when it is SQLite."""
    from dutydesk.backups import service

    service.ensure_builtin_targets(session)
    targets = []
    for target in service.list_targets(session):
        if target.name == service.OPS_TARGET and settings.backup_litestream:
            target.continuous = target.kind == TargetKind.sqlite.value
        if target.enabled and target.continuous and target.kind == TargetKind.sqlite.value:
            targets.append(target)
    return targets


def run_backupd(settings: Settings) -> int:
    """Write the Litestream config for the continuous targets and supervise `litestream
    replicate` until stopped (with none, wait idle so `up` keeps running)."""
    from dutydesk.db import retry_when_locked, transaction

    def read_targets() -> list[_litestream.Replicated]:
        # Reads then writes (the built-in targets): hold SQLite's write lock from the start.
        with transaction(immediate=True) as session:
            return [replicated(t) for t in continuous_targets(session, settings)]

    databases = retry_when_locked(read_targets, what="reading the backup targets")
    if not databases:
        log.warning("no continuous backup targets; backupd waits (set DUTYDESK_BACKUP_LITESTREAM)")
        _wait_for_stop()
        return 0
    config = _litestream.write_config(databases, settings.ensure_home() / "litestream.yml")
    for db in databases:
        log.info("replicating %s to %s", db.path, db.destination)
    return _litestream.Replicator(config).run()


def _wait_for_stop() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    while not stop.wait(0.5):
        pass


def drill_replica(target: BackupTarget, folder: Path) -> RestoreDrill:
    """Restore the replica's newest change and, when it reaches back that far, its state 10
    minutes ago into scratch files; check integrity and the schema revision; RPO is the age
    of the newest replicated change, RTO the time the newest restore took."""
    db = replicated(target)
    started = utcnow()
    checks: dict[str, Any] = {"method": "litestream"}
    error = None
    rto = rpo = None
    restored_to = None
    try:
        newest = _litestream.newest_change(db)
        if newest is None:
            raise _litestream.LitestreamFailed("the replica holds no changes yet")
        rpo = max((started - newest).total_seconds(), 0.0)
        clock = time.perf_counter()
        latest = folder / "latest.sqlite"
        checks["txid"] = _litestream.restore(db, latest)
        rto = time.perf_counter() - clock
        checks["integrity_check"] = _sqlite.integrity(latest)
        if checks["integrity_check"] != "ok":
            raise _litestream.LitestreamFailed(f"integrity_check: {checks['integrity_check']}")
        found = _sqlite.describe(latest)
        checks["schema_revision"] = found["schema_revision"]
        checks["rows"] = sum(found["table_counts"].values())
        if db.path.exists():
            live = _sqlite.describe(db.path)["schema_revision"]
            if live != found["schema_revision"]:
                raise _litestream.LitestreamFailed(
                    f"schema revision {found['schema_revision']} restored, {live} live"
                )
        earlier = started - POINT_IN_TIME_AGE
        point = folder / "earlier.sqlite"
        try:
            _litestream.restore(db, point, earlier)
        except _litestream.LitestreamFailed as missing:
            checks["point_in_time"] = f"not restorable 10 minutes back: {missing}"
        else:
            restored_to = earlier
            checks["point_in_time"] = _sqlite.integrity(point)
            if checks["point_in_time"] != "ok":
                raise _litestream.LitestreamFailed(
                    f"integrity_check 10 minutes back: {checks['point_in_time']}"
                )
    except (_litestream.LitestreamFailed, OSError) as failure:
        error = str(failure)
    return RestoreDrill(
        target_id=target.id,
        state=DrillState.failed.value if error else DrillState.passed.value,
        started_at=started,
        finished_at=utcnow(),
        restored_to=restored_to,
        rpo_seconds=None if rpo is None else round(rpo, 3),
        rto_seconds=None if rto is None else round(rto, 3),
        checks=checks,
        error=error,
    )
