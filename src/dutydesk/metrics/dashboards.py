"""Dashboards: browsing the series, one series' chart data (its points, the shift rules'
baseline band, the points where a rule fired, and annotations), and saved dashboards."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import BindParameter, CompoundSelect, Integer, bindparam, select, union_all
from sqlalchemy.orm import Session

from dutydesk.alarms._kinds import series_pattern
from dutydesk.alarms.models import AlarmRule, RuleEvaluation, RuleKind, Silence
from dutydesk.alarms.rules import DEFAULTS
from dutydesk.db import utcnow
from dutydesk.metrics.models import Dashboard, MetricPoint
from dutydesk.metrics.service import series_keys, series_names
from dutydesk.metrics.shift import MAD_SCALE

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
        keys = series_keys(session)
    return sorted(key for key in keys if compiled.match(key))[:MAX_CHARTS]


ShiftRules = list[tuple[re.Pattern[str], dict[str, Any]]]


def _shift_rules(session: Session) -> ShiftRules:
    """The enabled shift rules in order, each as its series pattern and its parameters."""
    rules = session.scalars(
        select(AlarmRule)
        .where(AlarmRule.kind == RuleKind.metric_shift.value, AlarmRule.enabled.is_(True))
        .order_by(AlarmRule.id)
    )
    return [
        (
            series_pattern(rule.params.get("series") or ""),
            {**DEFAULTS[RuleKind.metric_shift.value], **rule.params, "rule": rule.name},
        )
        for rule in rules
    ]


def _shift_params(rules: ShiftRules, key: str) -> dict[str, Any]:
    """The parameters of the first enabled shift rule that reads `key`, else the defaults."""
    for pattern, params in rules:
        if pattern.match(key):
            return params
    return {**DEFAULTS[RuleKind.metric_shift.value], "rule": None}


def _history_wanted(params: dict[str, Any], step: str) -> int:
    """How many points before the range make the band of the first ones shown."""
    return int(params["points"]) * (7 if step == "week" else 1)


Rows = list[tuple[dt.datetime, float]]


@functools.lru_cache(maxsize=64)
def _points_statement(count: int) -> CompoundSelect[Any]:
    """The statement `_points` runs for `count` series: for each, an index seek for its last
    points before the range (how many: `before_<i>`; a count, not a time span, as a daily and
    an hourly series need different spans), and the range's points of all of them. Built once
    per count: making it costs more than running it."""
    columns = (MetricPoint.series, MetricPoint.at, MetricPoint.value)
    since: BindParameter[dt.datetime] = bindparam("since")
    earlier = [
        select(*columns)
        .where(MetricPoint.series == bindparam(f"key_{index}"), MetricPoint.at < since)
        .order_by(MetricPoint.at.desc())
        .limit(bindparam(f"before_{index}", type_=Integer))
        .subquery()
        for index in range(count)
    ]
    shown = select(*columns).where(
        MetricPoint.series.in_(bindparam("keys", expanding=True)),
        MetricPoint.at >= since,
        MetricPoint.at <= bindparam("until"),
    )
    return union_all(*(select(*part.c) for part in earlier), shown)


def _points(
    session: Session, before: Mapping[str, int], since: dt.datetime, until: dt.datetime
) -> dict[str, Rows]:
    """For each key of `before`: its last `before[key]` points before `since`, then its points
    from `since` to `until`, oldest first; one statement for them all."""
    found: dict[str, Rows] = {key: [] for key in before}
    if not before:
        return found
    values: dict[str, Any] = {"since": since, "until": until, "keys": list(before)}
    for index, (key, count) in enumerate(before.items()):
        values[f"key_{index}"] = key
        values[f"before_{index}"] = count
    # All at once: iterating the result would fetch the rows one call at a time.
    for key, at, value in session.execute(_points_statement(len(before)), values).all():
        found[key].append((at, value))
    for rows in found.values():
        rows.sort(key=lambda row: row[0])
    return found


def _bucket(at: dt.datetime, step: str) -> dt.datetime:
    day = at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday()) if step == "week" else day


def _middle(ordered: list[float]) -> float:
    """The median of an already sorted, non-empty list (as `statistics.median` gives it)."""
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def _band(history: list[float], k: float, min_relative: float) -> tuple[float, float, float]:
    """The median and the edges beyond which the shift test fires (k scaled MADs and the
    relative floor, whichever is wider).

    The same figures as `metrics.shift.median_spread` (a test holds them equal), written out
    because a dashboard computes some 1,500 of them per view and the generic median's
    overhead was a fifth of the view's time.
    """
    median = _middle(sorted(history))
    mad = _middle(sorted([abs(x - median) for x in history])) * MAD_SCALE
    spread = max(k * mad, min_relative * abs(median))
    return median, median - spread, median + spread


def _chart_of(
    key: str,
    points: Rows,
    params: dict[str, Any],
    *,
    since: dt.datetime,
    step: str,
    fired_at: list[dict[str, Any]],
    notes: list[dict[str, Any]],
) -> dict[str, Any]:
    """A chart from a series' points (those before the range first), as `chart` describes."""
    n = int(params["points"])
    wanted = _history_wanted(params, step)
    earlier = [row for row in points if row[0] < since]
    rows = (earlier[-wanted:] if wanted else []) + points[len(earlier) :]
    if step != "point":
        # Each UTC date's bucket worked out once (the points are read in UTC).
        buckets: dict[dt.date, dt.datetime] = {}
        sums: dict[dt.datetime, float] = {}
        for at, value in rows:
            date = at.date()
            bucket = buckets.get(date)
            if bucket is None:
                bucket = _bucket(dt.datetime.combine(date, dt.time(), dt.UTC), step)
                buckets[date] = bucket
            sums[bucket] = sums.get(bucket, 0.0) + value
        rows = sorted(sums.items())
    first_shown = _bucket(since, step) if step != "point" else since
    times: list[int] = []
    values: list[float] = []
    medians: list[float | None] = []
    lows: list[float | None] = []
    highs: list[float | None] = []
    every = [value for _, value in rows]
    k, floor, min_history = float(params["k"]), float(params["min_relative"]), params["min_history"]
    for index, (at, value) in enumerate(rows):
        if at < first_shown:
            continue
        history = every[max(0, index - n) : index]
        times.append(int(at.timestamp()))
        values.append(value)
        if len(history) >= int(min_history):
            median, low, high = _band(history, k, floor)
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
        "fired": fired_at,
        "annotations": notes,
    }


