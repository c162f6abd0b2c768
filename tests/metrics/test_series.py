"""Metric series: named, labelled points; hourly and daily roll-ups; retention; the export's
and the desk's own series; the shift rules read them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk import migrations
from dutydesk.alarms import rules
from dutydesk.alarms.evaluate import decide
from dutydesk.alarms.models import RuleEvaluation
from dutydesk.backups.models import BackupTarget, RestoreDrill
from dutydesk.db import build_engine
from dutydesk.export import service as export_service
from dutydesk.export.models import StudyPart
from dutydesk.intake.models import InboxItem, LogCount
from dutydesk.intake.service import create_integration
from dutydesk.metrics import service
from dutydesk.metrics.jobs import roll_up
from dutydesk.metrics.models import MetricPoint, MetricRollup, Period
from dutydesk.metrics.service import Point
from dutydesk.notify.models import Delivery
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Ticket
from tests.conftest import fresh_database_url
from tests.export.test_runs import END, START, drain
from tests.test_migrations import ROWS

AT = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def points_of(db: Session, name: str) -> dict[str, float]:
    """Every point of series named `name`, by key."""
    query = select(MetricPoint.series, MetricPoint.value).where(MetricPoint.name == name)
    return {key: value for key, value in db.execute(query)}


def test_points_have_a_name_labels_and_a_rerun_replaces_them(db: Session) -> None:
    labels = {"study": "study-a", "table": "study-a-default"}
    service.record(db, "export:k", AT, [Point("export.lineCount", 10, labels)])
    service.record(db, "export:k", AT, [Point("export.lineCount", 12, labels)])
    (point,) = db.scalars(select(MetricPoint).where(MetricPoint.name == "export.lineCount"))
    assert (point.series, point.labels, point.value) == (
        "export.lineCount[study-a,study-a-default]",
        labels,
        12.0,
    )
    assert service.series_names(db, "export.lineCount") == [(point.series, labels)]


def test_plain_keys_keep_their_key_and_get_a_name(db: Session) -> None:
    service.record_points(
        db, "export:k", AT, {"uniqueHealthCodes[study-a]": 5, "surveyWorker[s].errorCount": 1}
    )
    rows = {p.series: (p.name, p.labels) for p in db.scalars(select(MetricPoint))}
    assert rows == {
        "uniqueHealthCodes[study-a]": ("uniqueHealthCodes", {"key": "study-a"}),
        "surveyWorker[s].errorCount": ("surveyWorker[s].errorCount", {}),
    }


def test_roll_ups_sum_hours_and_days_and_running_again_changes_nothing(db: Session) -> None:
    key = "export.numTotal[study-a]"
    for minutes, value in ((5, 4.0), (35, 8.0), (65, 1.0)):
        service.record(
            db,
            f"s{minutes}",
            AT + dt.timedelta(minutes=minutes),
            [Point("export.numTotal", value, {"study": "study-a"})],
        )
    for _ in range(2):
        service.roll_up(db, Period.hour, AT - dt.timedelta(hours=1), AT + dt.timedelta(hours=3))
        service.roll_up(db, Period.day, AT - dt.timedelta(days=1), AT + dt.timedelta(days=1))
        db.flush()
    hours = [
        (r.at, r.count, r.total, r.low, r.high, r.last)
        for r in service.rollups(db, key, Period.hour)
    ]
    assert hours == [
        (AT, 2, 12.0, 4.0, 8.0, 8.0),
        (AT + dt.timedelta(hours=1), 1, 1.0, 1.0, 1.0, 1.0),
    ]
    (day,) = service.rollups(db, key, Period.day)
    assert (day.at, day.count, day.mean, day.labels) == (
        AT.replace(hour=0),
        3,
        13.0 / 3,
        {"study": "study-a"},
    )


def test_retention_deletes_raw_points_and_roll_ups_past_their_days(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_METRICS_RAW_DAYS", "2")
    monkeypatch.setenv("DUTYDESK_METRICS_HOURLY_DAYS", "5")
    get_settings.cache_clear()
    for days in (1, 3, 7):
        service.record(db, "s", AT - dt.timedelta(days=days), [Point("x", 1.0)])
    service.roll_up(db, Period.hour, AT - dt.timedelta(days=8), AT)
    service.roll_up(db, Period.day, AT - dt.timedelta(days=8), AT)
    counts = service.prune(db, now=AT)
    assert counts == {"points": 2, "hour": 1, "day": 0}
    assert [at for at, _ in service.series(db, "x")] == [AT - dt.timedelta(days=1)]
    assert len(service.rollups(db, "x", Period.hour)) == 2
    assert len(service.rollups(db, "x", Period.day)) == 3


def test_an_export_run_writes_its_metrics_per_study_and_table(
    records: Path,
    db: Session,
    factory: sessionmaker[Session],
) -> None:
    run = export_service.start_run(
        db,
        {"useLastExportTime": False, "startDateTime": START, "endDateTime": END},
        created_by="test",
    )
    db.commit()
    drain(db, factory)
    db.refresh(run)
    parts = {p.study_id: p.metrics for p in db.scalars(select(StudyPart))}
    assert parts
    line_counts = points_of(db, "export.lineCount")
    for study, metrics in parts.items():
        for name, count in metrics["counters"].items():
            if name.endswith(".lineCount"):
                key = f"export.lineCount[{study},{name.removesuffix('.lineCount')}]"
                assert line_counts[key] == count
        assert (
            points_of(db, "export.numTotal")[f"export.numTotal[{study}]"]
            == (metrics["counters"]["numTotal"])
        )
        assert (
            points_of(db, "export.uniqueHealthCodes")[f"export.uniqueHealthCodes[{study}]"]
            == metrics["uniqueHealthCodes"]
        )
    accepted = points_of(db, "export.accepted")
    assert accepted and all(key.count(",") == 1 for key in accepted)
    assert sum(points_of(db, "export.numTotal").values()) == run.metrics["counters"]["numTotal"]
    (duration,) = points_of(db, "export.duration").values()
    assert duration >= 0
    # The run's points sit at its request's end, as its older series do.
    ats = set(
        db.scalars(select(MetricPoint.at).where(MetricPoint.source == f"export:{run.run_key}"))
    )
    assert len(ats) == 1


def test_the_roll_up_job_counts_logs_intake_tickets_deliveries_probes_and_drills(
    db: Session,
) -> None:
    hour = AT - dt.timedelta(hours=1)
    db.add_all(
        [
            LogCount(source="bridge", minute=hour, level="ERROR", count=3),
            LogCount(
                source="bridge", minute=hour + dt.timedelta(minutes=59), level="ERROR", count=4
            ),
            LogCount(source="bridge", minute=AT, level="ERROR", count=100),
        ]
    )
    integration = create_integration(
        db, name="alertmanager", kind="alertmanager", actor="test"
    ).integration
    for minute in (1, 2):
        db.add(
            InboxItem(
                received_at=hour + dt.timedelta(minutes=minute),
                source="http",
                integration_id=integration.id,
                method="POST",
                path="/intake",
                outcome="accepted",
            )
        )
    ticket = Ticket(
        title="disk full",
        severity="critical",
        first_seen_at=hour + dt.timedelta(minutes=10),
        acknowledged_at=hour + dt.timedelta(minutes=15),
        closed_at=hour + dt.timedelta(minutes=40),
    )
    db.add(ticket)
    db.flush()
    db.add(
        Delivery(
            ticket_id=ticket.id,
            subject="t",
            target="ada",
            channel="mail",
            kind="email",
            address="ada@example.org",
            reason="opened",
            title="disk full",
            state="sent",
            created_at=hour + dt.timedelta(minutes=11),
        )
    )
    probe = rules.create_rule(
        db, name="api-up", kind="http_probe", actor="t", params={"url": "http://127.0.0.1:9/"}
    )
    db.add_all(
        RuleEvaluation(
            rule_id=probe.id,
            at=hour + dt.timedelta(minutes=minute),
            firing=False,
            summary="200",
            numbers={"latency_ms": latency},
        )
        for minute, latency in ((5, 100.0), (35, 300.0))
    )
    target = BackupTarget(
        **{k: v for k, v in ROWS["backup_targets"].items() if k not in ("id", "created_at")}
    )
    db.add(target)
    db.flush()
    db.add(
        RestoreDrill(
            target_id=target.id,
            state="succeeded",
            started_at=hour,
            finished_at=hour + dt.timedelta(minutes=2),
            rpo_seconds=240.0,
            rto_seconds=95.0,
        )
    )
    db.flush()
    result = roll_up(db, {"now": AT.isoformat()})
    assert result["collected"] >= 6
    assert points_of(db, "logs.lines") == {"logs.lines[bridge,ERROR]": 7.0}
    assert points_of(db, "intake.items") == {"intake.items[alertmanager,accepted]": 2.0}
    assert points_of(db, "tickets.opened") == {"tickets.opened[critical]": 1.0}
    assert points_of(db, "tickets.mtta_seconds") == {"tickets.mtta_seconds[critical]": 300.0}
    assert points_of(db, "tickets.mttr_seconds") == {"tickets.mttr_seconds[critical]": 1800.0}
    assert points_of(db, "notify.deliveries") == {"notify.deliveries[email,sent]": 1.0}
    assert points_of(db, "probes.latency_ms") == {"probes.latency_ms[api-up]": 200.0}
    assert points_of(db, "backups.rpo_seconds") == {"backups.rpo_seconds[ops]": 240.0}
    assert points_of(db, "backups.rto_seconds") == {"backups.rto_seconds[ops]": 95.0}
    # The hour's roll-ups are there, and running the job again changes no count.
    rolled = db.scalar(select(sa.func.count()).select_from(MetricRollup))
    roll_up(db, {"now": AT.isoformat()})
    assert db.scalar(select(sa.func.count()).select_from(MetricRollup)) == rolled
    assert len(points_of(db, "logs.lines")) == 1


def test_a_shift_rule_reads_labelled_series(db: Session) -> None:
    for day in range(10, 0, -1):
        service.record(
            db,
            f"run{day}",
            AT - dt.timedelta(days=day),
            [Point("export.uniqueHealthCodes", 100.0 + day % 3, {"study": "study-a"})],
        )
    service.record(db, "run0", AT, [Point("export.uniqueHealthCodes", 50.0, {"study": "study-a"})])
    db.flush()
    rule = rules.create_rule(
        db,
        name="uhc",
        kind="metric_shift",
        actor="t",
        params={"series": "export.uniqueHealthCodes[*]"},
    )
    (decision,) = decide(db, rule, AT)
    assert decision.firing and decision.instance == "export.uniqueHealthCodes[study-a]"


def test_the_migration_names_and_labels_points_written_before(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path, "series_migration")
    migrations.upgrade(url, "0017")
    engine = build_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO metric_points (series, at, value, source) VALUES "
                    "('uniqueHealthCodes[study-a]', :at, 5, 'x'), ('numTotal', :at, 7, 'x')"
                ),
                {"at": AT.replace(tzinfo=None)},
            )
        migrations.upgrade(url)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT series, name, labels FROM metric_points ORDER BY series")
            ).all()
    finally:
        engine.dispose()
    labels = [row[2] if isinstance(row[2], dict) else json.loads(row[2]) for row in rows]
    assert [(r[0], r[1]) for r in rows] == [
        ("numTotal", "numTotal"),
        ("uniqueHealthCodes[study-a]", "uniqueHealthCodes"),
    ]
    assert labels == [{}, {"key": "study-a"}]
