"""Alarm titles and rule explanations read as sentences with their numbers, for every rule
kind; rewording them changes no fingerprint, so a ticket keeps collecting its alarm."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms import rules, sentences
from dutydesk.alarms.evaluate import decide, evaluate_rule
from dutydesk.alarms.models import Alarm, AlarmRule
from dutydesk.intake.models import Ping
from dutydesk.intake.service import create_integration
from dutydesk.metrics.models import MetricPoint
from dutydesk.tickets.models import Ticket
from tests.alarms.test_rules import AT, error_lines, ingest, ping_check, seeded
from tests.conftest import make_user, sign_in

# --- log threshold -------------------------------------------------------------------------


def test_a_log_threshold_alarm_says_how_many_lines_came_from_where_against_what(
    db: Session,
) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(57, AT - dt.timedelta(minutes=58), step=dt.timedelta(seconds=60)))
    (outcome,) = evaluate_rule(db, rule, AT)
    sentence = "ERROR/FATAL lines from bridge: 57 in the last hour, over the threshold of 10."
    assert outcome.decision.summary == sentence
    alarm = db.scalar(select(Alarm).where(Alarm.fingerprint == "rule:errors-per-hour:bridge"))
    assert alarm is not None and alarm.title == sentence
    ticket = db.get(Ticket, alarm.ticket_id)
    assert ticket is not None and ticket.title == sentence
    assert ticket.description.startswith(sentence + "\n\nRule errors-per-hour: Fires when ")


def test_a_quiet_log_source_and_ignored_lines_are_worded_too(db: Session) -> None:
    rule = rules.create_rule(
        db,
        name="timeouts",
        kind="log_threshold",
        actor="t",
        params={
            "regex": "Timeout",
            "threshold": 5,
            "window_minutes": 30,
            "ignore": [{"pattern": "sharing scope", "threshold": 100}],
        },
    )
    ingest(db, error_lines(3, AT - dt.timedelta(minutes=20)))
    ingest(db, error_lines(2, AT - dt.timedelta(minutes=10), "Timeout reading sharing scope"))
    (decision,) = decide(db, rule, AT)
    assert decision.summary == (
        "Lines matching /Timeout/ from bridge: 3 in the last 30 minutes, under the threshold "
        "of 5. 2 ignored lines not counted."
    )


def test_a_count_exactly_at_the_threshold_says_so(db: Session) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(10, AT - dt.timedelta(minutes=30)))
    (decision,) = decide(db, rule, AT)
    assert decision.firing
    assert decision.summary.endswith(": 10 in the last hour, at the threshold of 10.")


# --- deadline: missing, slow, on time ---------------------------------------------------------


def deadline_rule(db: Session, **params: object) -> AlarmRule:
    return rules.create_rule(
        db,
        name="export-done",
        kind="deadline",
        actor="t",
        params={
            "event": "log",
            "regex": "Export done",
            "cron": "0 2 * * *",
            "grace_minutes": 60,
            **params,
        },
    )


def test_a_missing_completion_line_says_since_when_and_how_long_ago(db: Session) -> None:
    rule = deadline_rule(db)
    rule.state = {"last_event_at": "2026-11-23T02:00:00+00:00"}
    (decision,) = decide(db, rule, AT.replace(hour=4))
    assert decision.firing
    assert decision.summary == (
        "The completion line 'Export done' has not been seen since 2026-11-23 02:00 UTC, "
        "26 hours ago (expected every day at 02:00 UTC, due by 2026-11-24 03:00 UTC)."
    )


def test_a_completion_never_seen_says_so(db: Session) -> None:
    (decision,) = decide(db, deadline_rule(db), AT)
    assert decision.summary == (
        "The completion line 'Export done' has never been seen "
        "(expected every day at 02:00 UTC, due by 2026-11-24 03:00 UTC)."
    )


def test_a_completion_on_time_says_when_it_was_last_seen(db: Session) -> None:
    rule = deadline_rule(db)
    rule.state = {"last_event_at": "2026-11-24T02:14:00+00:00"}
    (decision,) = decide(db, rule, AT)
    assert not decision.firing
    assert decision.summary == (
        "The completion line 'Export done' was last seen 2026-11-24 02:14 UTC, 9.8 hours ago, "
        "on time (expected every day at 02:00 UTC, due by 2026-11-24 03:00 UTC)."
    )


def test_a_slow_run_says_how_long_it_took_against_the_usual(db: Session) -> None:
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
    assert decision.firing
    assert decision.summary == (
        "The heartbeat 'backup' was slow: it took 70 minutes, 3.4 times the usual "
        "20.5 minutes (the limit is 2 times)."
    )


# --- metric shift ----------------------------------------------------------------------------


def add_series(db: Session, series: str, values: list[float]) -> None:
    for back, value in enumerate(reversed(values)):
        db.add(MetricPoint(series=series, at=AT - dt.timedelta(days=back), value=value, source="t"))
    db.flush()


def test_a_drop_says_where_the_series_fell_from_its_median_and_by_how_much(
    db: Session,
) -> None:
    add_series(db, "export.uniqueHealthCodes[study-a]", [60, 62, 64, 61, 63, 62, 62, 31])
    (decision,) = decide(db, seeded(db, "shift-unique-health-codes"), AT)
    assert decision.firing
    assert decision.summary == (
        "Unique participants of study-a fell to 31, from a median of 62 (-50%, 20.91 spreads "
        "below)."
    )


def test_a_series_within_its_range_says_where_it_stands_and_what_the_rule_reports(
    db: Session,
) -> None:
    add_series(db, "study-a-default.lineCount", [100, 102, 98, 101, 99, 100, 103, 101])
    (decision,) = decide(db, seeded(db, "shift-line-count"), AT)
    assert not decision.firing
    assert decision.summary == (
        "Rows of study-a-default is 101, against a median of 100 (+1%, 0.67 spreads above); "
        "the rule reports 4 spreads and 50% down."
    )


def test_a_rise_and_too_small_a_median_and_too_short_a_history_are_worded(
    db: Session,
) -> None:
    add_series(db, "excluded[all_qualified_researchers]", [2, 3, 2, 2, 3, 2, 2, 9])
    (rise,) = decide(db, seeded(db, "shift-excluded"), AT)
    assert rise.firing
    assert rise.summary.startswith(
        "Excluded records of all_qualified_researchers rose to 9, from a median of 2 (+350%, "
    )
    add_series(db, "study-b-default.lineCount", [4, 5, 4, 4, 5, 4, 4, 1])
    (small,) = decide(db, rules.get_rule(db, "shift-line-count"), AT)
    assert small.summary == (
        "Rows of study-b-default is 1; its median of 4 is under 20, too small a count to "
        "judge a shift."
    )
    add_series(db, "custom.queue_depth", [7, 8])
    shift = rules.create_rule(
        db, name="queue", kind="metric_shift", actor="t", params={"series": "custom.*"}
    )
    (short,) = decide(db, shift, AT)
    assert short.summary == (
        "custom.queue_depth has only 1 earlier point, fewer than the 7 a shift test needs."
    )


# --- probe and CI silence --------------------------------------------------------------------


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_probe_says_what_the_url_answered_and_how_fast(db: Session, web_server: str) -> None:
    up = rules.create_rule(
        db, name="up", kind="http_probe", actor="t", params={"url": f"{web_server}/ok"}
    )
    (good,) = decide(db, up)
    assert good.summary.startswith(f"{web_server}/ok answered 200 in ")
    assert good.summary.endswith(" ms (the limit is 2,000 ms).")
    down = rules.create_rule(
        db, name="down", kind="http_probe", actor="t", params={"url": f"{web_server}/x"}
    )
    (bad,) = decide(db, down)
    assert bad.firing and bad.summary.startswith(f"{web_server}/x answered 503 instead of 200, in ")
    closed = rules.create_rule(
        db, name="gone", kind="http_probe", actor="t", params={"url": "http://127.0.0.1:9/"}
    )
    (failed,) = decide(db, closed)
    assert failed.firing and failed.summary.startswith("The probe of http://127.0.0.1:9/ failed: ")


def test_a_silent_ci_pipeline_says_for_how_long_against_the_limit(db: Session) -> None:
    made = create_integration(db, name="jenkins", kind="ci", actor="t")
    made.integration.created_at = AT - dt.timedelta(hours=30)
    rule = rules.create_rule(
        db,
        name="ci-quiet",
        kind="ci_silence",
        actor="t",
        params={"integration": "jenkins", "hours": 24},
    )
    (silent,) = decide(db, rule, AT)
    assert silent.summary == (
        "The CI pipeline 'jenkins' has sent no event for 30 hours, over the limit of 24 hours "
        "(none ever)."
    )
    (quiet,) = decide(db, rule, AT - dt.timedelta(hours=8))
    assert quiet.summary == (
        "The CI pipeline 'jenkins' last sent an event 22 hours ago (the limit is 24 hours)."
    )


# --- fingerprints and explanations -----------------------------------------------------------


def test_a_reworded_alarm_lands_on_the_same_ticket(db: Session) -> None:
    rule = seeded(db, "errors-per-hour")
    ingest(db, error_lines(12, AT - dt.timedelta(minutes=50)))
    (first,) = evaluate_rule(db, rule, AT)
    (quiet,) = evaluate_rule(db, rule, AT + dt.timedelta(hours=2))
    ingest(db, error_lines(15, AT + dt.timedelta(hours=2, minutes=10)))
    (again,) = evaluate_rule(db, rule, AT + dt.timedelta(hours=3))
    assert (first.action, quiet.action, again.action) == ("fired", "resolved", "fired")
    assert first.decision.summary != again.decision.summary
    assert first.alarm_id == again.alarm_id
    alarm = db.get(Alarm, again.alarm_id)
    assert alarm is not None and alarm.fingerprint == "rule:errors-per-hour:bridge"
    assert alarm.title == again.decision.summary
    (ticket,) = db.scalars(select(Ticket)).all()
    assert alarm.ticket_id == ticket.id and ticket.title == first.decision.summary


def test_each_rule_kind_explains_what_it_checks_from_its_settings() -> None:
    explain = sentences.explain_params
    assert explain(
        "log_threshold",
        rules.check_params(
            "log_threshold",
            {"levels": ["ERROR", "FATAL"], "threshold": 10, "ignore": ["sharing scope"]},
        ),
    ) == (
        "Fires when any one source logs 10 or more ERROR/FATAL lines in an hour, not counting "
        "lines matching /sharing scope/ (unless it reaches 1,000 itself)."
    )
    assert explain(
        "deadline",
        rules.check_params(
            "deadline",
            {"event": "export", "cron": "30 6 * * 1", "grace_minutes": 90, "slow_factor": 2},
        ),
    ) == (
        "Expects a successful export run every Monday at 06:30 UTC, with 90 minutes of grace, "
        "and fires when none has come by then, or when one takes more than 2 times the median "
        "of the 10 before."
    )
    assert explain(
        "metric_shift",
        rules.check_params("metric_shift", {"series": "uniqueHealthCodes[*]", "min_relative": 0.3}),
    ) == (
        "Fires when unique participants of each study falls more than 4 spreads (scaled median "
        "absolute deviations) and at least 30% away from the median of its last 14 points; it "
        "needs 7 earlier points."
    )
    assert explain(
        "http_probe", rules.check_params("http_probe", {"url": "https://desk.example/health"})
    ) == (
        "Every 60 seconds, asks https://desk.example/health and fires when it does not answer "
        "200 within 2,000 ms (giving up after 10 seconds)."
    )
    assert explain("ci_silence", rules.check_params("ci_silence", {"integration": "jenkins"})) == (
        "Fires when the CI integration 'jenkins' sends no pipeline event for 24 hours."
    )


def test_the_rules_list_and_a_rules_page_show_its_explanation(
    client: TestClient, db: Session
) -> None:
    rule = seeded(db, "errors-per-hour")
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    listed = client.get("/alarms").text
    explanation = "Fires when any one source logs 10 or more ERROR/FATAL lines in an hour"
    assert explanation in listed
    assert explanation in client.get(f"/alarms/rules/{rule.id}").text