def _check_range(step: str, since: dt.datetime, until: dt.datetime) -> None:
    if step not in STEPS:
        raise DashboardError(f"step must be one of {', '.join(STEPS)}, not {step!r}")
    if until <= since:
        raise DashboardError("the range's end must be after its start")


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
    until = until or utcnow()
    _check_range(step, since, until)
    params = _shift_params(_shift_rules(session), key)
    points = _points(session, {key: _history_wanted(params, step)}, since, until)
    return _chart_of(
        key,
        points[key],
        params,
        since=since,
        step=step,
        fired_at=fired(session, key, since, until),
        notes=notes_between(session, since, until) if notes is None else notes,
    )


# Fired evaluations a chart shows at most.
MAX_FIRED = 500


def _fired(
    session: Session, keys: list[str], since: dt.datetime, until: dt.datetime
) -> dict[str, list[dict[str, Any]]]:
    """For each key, the evaluations of rules on it that fired in the range, oldest first (at
    most MAX_FIRED each; silenced ones say so); one query for them all."""
    found: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    if not keys:
        return found
    rows = session.execute(
        select(
            RuleEvaluation.instance,
            RuleEvaluation.at,
            RuleEvaluation.silenced,
            RuleEvaluation.summary,
        )
        .where(
            RuleEvaluation.instance.in_(keys),
            RuleEvaluation.firing.is_(True),
            RuleEvaluation.at >= since,
            RuleEvaluation.at <= until,
        )
        .order_by(RuleEvaluation.at)
    )
    for key, at, silenced, summary in rows:
        if len(found[key]) < MAX_FIRED:
            found[key].append({"at": int(at.timestamp()), "silenced": silenced, "text": summary})
    return found


def fired(
    session: Session, key: str, since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    """The evaluations of rules on `key` that fired in the range (silenced ones say so)."""
    return _fired(session, [key], since, until)[key]


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

    # Columns, not objects: the dashboard reads these on every view.
    for at, version, title in session.execute(
        select(Release.started_at, Release.version, Release.title)
        .where(Release.started_at >= since, Release.started_at <= until)
        .limit(200)
    ):
        add("release", at, f"release {version} {title}".strip())
    for at, month, state in session.execute(
        select(RedriveBatch.created_at, RedriveBatch.month, RedriveBatch.state)
        .where(RedriveBatch.created_at >= since, RedriveBatch.created_at <= until)
        .limit(200)
    ):
        add("redrive", at, f"re-drive of {month} ({state})")
    for at, kind, reason, end in session.execute(
        select(Silence.starts_at, Silence.kind, Silence.reason, Silence.ends_at)
        .where(Silence.starts_at <= until, Silence.ends_at >= since)
        .limit(200)
    ):
        add("silence", at, f"{kind}: {reason}", end)
    for at, action, object_type, object_id, actor in session.execute(
        select(
            AuditEvent.at,
            AuditEvent.action,
            AuditEvent.object_type,
            AuditEvent.object_id,
            AuditEvent.actor,
        )
        .where(
            AuditEvent.object_type.in_(list(HIGH_RISK)),
            AuditEvent.at >= since,
            AuditEvent.at <= until,
        )
        .order_by(AuditEvent.at)
        .limit(200)
    ):
        add("change", at, f"{action} {HIGH_RISK[object_type]} #{object_id} by {actor}")
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


def ensure_defaults(session: Session) -> list[Dashboard]:
    """Make the default dashboards that do not exist yet (by name); returns those made.

    The web process calls it as it starts (see `routes.make_default_dashboards`), so reading
    the dashboards never writes.
    """
    existing = set(session.scalars(select(Dashboard.name)))
    return [
        save_dashboard(session, actor="dutydesk", **spec)
        for spec in DEFAULT_DASHBOARDS
        if spec["name"] not in existing
    ]


def list_dashboards(session: Session) -> list[Dashboard]:
    """Every saved dashboard, by name."""
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
    # Once per dashboard: the annotations, the series keys, the shift rules, then every
    # panel's points in one statement and the fired evaluations in one query.
    notes = notes_between(session, since, until)
    keys = series_keys(session)
    rules = _shift_rules(session)
    panels = [
        (panel, panel.get("step", "point"), matching(session, panel["series"], keys))
        for panel in board.panels
    ]
    params = {key: _shift_params(rules, key) for _, _, shown in panels for key in shown}
    before: dict[str, int] = {}
    for _, step, shown in panels:
        for key in shown:
            before[key] = max(before.get(key, 0), _history_wanted(params[key], step))
    points = _points(session, before, since, until)
    fired_at = _fired(session, list(before), since, until)
    return [
        {
            **panel,
            "charts": [
                _chart_of(
                    key,
                    points[key],
                    params[key],
                    since=since,
                    step=step,
                    fired_at=fired_at[key],
                    notes=notes,
                )
                for key in shown
            ],
        }
        for panel, step, shown in panels
    ]
