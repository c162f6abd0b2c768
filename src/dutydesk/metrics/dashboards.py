"""Dashboards: browsing the series, one series' chart data (its points, the shift rules'
baseline band, the points where a rule fired, and annotations), and saved dashboards."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms._kinds import MAD_SCALE, series_pattern
from dutydesk.alarms.models import AlarmRule, RuleEvaluation, RuleKind, Silence
from dutydesk.alarms.rules import DEFAULTS
from dutydesk.db import utcnow
from dutydesk.metrics.models import Dashboard, MetricPoint
from dutydesk.metrics.service import series_names

# Charts a panel draws at most (a pattern may match hundreds of series).
MAX_CHARTS = 24
MAX_RANGE_DAYS = 400
STEPS = ("point", "day", "week")

DEFAULT_DASHBOARDS: tuple[dict[str, Any], ...] = (
    {
        "name": "export",
        "description": "Is today's data drop normal? Rows per export date and unique "
        "participants per study, against their baseline.",
        "range_days": 30,
        "panels": [
            {"title": "Unique participants per study", "series": "export.uniqueHealthCodes[*"},
            {"title": "Rows per export date", "series": "export.lineCount[*", "step": "day"},
        ],
    },
    {
        "name": "intake and tickets",
        "description": "Tickets opened, MTTA and MTTR per week, and intake per integration.",
        "range_days": 91,
        "panels": [
            {"title": "Tickets opened per week", "series": "tickets.opened*", "step": "week"},
            {"title": "Time to acknowledge (s)", "series": "tickets.mtta_seconds*"},
            {"title": "Intake items per day", "series": "intake.*", "step": "day"},
        ],
    },
)


class DashboardError(ValueError):
    """A dashboard or a chart that cannot be made; the message says why."""


def browse(
    session: Session, *, name: str | None = None, label: str | None = None
) -> list[dict[str, Any]]:
    """Every series whose name contains `name` and whose labels have `label` (`key=value`, or
    a value alone) as key and labels, sorted by key."""
    wanted_key, _, wanted_value = (label or "").partition("=")
    if label and not wanted_value:
        wanted_key, wanted_value = "", label
    found = []
    for key, labels in series_names(session):
        series_name = key.partition("[")[0]
        if name and name not in series_name:
            continue
        if label and not any(
            (not wanted_key or k == wanted_key) and str(v) == wanted_value
            for k, v in labels.items()
        ):
            continue
        found.append({"series": key, "name": series_name, "labels": labels})
    return found


def matching(session: Session, pattern: str, keys: list[str] | None = None) -> list[str]:
    """The series keys (of `keys`, else all) a panel's pattern (`*` is any text) matches,
    sorted, at most MAX_CHARTS."""
    compiled = series_pattern(pattern)
    if keys is None:
        keys = list(session.scalars(select(MetricPoint.series).distinct()))
    return sorted(key for key in keys if compiled.match(key))[:MAX_CHARTS]


def _shift_params(session: Session, key: str) -> dict[str, Any]:
    """The parameters of the first enabled shift rule that reads `key`, else the defaults."""
    rules = session.scalars(
        select(AlarmRule)
        .where(AlarmRule.kind == RuleKind.metric_shift.value, AlarmRule.enabled.is_(True))
        .order_by(AlarmRule.id)
    )
    for rule in rules:
        if series_pattern(rule.params.get("series") or "").match(key):
            return {**DEFAULTS[RuleKind.metric_shift.value], **rule.params, "rule": rule.name}
    return {**DEFAULTS[RuleKind.metric_shift.value], "rule": None}


def _bucket(at: dt.datetime, step: str) -> dt.datetime:
    day = at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday()) if step == "week" else day


def _band(history: list[float], k: float, min_relative: float) -> tuple[float, float, float]:
    """The median and the edges beyond which the shift test fires (k scaled MADs and the
    relative floor, whichever is wider)."""
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history) * MAD_SCALE
    spread = max(k * mad, min_relative * abs(median))
    return median, median - spread, median + spread


def chart(
    session: Session,
    key: str,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    step: str = "point",
    notes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One series' chart: times (epoch seconds), values, the baseline band (median, low, high
    from the previous N values, as the shift rules test), fired points and annotations."""
    if step not in STEPS:
        raise DashboardError(f"step must be one of {', '.join(STEPS)}, not {step!r}")
    until = until or utcnow()
    if until <= since:
        raise DashboardError("the range's end must be after its start")
    params = _shift_params(session, key)
    n = int(params["points"])
    earlier = list(
        session.execute(
            select(MetricPoint.at, MetricPoint.value)
            .where(MetricPoint.series == key, MetricPoint.at < since)
            .order_by(MetricPoint.at.desc())
            .limit(n * (7 if step == "week" else 1))
        )
    )[::-1]
    shown = list(
        session.execute(
            select(MetricPoint.at, MetricPoint.value)
            .where(MetricPoint.series == key, MetricPoint.at >= since, MetricPoint.at <= until)
            .order_by(MetricPoint.at)
        )
    )
    rows: list[tuple[dt.datetime, float]] = [(at, value) for at, value in earlier + shown]
    if step != "point":
        sums: dict[dt.datetime, float] = {}
        for at, value in rows:
            sums[_bucket(at, step)] = sums.get(_bucket(at, step), 0.0) + value
        rows = sorted(sums.items())
    first_shown = _bucket(since, step) if step != "point" else since
    times: list[int] = []
    values: list[float] = []
    medians: list[float | None] = []
    lows: list[float | None] = []
    highs: list[float | None] = []
    for index, (at, value) in enumerate(rows):
        if at < first_shown:
            continue
        history = [v for _, v in rows[max(0, index - n) : index]]
        times.append(int(at.timestamp()))
        values.append(value)
        if len(history) >= int(params["min_history"]):
            median, low, high = _band(history, float(params["k"]), float(params["min_relative"]))
            medians.append(median)
            lows.append(low)
            highs.append(high)
        else:
            medians.append(None)
            lows.append(None)
            highs.append(None)
    return {
        "series": key,
        "step": step,
        "rule": params["rule"],
        "k": params["k"],
        "points": n,
        "times": times,
        "values": values,
        "median": medians,
        "low": lows,
        "high": highs,
        "fired": fired(session, key, since, until),
        "annotations": notes_between(session, since, until) if notes is None else notes,
    }


