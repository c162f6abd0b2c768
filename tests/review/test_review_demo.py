"""The demo's month, as `dutydesk up --demo` leaves it once its first jobs ran: one study's
unique participants halve on one day of the last week while the matching shift rule is silenced,
so no alarm fires; the review lists that drop first (page data and `review show --markdown`),
the export dashboard draws the point outside its band, and the week's tickets and notices are
in the review."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from dutydesk import migrations, registry
from dutydesk.alarms.models import Alarm, RuleEvaluation, Silence
from dutydesk.cli import app
from dutydesk.db import transaction, utcnow
from dutydesk.demo import seed_demo
from dutydesk.export.demo import LOSS_DAYS_AGO, LOSS_STUDY
from dutydesk.metrics import dashboards
from dutydesk.metrics.models import Dashboard
from dutydesk.notify.democatcher import catcher, catcher_environment, free_port
from dutydesk.notify.models import Delivery
from dutydesk.records.store import upgrade_records
from dutydesk.review import service
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Ticket
from tests.conftest import clear_caches, fresh_database_url

SERIES = f"export.uniqueHealthCodes[{LOSS_STUDY}]"


def run_job(kind: str, args: dict[str, object]) -> None:
    """Run one job's function as a worker would, in its own transaction."""
    with transaction(actor="worker") as session:
        registry.job_kinds[kind](session, args)


@pytest.fixture
def demo_desk(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A desk of `backend` filled by the demo seeders, after the jobs that follow a demo start:
    the metrics roll-up (the month's export series), the notices sent to the demo's mail
    catcher, and the metric rules' replay over the month."""
    url = fresh_database_url(backend, tmp_path, "review_demo")
    records = f"sqlite:///{tmp_path / 'records.sqlite'}"
    monkeypatch.setenv("DUTYDESK_DATABASE_URL", url)
    monkeypatch.setenv("DUTYDESK_RECORDS_URL", records)
    monkeypatch.setenv("DUTYDESK_WAREHOUSE", str(tmp_path / "warehouse"))
    monkeypatch.setenv("DUTYDESK_DEMO_PASSWORD", "demo password 1")
    for name, value in catcher_environment(free_port()).items():
        monkeypatch.setenv(name, value)
    clear_caches()
    migrations.upgrade(url)
    upgrade_records(records)
    registry.load_domains()
    server = catcher(get_settings())
    server.start()
    try:
        seed_demo(get_settings())
        run_job("metrics.roll_up", {})
        run_job("notify.deliver_due", {})
        run_job("alarms.replay", {"days": 31, "kinds": ["metric_shift"]})
    finally:
        server.stop()
    yield
    clear_caches()


@pytest.mark.timeout(300)
def test_demo_weeks_halving_is_silenced_listed_first_and_drawn_outside_its_band(
    demo_desk: None,
) -> None:
    now = utcnow()
    loss_day = now.date() - dt.timedelta(days=LOSS_DAYS_AGO)
    # A point is dated at the end of the day it measured.
    loss_at = dt.datetime.combine(loss_day + dt.timedelta(days=1), dt.time(), dt.UTC)
    with transaction() as session:
        period = service.period_for(session, None)
        assert period.start < loss_at < period.end
        sections = {s.key: s for s in service.agenda(session, period)}

        # (a) The trends list the halving first, with its numbers, its chart and its silence.
        trends = sections["trends"]
        first = trends.lines[0]
        assert first.startswith(f"{SERIES}: "), trends.lines
        numbers = re.search(r"median of ([\d.]+) \(spread ([\d.]+), 14 points\): ([-+\d.]+)", first)
        assert numbers, first
        median, value = float(numbers.group(1)), float(first.split(": ")[1].split()[0])
        assert 0.4 * median <= value <= 0.6 * median, first
        assert f"on {loss_at:%Y-%m-%d %H:%M}" in first
        assert "silenced (#" in first and "Known gap" in first
        assert trends.links[0] == (
            "/dashboards/series?series=export.uniqueHealthCodes%5Bstudy-a%5D&days=30"
        )

        # (b) The rule fired on the loss day, silenced: no alarm, no ticket, a silence row.
        silence = session.scalars(select(Silence)).one()
        assert silence.starts_at <= loss_at < silence.ends_at
        assert silence.reason.startswith("Known gap") and silence.created_by == "demo"
        evaluation = session.scalars(
            select(RuleEvaluation).where(
                RuleEvaluation.instance == SERIES, RuleEvaluation.firing.is_(True)
            )
        ).one()
        assert evaluation.at == loss_at and evaluation.silenced
        assert evaluation.alarm_id is None
        rule_alarms = session.scalar(
            select(func.count()).select_from(Alarm).where(Alarm.fingerprint.like("rule:shift-%"))
        )
        assert rule_alarms == 0
        assert not session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.fingerprint.like("rule:%"))
        )

        # (c) The week's tickets and notices are there.
        opened = int(sections["tickets"].lines[0].split()[0])
        assert opened > 0, sections["tickets"].lines
        notices = sections["tickets"].lines[-1]
        sent = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.state == "sent")
        )
        assert sent and notices.startswith("Notices: ") and f"{sent} sent" in notices

        # (d) The export dashboard draws the loss day's point below its band.
        dashboards.ensure_defaults(session)
        board = session.scalars(select(Dashboard).where(Dashboard.name == "export")).one()
        panel = dashboards.dashboard_data(session, board)[0]
        chart = next(c for c in panel["charts"] if c["series"] == SERIES)
        index = chart["times"].index(int(loss_at.timestamp()))
        low = chart["low"][index]
        assert low is not None and chart["values"][index] < low < chart["median"][index]
        # The day before was inside it.
        assert chart["low"][index - 1] <= chart["values"][index - 1] <= chart["high"][index - 1]

    # (e) The Markdown the command prints lists it first too.
    printed = CliRunner().invoke(app, ["review", "show", "--markdown"])
    assert printed.exit_code == 0, printed.output
    after = printed.output.split("## Trends\n\n", 1)[1]
    assert after.startswith(f"- {SERIES}: "), after[:300]
