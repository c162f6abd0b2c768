"""Tables for duty rotations, their members in order, and overrides."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow
from dutydesk.people.models import User


class Rotation(Base):
    """Who is on duty: members take turns, handing off on a weekday and time in a time zone."""

    __tablename__ = "rotations"
    __audited__ = True
    __audit_exclude__ = ("ical_token_hash",)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    handoff_weekday: Mapped[int] = mapped_column(default=0)
    handoff_time: Mapped[str] = mapped_column(String(5), default="09:00")
    shift_hours: Mapped[int] = mapped_column(default=168)
    # The first hand-off: member 0 starts here, member 1 one shift later, and so on.
    anchor_at: Mapped[dt.datetime]
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ical_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    lead: Mapped[User | None] = relationship(lazy="joined")
    members: Mapped[list[RotationMember]] = relationship(
        back_populates="rotation",
        order_by="RotationMember.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    overrides: Mapped[list[DutyOverride]] = relationship(
        back_populates="rotation",
        order_by="DutyOverride.starts_at",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class RotationMember(Base):
    """One place in a rotation's order."""

    __tablename__ = "rotation_members"
    __table_args__ = (UniqueConstraint("rotation_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rotation_id: Mapped[int] = mapped_column(ForeignKey("rotations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    position: Mapped[int]

    rotation: Mapped[Rotation] = relationship(back_populates="members")
    user: Mapped[User] = relationship(lazy="joined")


class DutyOverride(Base):
    """Someone stands in for the rotation from `starts_at` until `ends_at`, for a reason."""

    __tablename__ = "duty_overrides"
    __audited__ = True
    __table_args__ = (Index("ix_duty_overrides_rotation_starts", "rotation_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rotation_id: Mapped[int] = mapped_column(ForeignKey("rotations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    rotation: Mapped[Rotation] = relationship(back_populates="overrides")
    user: Mapped[User] = relationship(lazy="joined")