def fired(
    session: Session, key: str, since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    """The evaluations of rules on `key` that fired in the range (silenced ones say so)."""
    rows = session.execute(
        select(RuleEvaluation.at, RuleEvaluation.silenced, RuleEvaluation.summary)
        .where(
            RuleEvaluation.instance == key,
            RuleEvaluation.firing.is_(True),
            RuleEvaluation.at >= since,
            RuleEvaluation.at <= until,
        )
        .order_by(RuleEvaluation.at)
        .limit(500)
    )
    return [
        {"at": int(at.timestamp()), "silenced": silenced, "text": summary}
        for at, silenced, summary in rows
    ]


def notes_between(session: Session, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """Releases, re-drives, silences and high-risk changes in the range, oldest first."""
    from dutydesk.audit.models import AuditEvent
    from dutydesk.audit.notices import HIGH_RISK
    from dutydesk.runbooks.redrive.models import RedriveBatch
    from dutydesk.runbooks.releases.models import Release

    found: list[dict[str, Any]] = []

    def add(kind: str, at: dt.datetime | None, text: str, end: dt.datetime | None = None) -> None:
        if at is not None:
            item: dict[str, Any] = {"kind": kind, "at": int(at.timestamp()), "text": text}
            if end is not None:
                item["end"] = int(end.timestamp())
            found.append(item)

    for release in session.scalars(
        select(Release).where(Release.started_at >= since, Release.started_at <= until).limit(200)
    ):
        add("release", release.started_at, f"release {release.version} {release.title}".strip())
    for batch in session.scalars(
        select(RedriveBatch)
        .where(RedriveBatch.created_at >= since, RedriveBatch.created_at <= until)
        .limit(200)
    ):
        add("redrive", batch.created_at, f"re-drive of {batch.month} ({batch.state})")
    for silence in session.scalars(
        select(Silence).where(Silence.starts_at <= until, Silence.ends_at >= since).limit(200)
    ):
        add("silence", silence.starts_at, f"{silence.kind}: {silence.reason}", silence.ends_at)
    for event in session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.object_type.in_(list(HIGH_RISK)),
            AuditEvent.at >= since,
            AuditEvent.at <= until,
        )
        .order_by(AuditEvent.at)
        .limit(200)
    ):
        text = f"{event.action} {HIGH_RISK[event.object_type]} #{event.object_id} by {event.actor}"
        add("change", event.at, text)
    return sorted(found, key=lambda item: item["at"])


