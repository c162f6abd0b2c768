"""Rotations: whose turn it is, overrides in force, the lead told, bad input refused whole."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.duty import service as duty
from dutydesk.duty.models import DutyOverride, Rotation
from dutydesk.notify.models import Delivery
from tests.duty.conftest import T0, Team
from tests.tickets.conftest import add_person

MONDAY_HANDOFF = dt.datetime(2026, 11, 9, 8, 0, tzinfo=dt.UTC)  # 09:00 in Berlin


def test_members_take_turns_at_the_weekly_handoff_in_the_rotations_time_zone(team: Team) -> None:
    assert duty.who_is_on_duty(team.rotation, T0) == team.ana
    assert duty.who_is_on_duty(team.rotation, MONDAY_HANDOFF - dt.timedelta(minutes=1)) == team.ana
    assert duty.who_is_on_duty(team.rotation, MONDAY_HANDOFF) == team.ben
    assert duty.who_is_on_duty(team.rotation, MONDAY_HANDOFF + dt.timedelta(days=7)) == team.ana


def test_handoff_stays_at_local_time_across_the_daylight_saving_change(
    db: Session, team: Team
) -> None:
    spring = dt.datetime(2027, 3, 29, 7, 0, tzinfo=dt.UTC)  # Monday 09:00 CEST
    before = duty.who_is_on_duty(team.rotation, spring - dt.timedelta(minutes=1))
    after = duty.who_is_on_duty(team.rotation, spring)
    assert before != after


def test_override_in_force_wins_and_the_lead_is_told_with_a_reason(db: Session, team: Team) -> None:
    override = duty.add_override(
        db,
        team.rotation,
        username="ben",
        starts_at=T0 - dt.timedelta(hours=1),
        ends_at=T0 + dt.timedelta(hours=5),
        reason="ana at the dentist",
        actor="ana",
    )
    db.commit()
    assert duty.who_is_on_duty(team.rotation, T0) == team.ben
    assert duty.who_is_on_duty(team.rotation, T0 + dt.timedelta(hours=6)) == team.ana
    notice = db.scalars(select(Delivery)).one()
    assert notice.target == "user:lea"
    assert notice.reason == "override created"
    assert notice.subject == f"override:{override.id}"
    assert "ana at the dentist" in notice.body


def test_overlapping_override_is_refused_naming_the_one_in_the_way(db: Session, team: Team) -> None:
    duty.add_override(
        db,
        team.rotation,
        username="ben",
        starts_at=T0,
        ends_at=T0 + dt.timedelta(hours=4),
        reason="",
        actor="ana",
    )
    db.commit()
    with pytest.raises(duty.DutyError, match="overlaps the override of ben"):
        duty.add_override(
            db,
            team.rotation,
            username="lea",
            starts_at=T0 + dt.timedelta(hours=3),
            ends_at=T0 + dt.timedelta(hours=8),
            reason="",
            actor="ana",
        )
    db.rollback()
    assert db.scalar(select(func.count()).select_from(DutyOverride)) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"members": ["ana", "nobody"]}, "no active user named 'nobody'"),
        ({"time_zone": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"handoff_time": "25:00"}, "not HH:MM"),
        ({"handoff_weekday": "someday"}, "unknown weekday"),
        ({"members": []}, "at least one member"),
        ({"lead": "ghost"}, "no active user named 'ghost'"),
    ],
)
def test_bad_rotation_input_gets_a_clear_error_and_nothing_is_saved(
    db: Session, changes: dict[str, object], message: str
) -> None:
    add_person(db, "ana", "operator", "ana@desk.example")
    values: dict[str, object] = {
        "name": "secondary",
        "members": ["ana"],
        "time_zone": "Europe/Berlin",
    }
    values.update(changes)
    with pytest.raises(duty.DutyError, match=message):
        duty.create_rotation(db, **values)  # type: ignore[arg-type]
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Rotation)) == 0


def test_calendar_and_ical_feed_show_shifts_and_overrides(db: Session, team: Team) -> None:
    duty.add_override(
        db,
        team.rotation,
        username="lea",
        starts_at=T0,
        ends_at=T0 + dt.timedelta(hours=2),
        reason="swap",
        actor="ana",
    )
    found = duty.shifts(team.rotation, T0, T0 + dt.timedelta(weeks=8))
    assert [s.user.username for s in found[:3]] == ["ana", "lea", "ben"]
    token = duty.new_ical_token(team.rotation)
    db.commit()
    assert duty.rotation_for_token(db, token) == team.rotation
    assert team.rotation.ical_token_hash != token
    feed = duty.ical_feed(team.rotation, now=T0)
    assert feed.startswith("BEGIN:VCALENDAR")
    assert "SUMMARY:primary: lea (override)" in feed
    assert feed.count("BEGIN:VEVENT") == 10
