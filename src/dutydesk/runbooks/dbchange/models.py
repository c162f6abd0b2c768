"""Tables of database changes: the target databases, and every dry run and apply of a script.

A script itself is a change request (kind `db_change`): its payload holds the exact text, its
SHA-256 and the target; its evidence is the latest dry run; its result is the apply.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class RunMode(enum.StrEnum):
    """What a run of a script did.

    dry_run: ran in one transaction that was always rolled back (the evidence signers see).
    apply: ran in one transaction that was committed, or rolled back at the first error.
    """

    dry_run = "dry_run"
    apply = "apply"


class DbChangeTarget(Base):
    """A database scripts run against, with a read-only and a read-write login.

    `url` never holds a user or password; the passwords are Fernet-encrypted (see `_crypto`).
    """

    __tablename__ = "db_change_targets"
    __audited__ = True
    __audit_exclude__ = ("read_password", "write_password")
    __audit_quiet__ = ("last_tested_at", "last_test", "updated_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(1000))
    read_user: Mapped[str] = mapped_column(String(200), default="")
    read_password: Mapped[str] = mapped_column(Text, default="")
    write_user: Mapped[str] = mapped_column(String(200), default="")
    write_password: Mapped[str] = mapped_column(Text, default="")
    statement_timeout_ms: Mapped[int] = mapped_column(default=30_000)
    lock_timeout_ms: Mapped[int] = mapped_column(default=5_000)
    # The backups domain's target whose verified backup apply needs; empty: a plain dump.
    backup_target: Mapped[str] = mapped_column(String(100), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_tested_at: Mapped[dt.datetime | None]
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    @property
    def backend(self) -> str:
        """postgresql, sqlite or mysql."""
        scheme = self.url.split(":", 1)[0].split("+", 1)[0]
        return "mysql" if scheme in ("mysql", "mariadb") else scheme


class DbChangeRun(Base):
    """One dry run or apply of a change's script, with its per-statement figures."""

    __tablename__ = "db_change_runs"
    __table_args__ = (Index("ix_db_change_runs_change_id_id", "change_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    script_sha256: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[int | None] = mapped_column(
        ForeignKey("db_change_targets.id", ondelete="SET NULL")
    )
    ok: Mapped[bool] = mapped_column(default=False)
    actor: Mapped[str] = mapped_column(String(200), default="system")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
