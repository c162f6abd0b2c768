"""Demo: the seeded rules, a few days of log counts and error groups, a heartbeat check with
pings, CI events, a silence over the export demo's data-loss day, and a replay of the metric
rules over the export's month of history (the loss day's shift is stored as silenced, so it
opens no ticket, yet the dashboards and the review show it).

`demo_metric_history` generates the same shape of series as the export demo (three studies of
60 participants, 120 records a day, 60% of study-a's participants missing on the loss day), for
tests and for desks without the export's history.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms import rules, silences
from dutydesk.alarms.models import AlarmRule, Silence
from dutydesk.db import utcnow
from dutydesk.export.demo import LOSS_DAYS_AGO, LOSS_STUDY
from dutydesk.intake import logs
from dutydesk.intake.models import Integration, LogCount, Ping, PingCheck
from dutydesk.jobs import service as jobs

DEMO_ACTOR = "demo"
DEMO_SOURCE = "bridge-worker"
STUDIES = ("study-a", "study-b", "study-c")
PARTICIPANTS = 60
RECORDS_PER_DAY = 120
LOSS_SHARE = 0.6
LOSS_RULE = "shift-unique-health-codes"
REPLAY_DELAY_SECONDS = 300


def demo_metric_history(
    today: dt.date, *, days: int = 30, seed: int = 2026
) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Daily `export.uniqueHealthCodes[study]` and `numTotal` points of the month before `today`,
    each dated at the end of its day, with data loss in study-a LOSS_DAYS_AGO days ago."""
    rng = random.Random(seed)
    history: dict[str, list[tuple[dt.datetime, float]]] = {}
    for back in range(days, 0, -1):
        day = today - dt.timedelta(days=back)
        at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        total = 0
        for study in STUDIES:
            uploads = [rng.randrange(PARTICIPANTS) for _ in range(RECORDS_PER_DAY)]
            if study == LOSS_STUDY and back == LOSS_DAYS_AGO:
                lost = set(rng.sample(range(PARTICIPANTS), int(PARTICIPANTS * LOSS_SHARE)))
                uploads = [code for code in uploads if code not in lost]
            total += len(uploads)
            history.setdefault(f"export.uniqueHealthCodes[{study}]", []).append(
                (at, len(set(uploads)))
            )
        history.setdefault("numTotal", []).append((at, total))
    return history


def _demo_lines(day: dt.datetime, rng: random.Random) -> str:
    lines = []
    for hour in range(24):
        at = day + dt.timedelta(hours=hour)
        errors = 14 if (day.day % 3 == 0 and hour == 3) else rng.randrange(0, 4)
        for n in range(errors):
            lines.append(
                f"{at + dt.timedelta(minutes=n):%Y-%m-%d %H:%M:%S},000 ERROR [worker-1] "
                f"org.sagebionetworks.bridge.Worker - Timeout after {rng.randrange(3000, 9000)} "
                f"ms reading record {rng.randrange(10**6)}"
            )
        for n in range(rng.randrange(5, 30)):
            lines.append(
                f"{at + dt.timedelta(minutes=n):%Y-%m-%d %H:%M:%S},000 WARN [worker-1] "
                "org.sagebionetworks.bridge.Share - Unable to parse sharing options for hc "
                f"'{rng.randrange(10**6):x}', sharing scope value=null"
            )
        lines.append(
            f"{at:%Y-%m-%d %H:%M:%S},000 INFO [worker-1] org.sagebionetworks.bridge.Worker - "
            f"Finished processing request in {rng.randrange(40, 90)} seconds"
        )
    return "\n".join(lines) + "\n"


