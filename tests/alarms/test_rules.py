"""Rule kinds fire when they should and stay quiet when they should not; the seeded defaults,
the demo month's data-loss day, silences and the stored numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms import rules, silences
from dutydesk.alarms._cron import parse_cron
from dutydesk.alarms.demo import LOSS_DAYS_AGO, demo_metric_history
from dutydesk.alarms.evaluate import decide, evaluate_rule, replay
from dutydesk.alarms.models import Alarm, RuleEvaluation
from dutydesk.intake import logs
from dutydesk.intake.models import Ping, PingCheck
from dutydesk.intake.service import create_integration
from dutydesk.metrics.models import MetricPoint
from dutydesk.tickets.models import Ticket

AT = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def error_lines(
    count: int,
    start: dt.datetime,
    message: str = "Timeout after {n} ms",
    step: dt.timedelta = dt.timedelta(minutes=1),
) -> str:
    return "".join(
        f"{start + n * step:%Y-%m-%d %H:%M:%S},000 ERROR [main] "
        f"org.example.Worker - {message.format(n=n * 100)}\n"
        for n in range(count)
    )


def seeded(db: Session, name: str) -> rules.AlarmRule:
    rules.seed_default_rules(db, "test")
    return rules.get_rule(db, name)


def ingest(db: Session, text: str, source: str = "bridge") -> None:
    logs.ingest(db, source, text, "java", AT, strict=False)


def test_twelve_error_lines_in_an_hour_fire_the_default_rule(db: Session) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(12, AT - dt.timedelta(minutes=50)))
    (outcome,) = evaluate_rule(db, rule, AT)
    assert outcome.decision.firing
    assert outcome.action == "fired"
    assert outcome.decision.numbers["count"] == 12
    assert outcome.decision.numbers["threshold"] == 10
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "rule:errors-per-hour:bridge"))
    assert alarm is not None and alarm.state == "firing" and alarm.ticket_id is not None
    assert db.get(Ticket, alarm.ticket_id) is not None


def test_nine_error_lines_in_an_hour_do_not_fire(db: Session) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(9, AT - dt.timedelta(minutes=50)))
    (outcome,) = evaluate_rule(db, rule, AT)
    assert not outcome.decision.firing
    assert outcome.decision.numbers["count"] == 9
    assert db.scalar(select(Alarm)) is None


def test_lines_outside_the_window_do_not_count_and_the_alarm_resolves(db: Session) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(12, AT - dt.timedelta(minutes=30)))
    assert evaluate_rule(db, rule, AT)[0].action == "fired"
    (later,) = evaluate_rule(db, rule, AT + dt.timedelta(minutes=45))
    assert not later.decision.firing and later.action == "resolved"
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "rule:errors-per-hour:bridge"))
    assert alarm is not None and alarm.state == "resolved"


def test_ignored_sharing_options_lines_do_not_fire_unless_over_their_own_threshold(
    db: Session,
) -> None:
    rule = seeded(db, "errors-per-hour")
    noise = "Unable to parse sharing options for hc 'x{n}', sharing scope value=null"
    ingest(db, error_lines(50, AT - dt.timedelta(minutes=55), noise))
    (quiet,) = decide(db, rule, AT)
    assert not quiet.firing
    assert quiet.numbers["level_count"] == 50 and quiet.numbers["count"] == 0
    assert quiet.numbers["ignored"][0]["count"] == 50
    rules.update_rule(
        db, rule, {"params": {"ignore": [{"pattern": rules.SHARING_OPTIONS_LINE, "threshold": 40}]}}
    )
    (loud,) = decide(db, rule, AT)
    assert loud.firing and loud.numbers["ignored"][0]["exceeded"]


def test_regex_threshold_counts_only_matching_groups(db: Session) -> None:
    rule = rules.create_rule(
        db,
        name="timeouts",
        kind="log_threshold",
        actor="t",
        params={"levels": ["ERROR"], "regex": "Timeout", "threshold": 5},
    )
    ingest(db, error_lines(6, AT - dt.timedelta(minutes=20)))
    ingest(db, error_lines(20, AT - dt.timedelta(minutes=20), "Disk {n} full"))
    (decision,) = decide(db, rule, AT)
    assert decision.firing and decision.numbers["count"] == 6
    assert decision.numbers["groups"][0]["template"] == "Timeout after <num> ms"


def test_default_warning_rule_needs_a_hundred_lines(db: Session) -> None:
    rule = seeded(db, "warnings-per-hour")
    start = AT - dt.timedelta(minutes=59)
    warn = error_lines(99, start, step=dt.timedelta(seconds=30)).replace(" ERROR ", " WARN ")
    ingest(db, warn)
    assert not decide(db, rule, AT)[0].firing
    ingest(db, warn[: warn.index("\n") + 1])
    assert decide(db, rule, AT)[0].firing


def test_cron_previous_finds_the_latest_scheduled_time() -> None:
    cron = parse_cron("0 2 * * *")
    assert cron.previous(AT) == dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    assert cron.previous(AT.replace(hour=1)) == dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
    weekly = parse_cron("30 6 * * 1")  # Mondays
    assert weekly.previous(AT) == dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.UTC)


def ping_check(db: Session) -> PingCheck:
    made = create_integration(db, name="backup", kind="heartbeat", actor="t")
    db.flush()
    check = made.integration.check
    assert check is not None
    return check


def test_missed_deadline_fires_and_the_ping_resolves_it(db: Session) -> None:
    check = ping_check(db)
    check.last_success_at = AT - dt.timedelta(days=1, hours=9)  # yesterday's 02:50
    rule = rules.create_rule(
        db,
        name="backup-deadline",
        kind="deadline",
        actor="t",
        params={"event": "ping", "check": "backup", "cron": "0 2 * * *", "grace_minutes": 60},
    )
    (early,) = evaluate_rule(db, rule, AT.replace(hour=2, minute=30))
    assert not early.decision.firing  # still within the grace
    (missed,) = evaluate_rule(db, rule, AT.replace(hour=3, minute=5))
    assert missed.decision.firing and missed.action == "fired"
    assert missed.decision.numbers["scheduled_at"] == "2026-11-24T02:00:00+00:00"
    check.last_success_at = AT.replace(hour=3, minute=10)
    (after,) = evaluate_rule(db, rule, AT.replace(hour=3, minute=11))
    assert not after.decision.firing and after.action == "resolved"
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "rule:backup-deadline"))
    assert alarm is not None and alarm.state == "resolved"


def test_slow_run_fires_over_the_baseline_factor(db: Session) -> None:
    check = ping_check(db)
    for back, minutes in ((5, 20), (4, 22), (3, 21), (2, 19), (1, 70)):
        start = AT.replace(hour=2) - dt.timedelta(days=back - 1)
        db.add(Ping(check_id=check.id, at=start, kind="start"))
        db.add(Ping(check_id=check.id, at=start + dt.timedelta(minutes=minutes), kind="success"))
    check.last_success_at = AT.replace(hour=3, minute=10)
    rule = rules.create_rule(
        db,
        name="backup-slow",
        kind="deadline",
        actor="t",
        params={"event": "ping", "check": "backup", "cron": "0 2 * * *", "slow_factor": 2},
    )
    (decision,) = decide(db, rule, AT)
    assert decision.firing and "slow" in decision.summary
    assert decision.numbers["baseline_s"] == 20.5 * 60


def test_log_line_deadline_is_met_by_a_matching_line(db: Session) -> None:
    rule = rules.create_rule(
        db,
        name="finished",
        kind="deadline",
        actor="t",
        params={
            "event": "log",
            "regex": "Finished processing request",
            "cron": "0 * * * *",
            "grace_minutes": 10,
        },
    )
    assert decide(db, rule, AT)[0].firing
    ingest(
        db,
        error_lines(1, AT - dt.timedelta(minutes=55), "Finished processing request in 9 s").replace(
            "ERROR", "INFO"
        ),
    )
    (decision,) = decide(db, rule, AT.replace(minute=5))
    assert not decision.firing and decision.numbers["last_event_at"].startswith("2026-11-24T11:05")


def add_history(db: Session, history: dict[str, list[tuple[dt.datetime, float]]]) -> None:
    for series, points in history.items():
        db.add_all(MetricPoint(series=series, at=at, value=v, source="demo") for at, v in points)
    db.flush()


def test_demo_months_data_loss_day_fires_and_no_other_day_does(db: Session) -> None:
    today = AT.date()
    add_history(db, demo_metric_history(today))
    rules.seed_default_rules(db, "test")
    fired_days = set()
    for name in ("shift-unique-health-codes", "shift-num-total"):
        rule = rules.get_rule(db, name)
        for at, outcomes in replay(db, rule, AT - dt.timedelta(days=40), AT):
            for outcome in outcomes:
                if outcome.decision.firing:
                    fired_days.add(((at - dt.timedelta(days=1)).date(), outcome.decision.instance))
    loss_day = today - dt.timedelta(days=LOSS_DAYS_AGO)
    assert fired_days == {(loss_day, "export.uniqueHealthCodes[study-a]")}
    evaluation = db.scalar(
        select(RuleEvaluation).where(RuleEvaluation.firing.is_(True)).order_by(RuleEvaluation.id)
    )
    assert evaluation is not None
    assert {"median", "mad", "mads", "relative", "k", "min_relative"} <= set(evaluation.numbers)


def test_metric_shift_needs_minimum_history_and_respects_direction(db: Session) -> None:
    points = [(AT - dt.timedelta(days=d), 100.0 + d % 3) for d in range(10, 0, -1)]
    add_history(db, {"numTotal": [*points[:3], (AT, 10.0)]})
    rule = rules.create_rule(
        db, name="nt", kind="metric_shift", actor="t", params={"series": "numTotal"}
    )
    (short,) = decide(db, rule, AT)
    assert not short.firing and "fewer than" in short.summary
    add_history(db, {"numTotal": points[3:]})
    assert decide(db, rule, AT)[0].firing
    rules.update_rule(db, rule, {"params": {"direction": "rise"}})
    assert not decide(db, rule, AT)[0].firing


def test_ci_silence_fires_after_hours_without_a_pipeline_event(db: Session) -> None:
    made = create_integration(db, name="jenkins", kind="ci", actor="t")
    made.integration.created_at = AT - dt.timedelta(hours=30)
    rule = rules.create_rule(
        db,
        name="ci-quiet",
        kind="ci_silence",
        actor="t",
        params={"integration": "jenkins", "hours": 24},
    )
    (decision,) = decide(db, rule, AT)
    assert decision.firing and decision.numbers["hours_since"] == 30
    assert not decide(db, rule, AT - dt.timedelta(hours=8))[0].firing


def test_silence_mutes_a_firing_rule_and_its_end_fires_at_once(db: Session) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(12, AT - dt.timedelta(minutes=50)))
    silences.create_silence(
        db,
        starts_at=AT - dt.timedelta(hours=1),
        ends_at=AT + dt.timedelta(minutes=5),
        reason="deploy",
        actor="ada",
        matchers={"rule": "errors-per-hour"},
    )
    (muted,) = evaluate_rule(db, rule, AT)
    assert muted.silenced and muted.action == "silenced"
    assert db.scalar(select(Alarm)) is None
    notices = silences.send_notices(db, AT + dt.timedelta(minutes=6))
    assert notices == {"started": 1, "ended": 1}
    (after,) = evaluate_rule(db, rule, AT + dt.timedelta(minutes=6))
    assert after.action == "fired" and not after.silenced


def test_silence_limits_and_maintenance_without_matchers(db: Session) -> None:
    with pytest.raises(silences.SilenceError, match="at most 168 hours"):
        silences.create_silence(
            db,
            starts_at=AT,
            ends_at=AT + dt.timedelta(days=8),
            reason="x",
            actor="a",
            matchers={"rule": "r"},
        )
    with pytest.raises(silences.SilenceError, match="matchers or a rule"):
        silences.create_silence(
            db, starts_at=AT, ends_at=AT + dt.timedelta(hours=1), reason="x", actor="a"
        )
    window = silences.create_silence(
        db,
        starts_at=AT,
        ends_at=AT + dt.timedelta(hours=2),
        reason="db upgrade",
        actor="a",
        kind="maintenance",
    )
    rule = seeded(db, "errors-per-hour")
    assert silences.covering([window], rule, silences.rule_labels(rule)) is window


def test_rule_settings_are_checked(db: Session) -> None:
    with pytest.raises(rules.RuleError, match="needs threshold"):
        rules.create_rule(db, name="x", kind="log_threshold", actor="t", params={})
    with pytest.raises(rules.RuleError, match="cron"):
        rules.create_rule(
            db,
            name="x",
            kind="deadline",
            actor="t",
            params={"event": "export", "cron": "61 * * * *"},
        )
    with pytest.raises(rules.RuleError, match="unknown setting"):
        rules.create_rule(
            db, name="x", kind="ci_silence", actor="t", params={"integration": "a", "minutes": 3}
        )


def test_silence_start_and_end_are_noted_on_the_firing_alarms_ticket(db: Session) -> None:
    from dutydesk.tickets.models import TicketEvent

    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(12, AT - dt.timedelta(minutes=50)))
    assert evaluate_rule(db, rule, AT)[0].action == "fired"
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "rule:errors-per-hour:bridge"))
    assert alarm is not None and alarm.ticket_id is not None
    silences.create_silence(
        db,
        starts_at=AT,
        ends_at=AT + dt.timedelta(hours=1),
        reason="known outage",
        actor="ada",
        matchers={"source": "bridge"},
    )
    assert silences.send_notices(db, AT + dt.timedelta(minutes=1)) == {"started": 1, "ended": 0}
    assert silences.send_notices(db, AT + dt.timedelta(hours=2)) == {"started": 0, "ended": 1}
    db.flush()
    reasons = [
        event.detail.get("reason", "")
        for event in db.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == alarm.ticket_id, TicketEvent.kind == "notified")
            .order_by(TicketEvent.id)
        )
    ]
    assert len(reasons) == 2
    assert "started: known outage (by ada)" in reasons[0] and "ended" in reasons[1]


def test_export_deadline_fires_without_a_successful_run_and_flags_a_slow_one(
    db: Session,
) -> None:
    from dutydesk.export.models import ExportRun

    rule = rules.create_rule(
        db,
        name="nightly-export",
        kind="deadline",
        actor="t",
        params={"event": "export", "cron": "0 2 * * *", "grace_minutes": 120, "slow_factor": 3},
    )
    assert decide(db, rule, AT)[0].firing  # no run at all

    def run(day: int, minutes: int) -> None:
        started = AT.replace(day=day, hour=2)
        db.add(
            ExportRun(
                request={},
                request_text="{}",
                run_key=f"k{day}",
                state="succeeded",
                export_date=f"2026-11-{day:02d}",
                created_by="t",
                started_at=started,
                finished_at=started + dt.timedelta(minutes=minutes),
            )
        )
        db.flush()

    for day in (20, 21, 22, 23):
        run(day, 10)
    (late,) = decide(db, rule, AT)
    assert late.firing and late.numbers["missed"]
    run(24, 12)
    (on_time,) = decide(db, rule, AT)
    assert not on_time.firing and on_time.numbers["baseline_s"] == 600
    run(25, 45)
    (slow,) = decide(db, rule, AT.replace(day=25))
    assert slow.firing and "slow" in slow.summary


def test_maintenance_window_mutes_intake_alarms_and_tells_them_at_its_end(db: Session) -> None:
    from dutydesk.alarms.service import Signal, raise_signal

    now = dt.datetime.now(dt.UTC)
    silences.create_silence(
        db,
        starts_at=now - dt.timedelta(minutes=5),
        ends_at=now + dt.timedelta(minutes=30),
        reason="database upgrade",
        actor="ada",
        matchers={"service": "db"},
        kind="maintenance",
    )
    muted = raise_signal(
        db,
        Signal(
            source="prometheus", fingerprint="db-down", title="DB down", labels={"service": "db"}
        ),
    )
    assert muted.ticket is None and muted.alarm.state == "firing"
    other = raise_signal(
        db,
        Signal(
            source="prometheus", fingerprint="web-down", title="Web down", labels={"service": "web"}
        ),
    )
    assert other.ticket is not None
    silences.send_notices(db, now + dt.timedelta(minutes=31))
    db.flush()
    assert muted.alarm.ticket_id is not None
    assert db.get(Ticket, muted.alarm.ticket_id) is not None
