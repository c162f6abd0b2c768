"""Export schedules are findable: a navigation entry, current on their own page only."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.people.models import Role
from tests.conftest import make_user, sign_in


def current_entries(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)" aria-current="page">', page)


def test_navigation_links_to_export_schedules_and_marks_the_page_it_is_on(
    client: TestClient, db: Session
) -> None:
    sign_in(client, db, make_user(db, Role.viewer))
    overview = client.get("/").text
    assert '<a href="/exports/schedules">Export schedules</a>' in overview
    schedules = client.get("/exports/schedules")
    assert schedules.status_code == 200
    assert current_entries(schedules.text) == ["/exports/schedules"]
    assert current_entries(client.get("/exports").text) == ["/exports"]