def silence_loss_day(session: Session, now: dt.datetime) -> Silence:
    """Silence the unique-participants shift rule for the loss study over the export demo's
    loss day (its point is dated at the day's end), as the team would for a known gap."""
    loss_day = now.date() - dt.timedelta(days=LOSS_DAYS_AGO)
    starts = dt.datetime.combine(loss_day, dt.time(6), dt.UTC)
    return silences.create_silence(
        session,
        starts_at=starts,
        ends_at=starts + dt.timedelta(hours=30),
        reason=(
            f"Known gap: {LOSS_STUDY}'s participants still on app 2.x cannot upload on "
            f"{loss_day} (server certificate rotation); their uploads are re-driven once the "
            "app update is out, so the drop in unique participants is expected."
        ),
        actor=DEMO_ACTOR,
        matchers={"series": f"export.uniqueHealthCodes[{LOSS_STUDY}]"},
        rule=rules.get_rule(session, LOSS_RULE),
    )


@registry.demo_seeder("alarms")
def seed_alarms(session: Session, context: registry.DemoContext) -> None:
    """Seed rules, three days of log counts, a heartbeat with pings, and a metric replay."""
    if session.scalar(
        select(func.count()).select_from(AlarmRule).where(AlarmRule.created_by == DEMO_ACTOR)
    ):
        return
    made = rules.seed_default_rules(session, DEMO_ACTOR)
    now = utcnow()
    silence_loss_day(session, now)
    rules.create_rule(
        session,
        name="nightly-export-finished",
        kind="deadline",
        actor=DEMO_ACTOR,
        description="The worker logs 'Finished processing request' every hour.",
        params={
            "event": "log",
            "source": DEMO_SOURCE,
            "regex": r"Finished processing request in (?P<seconds>[0-9]+) seconds",
            "cron": "5 * * * *",
            "grace_minutes": 30,
            "slow_factor": 3,
        },
    )
    rng = random.Random(5)
    start = dt.datetime.combine(now.date() - dt.timedelta(days=3), dt.time(), dt.UTC)
    for back in range(3):
        text = _demo_lines(start + dt.timedelta(days=back), rng)
        logs.ingest(session, DEMO_SOURCE, text, "java", now, strict=False)
    heartbeat = session.scalar(select(Integration).where(Integration.kind == "heartbeat"))
    if heartbeat is not None:
        check = heartbeat.check or PingCheck(integration_id=heartbeat.id)
        session.add(check)
        session.flush()
        for back in range(3, -1, -1):
            day = dt.datetime.combine(now.date() - dt.timedelta(days=back), dt.time(2), dt.UTC)
            if day + dt.timedelta(minutes=30) > now:
                continue  # today's run is still to come
            session.add(Ping(check_id=check.id, at=day, kind="start", body=""))
            done = day + dt.timedelta(minutes=rng.randrange(20, 30))
            session.add(Ping(check_id=check.id, at=done, kind="success", body="backup done"))
            check.last_success_at, check.status = done, "up"
        rules.create_rule(
            session,
            name=f"{heartbeat.name}-deadline",
            kind="deadline",
            actor=DEMO_ACTOR,
            params={
                "event": "ping",
                "check": heartbeat.name,
                "cron": "0 2 * * *",
                "grace_minutes": 90,
                "slow_factor": 2,
            },
        )
    ci = session.scalar(select(Integration).where(Integration.kind.in_(["ci", "github", "gitlab"])))
    if ci is not None:
        rules.create_rule(
            session,
            name=f"{ci.name}-silence",
            kind="ci_silence",
            actor=DEMO_ACTOR,
            params={"integration": ci.name, "hours": 72},
        )
    jobs.enqueue(
        session,
        "alarms.replay",
        {"days": 31, "kinds": ["metric_shift"]},
        created_by=DEMO_ACTOR,
        delay_seconds=REPLAY_DELAY_SECONDS,
    )
    counted = session.scalar(select(func.sum(LogCount.count)).where(LogCount.source == DEMO_SOURCE))
    context.note(
        f"{len(made) + 1} alarm rules, {counted} log lines counted from {DEMO_SOURCE}; "
        f"{LOSS_RULE} silenced for {LOSS_STUDY} over its loss day; "
        "the metric rules replay the export month once its runs are done"
    )
