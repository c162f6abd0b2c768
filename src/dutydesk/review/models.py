"""A review mark (who met, what they noted) and its action items, each of which is a ticket."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dutydesk.db import Base, utcnow


class ReviewMark(Base):
    """A review held: the period it covered, who attended, notes; the next one starts here."""

    __tablename__ = "review_marks"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    marked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    marked_by: Mapped[str] = mapped_column(String(200))
    attendees: Mapped[list[Any]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(Text, default="")

    actions: Mapped[list[ReviewAction]] = relationship(
        back_populates="review", cascade="all, delete-orphan", order_by="ReviewAction.id"
    )


class ReviewAction(Base):
    """One action item of a review and the ticket that carries it."""

    __tablename__ = "review_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("review_marks.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(300))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))

    review: Mapped[ReviewMark] = relationship(back_populates="actions")
