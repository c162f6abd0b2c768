"""The series table: `record` adds each series once, the series list reads it, retention drops
series left without points, and the migration fills it from the points already stored. The
dashboard reads each panel in one go and gives the same charts as one series' chart."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from dutydesk import migrations
from dutydesk.alarms import rules
from dutydesk.alarms.models import RuleEvaluation
from dutydesk.db import build_engine
from dutydesk.metrics import dashboards, service
from dutydesk.metrics.models import Dashboard, MetricSeries, Period
from dutydesk.metrics.service import Point
from tests.conftest import fresh_database_url, make_user, sign_in

AT = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def series_rows(db: Session) -> list[tuple[str, str, dict[str, str]]]:
    """The series table's key, name and labels, by key."""
    query = select(MetricSeries.key, MetricSeries.name, MetricSeries.labels)
    return [(key, name, labels) for key, name, labels in db.execute(query.order_by("key"))]


def test_record_adds_each_series_once_with_its_name_and_labels(db: Session) -> None:
    labels = {"study": "study-a", "table": "surveys"}
    for hours in range(3):
        service.record(
            db,
            f"export:{hours}",
            AT + dt.timedelta(hours=hours),
            [Point("export.lineCount", 10.0, labels), Point("export.duration", 5.0)],
        )
    service.record_points(db, "export:3", AT, {"uniqueHealthCodes[study-b]": 4.0})
    db.flush()
    assert series_rows(db) == [
        ("export.duration", "export.duration", {}),
        ("export.lineCount[study-a,surveys]", "export.lineCount", labels),
        ("uniqueHealthCodes[study-b]", "uniqueHealthCodes", {"key": "study-b"}),
    ]
    assert service.series_names(db, "export.lineCount") == [
        ("export.lineCount[study-a,surveys]", labels)
    ]
    assert service.series_keys(db) == [key for key, _, _ in series_rows(db)]


def test_a_series_another_writer_added_first_is_kept_not_doubled(db: Session) -> None:
    db.add(MetricSeries(key="probes.latency_ms[web]", name="probes.latency_ms", labels={}))
    db.flush()
    # As if the check ran before the other writer's row landed: the clash is absorbed.
    service.ensure_series(
        db,
        {
            "probes.latency_ms[web]": Point("probes.latency_ms", 1.0, {"rule": "web"}),
            "probes.latency_ms[api]": Point("probes.latency_ms", 1.0, {"rule": "api"}),
        },
    )
    db.flush()
    assert [key for key, _, _ in series_rows(db)] == [
        "probes.latency_ms[api]",
        "probes.latency_ms[web]",
    ]


def test_retention_drops_series_left_with_neither_points_nor_roll_ups(db: Session) -> None:
    service.record(db, "s", AT - dt.timedelta(days=800), [Point("gone", 1.0)])
    service.record(db, "s", AT - dt.timedelta(days=200), [Point("rolled", 1.0)])
    service.record(db, "s", AT - dt.timedelta(hours=2), [Point("fresh", 1.0)])
    service.roll_up(db, Period.day, AT - dt.timedelta(days=201), AT - dt.timedelta(days=199))
    service.prune(db, now=AT)
    db.flush()
    assert service.series_keys(db) == ["fresh", "rolled"]


