"""The weekly review: its sections from the desk's data, each linking to its page; the same
sections as Markdown (page, /review.md and the CLI); marking it held turns action items into
tickets; who may mark it, and bad weeks get a 422 naming them."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dutydesk.alarms.models import Alarm
from dutydesk.cli import app
from dutydesk.metrics.service import Point, record, record_points
from dutydesk.review import service
from dutydesk.review.models import ReviewMark
from dutydesk.tickets.models import Ticket
from tests.conftest import make_user, sign_in

WEEK = "2026-W48"  # Monday 2026-11-23 to Monday 2026-11-30
MONDAY = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
HALVED = (
    "export.uniqueHealthCodes[s1]: 50 on 2026-11-23 08:00 against a baseline median of 100 "
    "(spread 0, 14 points): -50, -50%, inf MADs"
)


def fill_week(db: Session) -> None:
    """A CI failure, a ticket acknowledged after 10 minutes, and a series that halved."""
    db.add(
        Alarm(
            fingerprint="ci:nightly",
            ticket_key="ci",
            source="ci",
            title="Pipeline nightly-integration failed",
            severity="warning",
            first_fired_at=MONDAY + dt.timedelta(days=1),
            last_fired_at=MONDAY + dt.timedelta(days=2),
            occurrences=3,
        )
    )
    db.add(
        Ticket(
            title="disk full",
            severity="critical",
            first_seen_at=MONDAY + dt.timedelta(days=1),
            last_seen_at=MONDAY + dt.timedelta(days=1),
            acknowledged_at=MONDAY + dt.timedelta(days=1, minutes=10),
        )
    )
    for day in range(-28, 7):
        value = 100.0 if day < 0 else 50.0
        at = MONDAY + dt.timedelta(days=day, hours=8)
        source = f"export:run{day}"
        record(db, source, at, [Point("export.uniqueHealthCodes", value, {"study": "s1"})])
        record(db, source, at, [Point("export.numTotal", 1000.0, {"study": "s1"})])
        # The run's older key for the same number: the trends list the move once.
        record_points(db, source, at, {"uniqueHealthCodes[s1]": value})
    db.flush()


def page_titles(html: str) -> list[str]:
    """The titles of the page's agenda sections."""
    return re.findall(
        r'<section id="review-(?!mark)[^"]+">\s*<h2><a href="[^"]+">([^<]+)</a>', html
    )


def test_the_review_writes_each_section_from_the_desks_data(db: Session) -> None:
    fill_week(db)
    period = service.period_for(db, WEEK)
    assert (period.start, period.end) == (MONDAY, MONDAY + dt.timedelta(days=7))
    sections = {s.key: s for s in service.agenda(db, period)}
    assert sections["ci"].lines == [
        "Pipeline nightly-integration failed: 3 failure(s), still failing"
    ]
    assert sections["tickets"].lines[0] == "1 opened, 0 closed; MTTA 10 min, MTTR n/a"
    # The halved series comes first in the trends; the steady one is not listed.
    assert sections["trends"].lines == [HALVED]
    assert sections["trends"].links == [
        "/dashboards/series?series=export.uniqueHealthCodes%5Bs1%5D&days=30"
    ]
    assert "Records: s1 7000" in sections["export"].lines
    assert all(s.link.startswith("/") for s in sections.values())


def test_page_markdown_and_cli_show_the_same_sections(client: TestClient, db: Session) -> None:
    fill_week(db)
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/review?week={WEEK}")
    assert page.status_code == 200
    titles = page_titles(page.text)
    assert len(titles) == len(service.SECTIONS)
    markdown = client.get(f"/review.md?week={WEEK}").text
    assert re.findall(r"^## (.+)$", markdown, re.M) == titles
    chart = "http://127.0.0.1:8000/dashboards/series?series=export.uniqueHealthCodes%5Bs1%5D"
    assert f"- {HALVED} ([chart]({chart}&days=30))" in markdown
    # The command reads the desk's own database (DUTYDESK_HOME's, migrated here).
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    printed = CliRunner().invoke(app, ["review", "show", "--week", WEEK, "--markdown"])
    assert printed.exit_code == 0, printed.output
    assert re.findall(r"^## (.+)$", printed.output, re.M) == titles


def test_a_bad_week_is_refused_naming_it(client: TestClient, db: Session) -> None:
    sign_in(client, db, make_user(db, "viewer"))
    answer = client.get("/review?week=2026-W99")
    assert answer.status_code == 422 and "2026-W99" in answer.text
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    printed = CliRunner().invoke(app, ["review", "show", "--week", "last"])
    assert printed.exit_code == 2 and "'last' is not an ISO week" in printed.output


def test_marking_a_review_makes_tickets_of_its_action_items_and_starts_the_next(
    client: TestClient, db: Session
) -> None:
    token = sign_in(client, db, make_user(db, "operator"))
    answer = client.post(
        "/review/mark",
        data={
            "csrf_token": token,
            "attendees": "ada, olga",
            "notes": "Export fine.",
            "actions": "Fix the CI mail\n\nRe-drive study-b",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    mark = db.scalar(select(ReviewMark))
    assert mark is not None and mark.attendees == ["ada", "olga"]
    titles = [db.get(Ticket, a.ticket_id).title for a in mark.actions]  # type: ignore[union-attr]
    assert titles == ["Fix the CI mail", "Re-drive study-b"]
    page = client.get("/review").text
    assert "since the last review" in page and f"DD-{mark.actions[0].ticket_id}" in page


def test_only_operators_mark_a_review_and_an_empty_attendee_list_is_refused(
    client: TestClient, db: Session
) -> None:
    token = sign_in(client, db, make_user(db, "viewer"))
    form = {"csrf_token": token, "attendees": "ada"}
    assert client.post("/review/mark", data=form, follow_redirects=False).status_code == 403
    token = sign_in(client, db, make_user(db, "operator"))
    answer = client.post(
        "/review/mark", data={"csrf_token": token, "attendees": " , "}, follow_redirects=False
    )
    assert answer.status_code == 422 and "attendee" in answer.text
