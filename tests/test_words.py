"""The console's words: tickets are DD-n everywhere, counts take the right plural, dates are
typed and shown in ISO form, and the demo's log source is on the Log sources page."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.alarms import rules
from dutydesk.alarms.evaluate import decide
from dutydesk.alarms.models import Alarm
from dutydesk.intake import logs
from dutydesk.intake.demo import seed_intake
from dutydesk.intake.log_sources import create_log_source, scan_source
from dutydesk.metrics.models import MetricPoint
from dutydesk.web.templating import TEMPLATE_DIRS
from dutydesk.web.words import iso_moment, plural
from tests.conftest import make_user, sign_in


def test_counts_take_the_singular_for_exactly_one() -> None:
    assert plural(1, "time") == "1 time"
    assert plural(2, "time") == "2 times"
    assert plural(0, "ticket") == "0 tickets"
    assert plural(3, "entry", "entries") == "3 entries"


def test_moments_are_iso_with_their_offset_in_utc_by_default() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    moment = dt.datetime(2026, 11, 2, 10, 30, 5, tzinfo=paris)
    assert iso_moment(moment) == "2026-11-02 09:30+00:00"
    assert (
        iso_moment(dt.datetime(2026, 11, 2, 9, 30, 5), seconds=True) == "2026-11-02 09:30:05+00:00"
    )
    assert iso_moment(None) == ""


def test_no_page_asks_for_a_date_in_the_browsers_local_form() -> None:
    # Chromium shows type=date and datetime-local inputs as mm/dd/yyyy (or the local order)
    # and refuses typed ISO text; every date field is plain text with a YYYY-MM-DD hint.
    found = []
    for folder in TEMPLATE_DIRS:
        for template in folder.rglob("*.html"):
            text = template.read_text()
            if re.search(r'type="(date|datetime-local)"', text):
                found.append(template.name)
    assert found == []


def test_alarm_pages_name_tickets_by_key_and_count_in_words(
    client: TestClient, db: Session
) -> None:
    seed_intake(db, registry.DemoContext(password="x", made=[]))
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/alarms").text
    ticket_id = db.scalar(select(Alarm.ticket_id).where(Alarm.ticket_id.is_not(None)).limit(1))
    assert f'<a href="/tickets/DD-{ticket_id}">DD-{ticket_id}</a>' in page
    assert "#" + str(ticket_id) + "<" not in page
    for alarm in db.scalars(select(Alarm).where(Alarm.ticket_id.is_not(None))):
        shown = client.get(f"/alarms/{alarm.id}").text
        assert f">DD-{alarm.ticket_id}</a>" in shown
        times = "1 time)" if alarm.occurrences == 1 else f"{alarm.occurrences} times)"
        assert times in shown
    assert any(alarm.occurrences == 1 for alarm in db.scalars(select(Alarm)))


def test_the_log_sources_page_lists_the_demos_source_and_counts_in_words(
    client: TestClient, db: Session, home: Path
) -> None:
    seed_intake(db, registry.DemoContext(password="x", made=[]))
    folder = home / "logs" / "one"
    folder.mkdir(parents=True)
    (folder / "a.log").write_text("2026-11-02 09:00:00,000 INFO [main] x.Y - started\n")
    single = create_log_source(db, name="one-line", glob=str(folder / "*.log"), actor="t")
    scan_source(db, single, dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC))
    db.commit()
    sign_in(client, db, make_user(db, "admin"))
    page = client.get("/log-sources").text
    assert "<td>export-worker</td>" in page
    assert f"<code>{home / 'logs' / 'export-worker'}/*.log*</code>" in page
    assert "1 file, 1 line" in page


def test_the_audit_filter_takes_and_shows_a_moment_typed_in_iso_form(
    client: TestClient, db: Session
) -> None:
    sign_in(client, db, make_user(db, "admin"))
    page = client.get("/audit", params={"since": "2026-11-02 10:00", "until": "2026-11-03"})
    assert page.status_code == 200
    assert 'name="since" value="2026-11-02 10:00"' in page.text
    assert 'name="until" value="2026-11-03 00:00"' in page.text


def test_rule_summaries_count_in_words(db: Session) -> None:
    at = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    rules.seed_default_rules(db, "test")
    line = f"{at - dt.timedelta(minutes=5):%Y-%m-%d %H:%M:%S},000 ERROR [main] x.Worker - boom\n"
    logs.ingest(db, "bridge", line, "java", at, strict=False)
    (errors,) = decide(db, rules.get_rule(db, "errors-per-hour"), at)
    assert errors.summary == (
        "ERROR/FATAL lines from bridge: 1 in the last hour, under the threshold of 10."
    )
    db.add(MetricPoint(series="numTotal", at=at - dt.timedelta(days=1), value=5.0, source="t"))
    db.add(MetricPoint(series="numTotal", at=at, value=5.0, source="t"))
    db.flush()
    shift = rules.create_rule(
        db, name="nt", kind="metric_shift", actor="t", params={"series": "numTotal"}
    )
    (short,) = decide(db, shift, at)
    assert short.summary == (
        "Records read has only 1 earlier point, fewer than the 7 a shift test needs."
    )