def test_the_migration_lists_the_series_of_points_written_before(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database_url(backend, tmp_path, "series_keys")
    migrations.upgrade(url, "0024")
    engine = build_engine(url)
    points = sa.table(
        "metric_points",
        sa.column("series", sa.String),
        sa.column("name", sa.String),
        sa.column("labels", sa.JSON),
        sa.column("at", sa.DateTime),
        sa.column("value", sa.Float),
        sa.column("source", sa.String),
    )
    rows = [
        ("export.lineCount[a,t]", "export.lineCount", {"study": "a", "table": "t"}, 1),
        ("export.lineCount[a,t]", "export.lineCount", {"study": "a", "table": "t"}, 2),
        ("numTotal", "numTotal", {}, 1),
    ]
    try:
        with engine.begin() as connection:
            connection.execute(
                points.insert(),
                [
                    {
                        "series": key,
                        "name": name,
                        "labels": labels,
                        "at": AT.replace(tzinfo=None) + dt.timedelta(days=day),
                        "value": 1.0,
                        "source": "x",
                    }
                    for key, name, labels, day in rows
                ],
            )
        migrations.upgrade(url)
        with engine.connect() as connection:
            found = connection.execute(
                sa.text("SELECT key, name, labels FROM metric_series ORDER BY key")
            ).all()
        migrations.downgrade(url, "0024")
        assert "metric_series" not in sa.inspect(engine).get_table_names()
        migrations.upgrade(url)
    finally:
        engine.dispose()
    labels = [row[2] if isinstance(row[2], dict) else json.loads(row[2]) for row in found]
    assert [(row[0], row[1]) for row in found] == [
        ("export.lineCount[a,t]", "export.lineCount"),
        ("numTotal", "numTotal"),
    ]
    assert labels == [{"study": "a", "table": "t"}, {}]


def test_a_dashboard_draws_each_series_as_its_own_chart_would(db: Session) -> None:
    """The dashboard reads every panel's series in one statement; its charts are those the
    one-series chart gives (points before the range, bands, per-rule parameters, fired points,
    day and week sums)."""
    now = AT
    for back in range(60, -1, -1):
        at = now - dt.timedelta(days=back, hours=3)
        for study in ("a", "b", "c"):
            value = 100.0 + (back % 5) + (50.0 if study == "c" and back < 3 else 0.0)
            service.record(
                db,
                f"export:{back}",
                at,
                [
                    Point("export.uniqueHealthCodes", value, {"study": study}),
                    Point("export.lineCount", 10.0 * (back % 3), {"study": study, "t": "s"}),
                ],
            )
    rule = rules.create_rule(
        db,
        actor="ann",
        name="participants",
        kind="metric_shift",
        params={"series": "export.uniqueHealthCodes[c*", "k": 3.0, "points": 7},
    )
    for back in (1, 2, 40):
        db.add(
            RuleEvaluation(
                rule_id=rule.id,
                at=now - dt.timedelta(days=back),
                instance="export.uniqueHealthCodes[c]",
                firing=True,
                silenced=back == 2,
                summary=f"up {back}",
            )
        )
    board = dashboards.save_dashboard(
        db,
        name="check",
        range_days=21,
        actor="ann",
        panels=[
            {"title": "participants", "series": "export.uniqueHealthCodes[*"},
            {"title": "rows per week", "series": "export.lineCount[*", "step": "week"},
            {
                "title": "participants per day",
                "series": "export.uniqueHealthCodes[*",
                "step": "day",
            },
        ],
    )
    db.flush()
    data = dashboards.dashboard_data(db, board, now=now)
    since = now - dt.timedelta(days=21)
    for panel in data:
        assert [chart["series"] for chart in panel["charts"]] == sorted(
            key for key in service.series_keys(db) if key.startswith(panel["series"][:-1])
        )
        for shown in panel["charts"]:
            alone = dashboards.chart(
                db, shown["series"], since=since, until=now, step=panel["step"]
            )
            assert shown == alone
    drawn = data[0]["charts"][2]
    assert drawn["rule"] == "participants" and drawn["points"] == 7
    assert [item["text"] for item in drawn["fired"]] == ["up 2", "up 1"]
    assert drawn["median"][0] is not None and drawn["values"][-1] > drawn["high"][-1]


def test_default_dashboards_exist_once_the_web_process_has_started(
    backend: str, tmp_path: Path
) -> None:
    from dutydesk.db import session_factory
    from dutydesk.settings import get_settings
    from dutydesk.web.app import create_app

    url = fresh_database_url(backend, tmp_path, "default_boards")
    migrations.upgrade(url)
    engine = build_engine(url)
    factory = session_factory(engine)

    def names() -> list[str]:
        with factory() as session:
            return list(session.scalars(select(Dashboard.name).order_by(Dashboard.name)))

    try:
        assert names() == []
        for _ in range(2):
            with TestClient(create_app(get_settings(), factory)):
                pass
            assert names() == ["export", "intake and tickets"]
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Dashboard)) == 2
    finally:
        engine.dispose()


def test_reading_the_dashboards_writes_nothing(
    client: TestClient, db: Session, connection: Connection
) -> None:
    """The pages and the API read: not one INSERT, UPDATE or DELETE while they answer."""
    for back in range(20):
        service.record(
            db, f"export:{back}", AT - dt.timedelta(days=back), [Point("export.lineCount", 1.0)]
        )
    sign_in(client, db, make_user(db, "viewer"))
    board = db.scalar(select(Dashboard).where(Dashboard.name == "export"))
    assert board is not None
    written: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            written.append(statement)

    sa.event.listen(connection, "before_cursor_execute", note)
    try:
        for path in (
            "/dashboards",
            f"/dashboards/{board.id}",
            "/dashboards/series?series=export.lineCount&days=30",
            "/api/v1/dashboards",
            f"/api/v1/dashboards/{board.id}",
            "/api/v1/series",
            "/api/v1/series/chart?series=export.lineCount&step=week",
        ):
            assert client.get(path).status_code == 200, path
    finally:
        sa.event.remove(connection, "before_cursor_execute", note)
    assert written == []


def test_the_charts_band_is_the_shift_tests_median_and_spread() -> None:
    from dutydesk.metrics.shift import median_spread

    for history in (
        [5.0],
        [1.0, 9.0],
        [3.0, 1.0, 2.0, 8.0, 100.0],
        [float(x % 7) for x in range(14)],
    ):
        median, mad = median_spread(history)
        spread = max(3.0 * mad, 0.2 * abs(median))
        assert dashboards._band(history, 3.0, 0.2) == (median, median - spread, median + spread)
