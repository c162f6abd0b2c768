"""Each person chooses the time zone the console shows dates in: ISO form with the offset,
typed moments read in that zone, the API in UTC whatever the zone, a bad zone refused."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from playwright.sync_api import Route
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dutydesk import migrations
from dutydesk.audit.models import AuditEvent
from dutydesk.cli import app as cli_app
from dutydesk.db import build_engine, transaction
from dutydesk.metrics.service import Point, record
from dutydesk.people import service as people
from dutydesk.people.models import User
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket
from dutydesk.web.params import form_moment
from dutydesk.web.words import iso_moment, shown_in
from tests.browser_support import launched_chromium
from tests.conftest import fresh_database_url, make_user, sign_in
from tests.test_browser import CANVAS_DRAWN

# A Monday in November: Berlin is on CET, UTC+01:00.
SEEN = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def berlin(db: Session, role: str = "operator", name: str = "berta") -> User:
    user = make_user(db, role, name)
    people.set_time_zone(user, "Europe/Berlin")
    db.commit()
    return user


def open_ticket(db: Session) -> Ticket:
    outcome = tickets.open_or_update_ticket(
        db,
        tickets.Alarm(
            source="alertmanager",
            fingerprint="fp-disk",
            title="Disk usage above 90% on db-1",
            description="",
            severity="high",
            payload={},
            occurred_at=SEEN,
        ),
    )
    assert outcome.ticket is not None
    db.commit()
    return outcome.ticket


def post_form(client: TestClient, url: str, data: dict[str, str]) -> int:
    """Post a form as a browser does, with the page's CSRF token in the form."""
    token = client.headers.pop("X-CSRF-Token", None) or ""
    page = client.get("/account").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the account page"
    answer = client.post(url, data={"csrf_token": match.group(1), **data})
    if token:
        client.headers["X-CSRF-Token"] = token
    return int(answer.status_code)


# --- the words --------------------------------------------------------------------------


def test_a_moment_is_shown_with_the_offset_of_the_zone_it_is_shown_in() -> None:
    assert iso_moment(SEEN, zone="Europe/Berlin") == "2026-11-02 10:00+01:00"
    assert iso_moment(SEEN, seconds=True, zone="UTC") == "2026-11-02 09:00:00+00:00"
    summer = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC)
    assert iso_moment(summer, zone="Europe/Berlin") == "2026-07-01 11:00+02:00"
    assert iso_moment(summer, zone="America/New_York") == "2026-07-01 05:00-04:00"
    with shown_in("Asia/Kolkata"):
        assert iso_moment(SEEN) == "2026-11-02 14:30+05:30"
    assert iso_moment(SEEN) == "2026-11-02 09:00+00:00", "outside a page: UTC"


def test_a_moment_typed_without_an_offset_is_read_in_the_persons_zone() -> None:
    with shown_in("Europe/Berlin"):
        typed = form_moment("since", "2026-11-02 10:00")
        named = form_moment("since", "2026-11-02 10:00+00:00")
    assert typed is not None and named is not None
    assert typed.astimezone(dt.UTC) == SEEN
    assert named.astimezone(dt.UTC) == dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
    plain = form_moment("since", "2026-11-02 09:00")
    assert plain is not None and plain.astimezone(dt.UTC) == SEEN


# --- pages ------------------------------------------------------------------------------


def test_a_person_in_berlin_sees_the_tickets_moments_an_hour_ahead_of_utc(
    client: TestClient, db: Session
) -> None:
    ticket = open_ticket(db)
    sign_in(client, db, berlin(db))
    page = client.get(f"/tickets/{ticket.key}").text
    assert "<td>2026-11-02 10:00:00+01:00</td>" in page, "first seen, in Berlin time"
    assert "09:00:00+00:00" not in page
    assert "Times are shown in Europe/Berlin" in page


