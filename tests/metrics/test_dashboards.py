"""Dashboards: every series browsable by name and label; a chart's points with the shift
rules' baseline band, the points where a rule fired and annotations; saved dashboards with the
export and intake-and-tickets defaults; the JSON API; who may see and save them."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.alarms import rules, silences
from dutydesk.alarms.models import RuleEvaluation
from dutydesk.db import utcnow
from dutydesk.metrics.service import Point, record
from dutydesk.people import service as people
from tests.conftest import make_user, sign_in

SERIES = "export.uniqueHealthCodes[study-a]"


def fill(db: Session) -> dt.datetime:
    """Thirty days of 100 unique participants for study-a, then a day of 50, whose shift rule
    fired while silenced; 40 rows per day for study-b's table; a silence over the drop."""
    today = utcnow().replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    for back in range(30, -1, -1):
        at = today - dt.timedelta(days=back)
        value = 50.0 if back == 0 else 100.0 + (back % 3)
        record(
            db,
            f"export:run{back}",
            at,
            [Point("export.uniqueHealthCodes", value, {"study": "study-a"})],
        )
        record(
            db,
            f"export:run{back}",
            at,
            [Point("export.lineCount", 40.0, {"study": "study-b", "table": "surveys"})],
        )
    rule = rules.create_rule(
        db,
        actor="ann",
        name="participants-drop",
        kind="metric_shift",
        params={"series": "export.uniqueHealthCodes[*", "k": 3.0},
    )
    db.add(
        RuleEvaluation(
            rule_id=rule.id,
            at=today,
            instance=SERIES,
            firing=True,
            silenced=True,
            summary="dropped by half",
        )
    )
    silences.create_silence(
        db,
        starts_at=today - dt.timedelta(hours=1),
        ends_at=today + dt.timedelta(hours=2),
        reason="study-a migration",
        actor="ann",
        rule=rule,
    )
    db.commit()
    return today


def viewer_client(client: TestClient, db: Session) -> TestClient:
    sign_in(client, db, make_user(db, "viewer"))
    return client


def test_chart_has_the_rules_band_the_fired_point_and_the_silence(
    client: TestClient, db: Session
) -> None:
    today = fill(db)
    viewer_client(client, db)
    answer = client.get("/api/v1/series/chart", params={"series": SERIES, "days": 10})
    assert answer.status_code == 200, answer.text
    chart = answer.json()
    assert chart["rule"] == "participants-drop" and chart["k"] == 3.0
    assert chart["times"][-1] == int(today.timestamp())
    assert chart["values"][-1] == 50.0
    # The band is the median of the previous 14 points and its spread: the drop is below it.
    assert chart["median"][-1] == 101.0
    assert chart["low"][-1] > 50.0 and chart["high"][-1] > chart["median"][-1]
    assert chart["values"][-2] >= chart["low"][-2]
    assert chart["fired"] == [
        {"at": int(today.timestamp()), "silenced": True, "text": "dropped by half"}
    ]
    kinds = {note["kind"] for note in chart["annotations"]}
    assert "silence" in kinds
    silence = next(note for note in chart["annotations"] if note["kind"] == "silence")
    assert "study-a migration" in silence["text"] and silence["end"] > silence["at"]
    # Points before the range are not shown but make the band of the first ones shown.
    assert len(chart["times"]) == 10 and chart["median"][0] is not None


def test_series_are_browsable_by_name_and_label(client: TestClient, db: Session) -> None:
    fill(db)
    viewer_client(client, db)
    every = client.get("/api/v1/series").json()
    assert {item["series"] for item in every} >= {SERIES, "export.lineCount[study-b,surveys]"}
    by_name = client.get("/api/v1/series", params={"name": "lineCount"}).json()
    assert [item["series"] for item in by_name] == ["export.lineCount[study-b,surveys]"]
    assert by_name[0]["labels"] == {"study": "study-b", "table": "surveys"}
    by_label = client.get("/api/v1/series", params={"label": "study=study-a"}).json()
    assert [item["series"] for item in by_label] == [SERIES]
    by_value = client.get("/api/v1/series", params={"label": "surveys"}).json()
    assert [item["series"] for item in by_value] == ["export.lineCount[study-b,surveys]"]
    page = client.get("/dashboards", params={"label": "study=study-a"})
    assert page.status_code == 200
    assert SERIES in page.text and "study-b" not in page.text.split('id="series-browser"')[1]
    one = client.get("/dashboards/series", params={"series": SERIES})
    assert one.status_code == 200 and 'class="chart"' in one.text