# --- saved dashboards --------------------------------------------------------------------


def check_panels(panels: Any) -> list[dict[str, Any]]:
    """The panels, checked: a list of {title, series pattern, step}."""
    if not isinstance(panels, list) or not panels:
        raise DashboardError("panels must be a non-empty list")
    if len(panels) > 20:
        raise DashboardError("a dashboard has at most 20 panels")
    checked = []
    for index, panel in enumerate(panels, 1):
        if not isinstance(panel, Mapping):
            raise DashboardError(f"panel {index} must be an object")
        series = panel.get("series")
        if not isinstance(series, str) or not series.strip() or len(series) > 300:
            raise DashboardError(f"panel {index} needs a series pattern (up to 300 characters)")
        step = panel.get("step", "point")
        if step not in STEPS:
            raise DashboardError(f"panel {index}: step must be one of {', '.join(STEPS)}")
        title = str(panel.get("title") or series)[:200]
        checked.append({"title": title, "series": series.strip(), "step": step})
    return checked


def save_dashboard(
    session: Session,
    *,
    name: str,
    panels: Any,
    range_days: int,
    actor: str,
    description: str = "",
) -> Dashboard:
    """Make or replace the dashboard called `name`."""
    name = name.strip()
    if not name or len(name) > 100:
        raise DashboardError("a dashboard needs a name of 1 to 100 characters")
    if not 1 <= range_days <= MAX_RANGE_DAYS:
        raise DashboardError(f"range_days must be between 1 and {MAX_RANGE_DAYS}")
    checked = check_panels(panels)
    board = session.scalar(select(Dashboard).where(Dashboard.name == name))
    if board is None:
        board = Dashboard(name=name, created_by=actor)
        session.add(board)
    board.panels = checked
    board.range_days = range_days
    board.description = description[:500]
    session.flush()
    return board


def ensure_defaults(session: Session) -> None:
    """Make the default dashboards that do not exist yet (by name)."""
    existing = set(session.scalars(select(Dashboard.name)))
    for spec in DEFAULT_DASHBOARDS:
        if spec["name"] not in existing:
            save_dashboard(session, actor="dutydesk", **spec)


def list_dashboards(session: Session) -> list[Dashboard]:
    """Every saved dashboard (the defaults made first), by name."""
    ensure_defaults(session)
    return list(session.scalars(select(Dashboard).order_by(Dashboard.name)))


def get_dashboard(session: Session, ident: int) -> Dashboard:
    """One dashboard by id."""
    board = session.get(Dashboard, ident)
    if board is None:
        raise LookupError(f"no dashboard {ident}")
    return board


def dashboard_data(
    session: Session, board: Dashboard, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Each panel with the charts of the series it matches over the dashboard's range."""
    until = now or utcnow()
    since = until - dt.timedelta(days=board.range_days)
    notes = notes_between(session, since, until)
    # One scan for the keys of every panel (the table's largest read on a big desk).
    keys = list(session.scalars(select(MetricPoint.series).distinct()))
    return [
        {
            **panel,
            "charts": [
                chart(
                    session,
                    key,
                    since=since,
                    until=until,
                    step=panel.get("step", "point"),
                    notes=notes,
                )
                for key in matching(session, panel["series"], keys)
            ],
        }
        for panel in board.panels
    ]
