"""Demo: a month of nightly exports of generated studies, with one night of data loss, and
the nightly schedule that keeps them coming.

The past nights are written as finished runs (`_demo_history`); only last night's is a real
export, queued for the workers, so the first demo start does not keep a laptop busy.

On the loss day, half of one study's participants who upload that day (the occasional
uploaders, as when the participants still on an old app version stop reaching the server) seem
to upload nothing: that study's `uniqueHealthCodes` falls by about half (35 to 15) while its
record counts fall by about a quarter, too little for the record-count rules. The alarms demo
silences the matching shift rule over that day (`alarms.demo`), so the desk shows the drop
without an alarm.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.export import schedules, service
from dutydesk.export._demo_history import write_history
from dutydesk.export.models import ExportRun, ExportSchedule
from dutydesk.records.generate import generate
from dutydesk.records.models import Record
from dutydesk.records.store import records_session_factory

DEMO_DAYS = 30
DEMO_ACTOR = "demo"
LOSS_STUDY = "study-a"
LOSS_DAYS_AGO = 6
# The share of the loss day's uploaders (the lightest) whose records are lost.
LOSS_SHARE = 0.5
# The generated month's seed: one whose own noise moves no watched series far enough to fire
# a shift rule on any night, so the loss day's drop is the month's one shift (checked by
# tests/alarms/test_demo_month.py and tests/review/test_review_demo.py).
RECORDS_SEED = 2027
DEMO_SCHEDULE = "nightly"
DEMO_SCHEDULE_ZONE = "UTC"


def _day_window(day: dt.date) -> tuple[str, str]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    end = start + dt.timedelta(days=1)
    return (
        start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        end.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )


def _fill_record_store(today: dt.date) -> bool:
    """Generate the demo studies once; on the loss day, drop the records of the lightest half
    of one study's uploaders."""
    factory = records_session_factory()
    with factory() as records:
        if records.scalar(select(func.count()).select_from(Record)):
            return False
    generate(
        factory,
        seed=RECORDS_SEED,
        studies=3,
        participants=60,
        days=DEMO_DAYS,
        records_per_day=120,
        attachment_share=0.05,
        end_date=today - dt.timedelta(days=1),
    )
    loss_day = today - dt.timedelta(days=LOSS_DAYS_AGO)
    start = int(dt.datetime.combine(loss_day, dt.time(), dt.UTC).timestamp() * 1000)
    on_loss_day = (
        Record.study_id == LOSS_STUDY,
        Record.uploaded_on >= start,
        Record.uploaded_on < start + 86_400_000,
    )
    with factory() as records:
        uploads = records.execute(
            select(Record.health_code, func.count())
            .where(*on_loss_day)
            .group_by(Record.health_code)
            .order_by(func.count(), Record.health_code)
        ).all()
        lost = [code for code, _count in uploads[: round(len(uploads) * LOSS_SHARE)]]
        records.execute(delete(Record).where(*on_loss_day, Record.health_code.in_(lost)))
        records.commit()
    return True


def _nightly_request(day: dt.date) -> dict[str, object]:
    start, end = _day_window(day)
    return {
        "useLastExportTime": False,
        "startDateTime": start,
        "endDateTime": end,
        "tag": f"demo nightly export {day}",
    }


def _made_at(day: dt.date) -> dt.datetime:
    """When the nightly run of `day` was made: the next morning."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(8), dt.UTC)


@registry.demo_seeder("export")
def seed_exports(session: Session, context: registry.DemoContext) -> None:
    """Generate the demo studies, write the month's past nightly runs as finished, queue the
    last night's as a real export (the warehouse gets real tables), and add a schedule."""
    if session.scalar(select(func.count()).where(ExportRun.created_by == DEMO_ACTOR)):
        return
    seed_schedule(session, context)
    today = utcnow().date()
    if _fill_record_store(today):
        context.note(f"3 studies with {DEMO_DAYS} days of records in the record store")
    days = [today - dt.timedelta(days=back) for back in range(DEMO_DAYS, 0, -1)]
    write_history(
        session,
        records_session_factory(),
        [(_nightly_request(day), _made_at(day)) for day in days[:-1]],
        created_by=DEMO_ACTOR,
    )
    service.start_run(
        session, _nightly_request(days[-1]), created_by=DEMO_ACTOR, now=_made_at(days[-1])
    )
    context.note(
        f"{DEMO_DAYS - 1} past nightly export runs (one night of data loss in {LOSS_STUDY}) "
        "and last night's run queued"
    )


def seed_schedule(session: Session, context: registry.DemoContext) -> None:
    """The demo's nightly export schedule, unless one of that name exists."""
    if session.scalar(select(ExportSchedule.id).where(ExportSchedule.name == DEMO_SCHEDULE)):
        return
    schedules.create_schedule(
        session, name=DEMO_SCHEDULE, time_zone=DEMO_SCHEDULE_ZONE, schedule_type="DAILY"
    )
    context.note(f"export schedule {DEMO_SCHEDULE} (daily, {DEMO_SCHEDULE_ZONE})")
