"""The review page's charts: each moved series as its dashboard chart (points and baseline band)
over the weeks before and the reviewed week, shaded; tickets opened and closed per week; export
records per day; the page carries them for the desk's chart script."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms import rules
from dutydesk.alarms.evaluate import evaluate_rule
from dutydesk.metrics import dashboards
from dutydesk.metrics.models import Dashboard
from dutydesk.review import charts, service
from tests.conftest import make_user, sign_in
from tests.review.test_review import MONDAY, WEEK, fill_week

SERIES = "export.uniqueHealthCodes[s1]"


def test_the_charts_show_the_moved_series_with_its_band_and_the_week_shaded(
    db: Session,
) -> None:
    fill_week(db)
    period = service.period_for(db, WEEK)
    made = charts.page_charts(db, period, service.agenda(db, period))
    (trend,) = made["trends"]
    assert trend["series"] == SERIES
    assert trend["period"] == [
        int(MONDAY.timestamp()),
        int((MONDAY + dt.timedelta(days=7)).timestamp()),
    ]
    # Four weeks before the reviewed one, then the week itself: 100 a day, then 50.
    assert trend["times"][0] >= int((MONDAY - dt.timedelta(days=28)).timestamp())
    assert trend["values"][0] == 100.0 and trend["values"][-1] == 50.0
    inside = [i for i, t in enumerate(trend["times"]) if t >= trend["period"][0]]
    assert [trend["values"][i] for i in inside] == [50.0] * 7
    assert trend["median"][inside[0]] == 100.0, "the band is the baseline's, as on the dashboard"
    tickets = made["tickets"]
    assert [s["label"] for s in tickets["series"]] == ["opened", "closed"]
    opened = dict(zip(tickets["times"], tickets["series"][0]["values"], strict=True))
    assert opened[int(MONDAY.timestamp())] == 1 and sum(opened.values()) == 1
    records = made["export"]
    assert set(records["series"][0]["values"]) == {1000.0}
    assert len(records["times"]) == 35  # 28 days before and the week's 7


def test_the_page_carries_its_charts_for_the_chart_script(client: TestClient, db: Session) -> None:
    fill_week(db)
    db.commit()
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/review?week={WEEK}").text
    assert '<script src="/static/charts.js" defer></script>' in page
    data = [
        json.loads(html.unescape(found))
        for found in re.findall(r"class=\"(?:counts-)?chart\" data-chart='([^']*)'", page)
    ]
    assert [d["series"] for d in data if "period" in d] == [SERIES]
    assert len(data) == 3, "the moved series, tickets per week, records per day"
    assert client.get("/static/charts.js").status_code == 200


def test_a_quiet_week_has_no_trend_charts_and_says_so(client: TestClient, db: Session) -> None:
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/review?week={WEEK}").text
    assert "No series moved beyond its baseline band." in page
    assert 'class="chart"' not in page


def test_the_seeded_shift_rule_reads_the_charted_series_so_its_fired_point_is_drawn(
    db: Session,
) -> None:
    fill_week(db)
    rules.seed_default_rules(db, "test")
    rule = rules.get_rule(db, "shift-unique-health-codes")
    drop = MONDAY + dt.timedelta(hours=8)
    outcomes = evaluate_rule(db, rule, drop)
    assert [o.decision.instance for o in outcomes if o.decision.firing] == [SERIES]
    dashboards.ensure_defaults(db)
    board = db.scalars(select(Dashboard).where(Dashboard.name == "export")).one()
    panel = dashboards.dashboard_data(db, board, now=MONDAY + dt.timedelta(days=7))[0]
    chart = next(c for c in panel["charts"] if c["series"] == SERIES)
    assert [f["at"] for f in chart["fired"]] == [int(drop.timestamp())]
    # The review's chart of the moved series draws it too.
    period = service.period_for(db, WEEK)
    (trend,) = charts.trend_charts(db, period, [SERIES])
    assert [f["at"] for f in trend["fired"]] == [int(drop.timestamp())]


def test_a_shift_rule_made_on_the_older_key_still_evaluates(db: Session) -> None:
    fill_week(db)
    rule = rules.create_rule(
        db,
        name="old-unique",
        kind="metric_shift",
        actor="test",
        params={"series": "uniqueHealthCodes[*]", "direction": "drop", "min_relative": 0.3},
    )
    outcomes = evaluate_rule(db, rule, MONDAY + dt.timedelta(hours=8))
    assert [o.decision.instance for o in outcomes if o.decision.firing] == ["uniqueHealthCodes[s1]"]