def charts_on(page: str) -> list[dict[str, Any]]:
    """The chart data each chart box of a page carries."""
    found = re.findall(r"data-chart='([^']*)'", page)
    return [json.loads(item.replace("&#34;", '"').replace("&#39;", "'")) for item in found]


def test_default_dashboards_show_the_export_drop_with_its_band(
    client: TestClient, db: Session
) -> None:
    fill(db)
    viewer_client(client, db)
    boards = {board["name"]: board for board in client.get("/api/v1/dashboards").json()}
    assert set(boards) >= {"export", "intake and tickets"}
    export = boards["export"]
    data = client.get(f"/api/v1/dashboards/{export['id']}").json()["data"]
    participants = data[0]["charts"]
    assert [chart["series"] for chart in participants] == [SERIES]
    assert participants[0]["values"][-1] == 50.0 < participants[0]["low"][-1]
    rows = data[1]["charts"][0]
    assert rows["step"] == "day" and set(rows["values"]) == {40.0}
    page = client.get(f"/dashboards/{export['id']}")
    assert page.status_code == 200
    assert "uPlot" in page.text and "Unique participants per study" in page.text
    shown = charts_on(page.text)
    assert shown[0]["series"] == SERIES and shown[0]["values"][-1] == 50.0
    intake = client.get(f"/dashboards/{boards['intake and tickets']['id']}")
    assert intake.status_code == 200 and "Tickets opened per week" in intake.text


def test_weekly_step_sums_the_points_of_each_week(client: TestClient, db: Session) -> None:
    monday = (utcnow() - dt.timedelta(days=21)).replace(hour=9, minute=0, second=0, microsecond=0)
    monday -= dt.timedelta(days=monday.weekday())
    for day in range(14):
        at = monday + dt.timedelta(days=day)
        record(db, f"tickets:{day}", at, [Point("tickets.opened", 2.0, {"severity": "critical"})])
    db.commit()
    viewer_client(client, db)
    chart = client.get(
        "/api/v1/series/chart",
        params={"series": "tickets.opened[critical]", "days": 40, "step": "week"},
    ).json()
    assert chart["values"] == [14.0, 14.0]
    assert chart["times"][0] == int(monday.replace(hour=0).timestamp())


def test_operators_save_dashboards_viewers_may_not(client: TestClient, db: Session) -> None:
    fill(db)
    csrf = sign_in(client, db, make_user(db, "viewer"))
    refused = client.post(
        "/dashboards",
        data={"csrf_token": csrf, "name": "mine", "series": "export.*"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    csrf = sign_in(client, db, make_user(db, "operator"))
    saved = client.post(
        "/dashboards",
        data={"csrf_token": csrf, "name": "mine", "series": "export.lineCount*\n", "step": "day"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    page = client.get(saved.headers["location"])
    assert page.status_code == 200 and "export.lineCount[study-b,surveys]" in page.text
    no_csrf = client.post("/dashboards", data={"name": "x", "series": "a"})
    assert no_csrf.status_code == 403


def test_api_saves_dashboards_with_a_write_token_and_names_bad_input(
    client: TestClient, db: Session
) -> None:
    read = people.create_token(db, "reader", ["read"]).secret
    write = people.create_token(db, "writer", ["write"]).secret
    db.commit()
    body = {"name": "api", "range_days": 7, "panels": [{"series": "export.*", "step": "week"}]}
    as_reader = client.post(
        "/api/v1/dashboards", json=body, headers={"Authorization": f"Bearer {read}"}
    )
    assert as_reader.status_code == 403
    headers = {"Authorization": f"Bearer {write}"}
    made = client.post("/api/v1/dashboards", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["panels"] == [{"title": "export.*", "series": "export.*", "step": "week"}]
    bad_step = {**body, "panels": [{"series": "x", "step": "month"}]}
    answer = client.post("/api/v1/dashboards", json=bad_step, headers=headers)
    assert answer.status_code == 422 and "step" in answer.text
    assert (
        client.post("/api/v1/dashboards", json={**body, "panels": []}, headers=headers).status_code
        == 422
    )
    chart = client.get(
        "/api/v1/series/chart", params={"series": SERIES, "step": "hour"}, headers=headers
    )
    assert chart.status_code == 422 and "step" in chart.text
    assert (
        client.get(
            "/api/v1/series/chart", params={"series": SERIES, "days": 0}, headers=headers
        ).status_code
        == 422
    )
    assert client.get("/api/v1/dashboards/999", headers=headers).status_code == 404


def test_dashboards_need_a_sign_in(client: TestClient) -> None:
    assert client.get("/api/v1/series").status_code == 401
    assert client.get("/api/v1/dashboards").status_code == 401
    page = client.get("/dashboards", follow_redirects=False)
    assert page.status_code in (302, 303, 401)
