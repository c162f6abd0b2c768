"""The duty pages: rotations with the 8-week calendar, overrides, the secret iCal feed."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.duty.models import DutyOverride, Rotation
from tests.conftest import make_user, sign_in
from tests.duty.conftest import Team


def signed_in(client: TestClient, db: Session, role: str) -> TestClient:
    client.headers["X-CSRF-Token"] = sign_in(client, db, make_user(db, role))
    return client


def test_admin_adds_a_rotation_and_a_bad_time_zone_is_refused_whole(
    client: TestClient, db: Session, team: Team
) -> None:
    signed_in(client, db, "admin")
    bad = client.post("/duty", data={"name": "db", "members": "ana, ben", "time_zone": "Moon/X"})
    assert bad.status_code == 422 and "unknown time zone" in bad.text
    assert db.scalar(select(func.count()).select_from(Rotation)) == 1
    good = client.post(
        "/duty",
        data={
            "name": "db",
            "members": "ben, ana",
            "time_zone": "America/New_York",
            "weekday": "friday",
        },
    )
    assert good.status_code == 303
    page = client.get("/duty")
    assert page.status_code == 200
    assert "db" in page.text and "America/New_York" in page.text
    assert page.text.count('class="calendar"') == 2


def test_operator_adds_an_override_and_overlaps_are_refused(
    client: TestClient, db: Session, team: Team
) -> None:
    signed_in(client, db, "operator")
    url = f"/duty/{team.rotation.id}/overrides"
    form = {"user": "ben", "from": "2000-01-01T00:00", "to": "2100-01-01T00:00", "reason": "x"}
    assert client.post(url, data=form).status_code == 303
    clash = client.post(url, data={**form, "user": "lea"})
    assert clash.status_code == 422 and "overlaps the override of ben" in clash.text
    assert db.scalar(select(func.count()).select_from(DutyOverride)) == 1
    page = client.get("/duty")
    assert re.search(r'class="on-duty">ben<', page.text)


def test_ical_feed_answers_only_to_its_secret_url(
    client: TestClient, db: Session, team: Team
) -> None:
    signed_in(client, db, "admin")
    made = client.post(f"/duty/{team.rotation.id}/feed")
    match = re.search(r'id="feed-url">http://testserver(/duty/feed/[^<]+\.ics)<', made.text)
    assert match, made.text
    client.cookies.clear()
    feed = client.get(match.group(1))
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    assert "SUMMARY:primary: ana" in feed.text
    assert client.get("/duty/feed/not-the-token.ics").status_code == 401