def test_a_person_in_utc_sees_the_tickets_moments_in_utc(client: TestClient, db: Session) -> None:
    ticket = open_ticket(db)
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/tickets/{ticket.key}").text
    assert "<td>2026-11-02 09:00:00+00:00</td>" in page
    assert "Times are shown in UTC" in page


def test_the_review_page_shows_its_week_in_the_readers_zone(
    client: TestClient, db: Session
) -> None:
    sign_in(client, db, berlin(db, "viewer"))
    page = client.get("/review?week=2026-W45").text  # Monday 2026-11-02 00:00 UTC
    assert "2026-11-02 01:00+01:00 to 2026-11-09 01:00+01:00" in page
    assert "UTC." not in page


def test_the_api_answers_in_utc_whatever_the_callers_zone(client: TestClient, db: Session) -> None:
    ticket = open_ticket(db)
    user = berlin(db)
    made = people.create_token(db, "berta's", ["read"], username=user.username)
    db.commit()
    headers = {"Authorization": f"Bearer {made.secret}"}
    shown = client.get(f"/api/v1/tickets/{ticket.key}", headers=headers).json()
    assert dt.datetime.fromisoformat(shown["first_seen_at"]) == SEEN
    assert shown["first_seen_at"].endswith(("+00:00", "Z"))
    assert client.get("/api/v1/me", headers=headers).json()["time_zone"] == "Europe/Berlin"


def test_a_person_chooses_their_zone_on_their_account_page(client: TestClient, db: Session) -> None:
    user = make_user(db, "viewer", "vera")
    sign_in(client, db, user)
    page = client.get("/account")
    assert page.status_code == 200
    assert 'name="time_zone"' in page.text and "UTC" in page.text
    assert post_form(client, "/account", {"time_zone": "Europe/Berlin"}) == 303
    db.expire_all()
    assert db.get(User, user.id).time_zone == "Europe/Berlin"  # type: ignore[union-attr]
    assert "Times are shown in Europe/Berlin" in client.get("/account?saved=1").text


def test_an_unknown_zone_is_refused_naming_the_field(client: TestClient, db: Session) -> None:
    user = make_user(db, "viewer", "vera")
    sign_in(client, db, user)
    token = client.headers.pop("X-CSRF-Token", None)
    page = client.get("/account").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    answer = client.post(
        "/account", data={"csrf_token": csrf.group(1), "time_zone": "Mars/Olympus"}
    )
    assert answer.status_code == 400
    assert "time_zone &#39;Mars/Olympus&#39; is not a time zone" in answer.text
    assert 'aria-invalid="true"' in answer.text
    if token:
        client.headers["X-CSRF-Token"] = token
    db.expire_all()
    assert db.get(User, user.id).time_zone == "UTC"  # type: ignore[union-attr]


def test_an_admin_sets_someones_zone_on_the_people_page(client: TestClient, db: Session) -> None:
    other = make_user(db, "operator", "otto")
    sign_in(client, db, make_user(db, "admin", "ada"))
    data = {"role": "operator", "active": "true", "time_zone": "America/Chicago"}
    assert post_form(client, f"/users/{other.id}", data) == 303
    bad = {**data, "time_zone": "Europe/Atlantis"}
    assert post_form(client, f"/users/{other.id}", bad) == 400
    db.expire_all()
    assert db.get(User, other.id).time_zone == "America/Chicago"  # type: ignore[union-attr]
    assert 'value="America/Chicago"' in client.get("/users").text


def test_an_audit_filter_typed_in_berlin_time_finds_the_right_utc_instant(
    client: TestClient, db: Session
) -> None:
    user = berlin(db, "admin", "ada")
    for minutes, object_id in ((-30, "before"), (30, "after")):
        db.add(
            AuditEvent(
                at=SEEN + dt.timedelta(minutes=minutes),
                actor="t",
                action="update",
                object_type="marker",
                object_id=object_id,
                before=None,
                after=None,
                diff={},
            )
        )
    db.commit()
    sign_in(client, db, user)
    # 10:00 in Berlin is 09:00 UTC: the event at 08:30 UTC is before it, 09:30 UTC after.
    page = client.get("/audit", params={"since": "2026-11-02 10:00", "object_type": "marker"})
    assert page.status_code == 200
    assert 'name="since" value="2026-11-02 10:00"' in page.text, "shown back as typed"
    assert "<td>marker after</td>" in page.text
    assert "<td>marker before</td>" not in page.text


