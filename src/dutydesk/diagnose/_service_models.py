"""Tables of the services to diagnose and the diagnoses run on them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dutydesk.db import Base, utcnow


class DiagnoseService(Base):
    """A service the debug checklist runs on: its sources (hosts' series labels, databases, log
    sources, exception projects, CI pipelines, Supervisor processes) and its checklist lines.
    Database passwords live encrypted in `db_passwords` (by database name), never in `config`."""

    __tablename__ = "diagnose_services"
    __audited__ = True
    __audit_exclude__ = ("db_passwords",)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    db_passwords: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Diagnosis(Base):
    """One run of a service's checklist: each line's verdict and evidence, and the ticket it was
    run for (if any)."""

    __tablename__ = "diagnoses"
    __table_args__ = (Index("ix_diagnoses_service_id_at", "service_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("diagnose_services.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lines: Mapped[list[Any]] = mapped_column(default=list)