# --- command line -----------------------------------------------------------------------


def test_the_command_line_sets_a_users_zone_and_refuses_an_unknown_one(home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli_app, ["db", "upgrade"]).exit_code == 0
    added = runner.invoke(
        cli_app, ["users", "add", "ulla", "--role", "viewer", "--time-zone", "Europe/Vienna"]
    )
    assert added.exit_code == 0, added.output
    changed = runner.invoke(cli_app, ["users", "time-zone", "ulla", "Asia/Tokyo"])
    assert changed.exit_code == 0, changed.output
    assert "ulla: dates shown in Asia/Tokyo" in changed.stdout
    refused = runner.invoke(cli_app, ["users", "time-zone", "ulla", "Tokyo"])
    assert refused.exit_code == 2
    assert "time_zone 'Tokyo' is not a time zone" in refused.stderr
    with transaction() as session:
        assert session.scalar(select(User.time_zone).where(User.username == "ulla")) == (
            "Asia/Tokyo"
        )


# --- migration --------------------------------------------------------------------------


def test_the_time_zone_column_comes_with_utc_for_existing_people_and_goes_again(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database_url(backend, tmp_path, "user_time_zone")
    migrations.upgrade(url, "0025")
    engine = build_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO users (id, username, email, role, password_hash, active, "
                    "created_at) VALUES (1, 'ada', NULL, 'admin', 'x', :yes, :at)"
                ),
                {"yes": True, "at": SEEN},
            )
            # A row pointing at the user: the column comes and goes without copying `users`.
            connection.execute(
                sa.text(
                    "INSERT INTO web_sessions (id, token_hash, user_id, created_at, expires_at, "
                    "client) VALUES (1, :hash, 1, :at, :at, NULL)"
                ),
                {"hash": "a" * 64, "at": SEEN},
            )
        migrations.upgrade(url, "0026")
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT time_zone FROM users")) == "UTC"
        migrations.downgrade(url, "0025")
        columns = {column["name"] for column in sa.inspect(engine).get_columns("users")}
        assert "time_zone" not in columns
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT username FROM users")) == "ada"
            assert connection.scalar(sa.text("SELECT user_id FROM web_sessions")) == 1
        migrations.upgrade(url, "0026")
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT time_zone FROM users")) == "UTC"
    finally:
        engine.dispose()


# --- charts ------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_chart_draws_its_time_axis_in_the_readers_zone(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    for back in range(10):
        at = now - dt.timedelta(days=back)
        record(db, "test", at, [Point("export.numTotal", 1_000.0 + back)])
    db.commit()
    sign_in(client, db, berlin(db, "viewer", "vera"))
    origin = "http://desk.test"
    errors: list[str] = []

    def answer(route: Route) -> None:
        # The page and its static files come from the app in-process, as the server gives them.
        url = route.request.url.removeprefix(origin)
        got = client.get(url)
        route.fulfill(status=got.status_code, headers=dict(got.headers), body=got.content)

    with launched_chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route(f"{origin}/**", answer)
        page.goto(f"{origin}/dashboards/series?series=export.numTotal&days=30")
        canvas = page.locator("div.chart canvas").first
        canvas.wait_for()
        assert canvas.evaluate(CANVAS_DRAWN), "the chart is blank"
        # 09:00 UTC on 2 November is 10:00 on Berlin's clock, whatever the browser's own zone.
        hour = page.evaluate(f"deskTzDate({SEEN.timestamp()}).getHours()")
        page.screenshot(path=tmp_path / "chart-berlin.png")
    assert errors == []
    assert hour == 10
