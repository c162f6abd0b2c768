"""The review's trends: every series' points in the period put through the shift rules' test
(`metrics.shift`) against the points before the period, the ones that moved listed by size.

A series' test takes the parameters of the first enabled metric-shift rule that reads it (as
its dashboard band does), else the rule defaults, in both directions: the review lists moves the
rules would not alarm on. A series is listed when one of its points in the period is beyond
k scaled MADs and the relative floor of the baseline's median; its largest such point stands for
it. The list is ranked by the relative change (how far from the usual value, as a share of it),
then by MADs: a halving (-50 %) comes before a fifth more, however steady either series was.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dutydesk.alarms import silences
from dutydesk.alarms._kinds import series_pattern
from dutydesk.alarms.models import AlarmRule, RuleKind
from dutydesk.alarms.rules import DEFAULTS
from dutydesk.metrics.models import MetricPoint
from dutydesk.metrics.service import parse_series
from dutydesk.metrics.shift import shift_of

# A series whose baseline median is under this (or its rule's min_baseline, when larger) is left
# out: counts that small move by half on their own (1 against 2).
MIN_BASELINE = 10.0
# How many days of the series a trend's chart link shows.
CHART_DAYS = 30


@dataclass(frozen=True)
class Trend:
    """One series that moved: its largest point in the period against the baseline before."""

    series: str
    at: dt.datetime
    value: float
    median: float
    spread: float  # the baseline's MAD scaled to a standard deviation's size
    change: float
    relative: float  # change as a share of the median
    mads: float  # change in scaled MADs (inf when the baseline did not vary)
    history: int
    rule: str | None
    silenced: str | None  # the covering silence, as `#id: reason`

    @property
    def link(self) -> str:
        """The series' chart on the Dashboards page."""
        return f"/dashboards/series?series={quote(self.series, safe='')}&days={CHART_DAYS}"

    def line(self) -> str:
        """The trend as one line, its numbers beside it."""
        mads = "inf" if math.isinf(self.mads) else f"{self.mads:.1f}"
        text = (
            f"{self.series}: {self.value:.4g} on {self.at:%Y-%m-%d %H:%M} against a baseline "
            f"median of {self.median:.4g} (spread {self.spread:.3g}, {self.history} points): "
            f"{self.change:+.4g}, {self.relative:+.0%}, {mads} MADs"
        )
        return text + (f"; silenced ({self.silenced})" if self.silenced else "")


def _shift_rules(session: Session) -> list[AlarmRule]:
    return list(
        session.scalars(
            select(AlarmRule)
            .where(AlarmRule.kind == RuleKind.metric_shift.value, AlarmRule.enabled.is_(True))
            .order_by(AlarmRule.id)
        )
    )


def rule_keys(key: str, labels: dict[str, Any]) -> list[str]:
    """The keys rules may watch this series under: its own and, for an export series, the key of
    the export's own metric lines (`uniqueHealthCodes[study-a]` for
    `export.uniqueHealthCodes[study-a]`, `study-a-default.lineCount` for its `export.lineCount`)."""
    name = key.partition("[")[0]
    if not name.startswith("export."):
        return [key]
    counter = name.removeprefix("export.")
    if set(labels) == {"study", "table"}:
        return [key, f"{labels['table']}.{counter}"]
    if set(labels) == {"study"}:
        return [key, f"{counter}[{labels['study']}]"]
    return [key]


def _reading(rules: list[AlarmRule], keys: list[str]) -> list[AlarmRule]:
    """The rules whose series pattern matches one of `keys`."""
    return [
        rule
        for rule in rules
        if any(series_pattern(str(rule.params.get("series") or "")).match(k) for k in keys)
    ]


def _silence_of(
    session: Session, rules: list[AlarmRule], key: str, labels: dict[str, Any], at: dt.datetime
) -> str | None:
    """The silence in force at `at` over a rule watching this series, as `#id: reason`."""
    keys = rule_keys(key, labels)
    in_force = silences.active(session, at)
    for rule in _reading(rules, keys):
        for watched in keys:
            extra = {"instance": watched, "series": watched}
            covered = silences.covering(in_force, rule, silences.rule_labels(rule, extra))
            if covered is not None:
                return f"#{covered.id}: {covered.reason}"
    return None


def _params(rules: list[AlarmRule], key: str) -> tuple[dict[str, Any], str | None]:
    """The shift parameters of the first rule that reads `key` itself (as the dashboard band
    takes them), else the defaults; with the rule's name."""
    defaults = DEFAULTS[RuleKind.metric_shift.value]
    for rule in _reading(rules, [key]):
        return {**defaults, **rule.params}, rule.name
    return dict(defaults), None


def trends(
    session: Session, start: dt.datetime, end: dt.datetime, *, limit: int = 10
) -> list[Trend]:
    """The series that moved in [start, end) against their points before `start`, largest
    relative change first (see the module's note)."""
    inside: dict[str, list[tuple[dt.datetime, float]]] = {}
    labels_of: dict[str, dict[str, Any]] = {}
    for key, labels, at, value in session.execute(
        select(MetricPoint.series, MetricPoint.labels, MetricPoint.at, MetricPoint.value)
        .where(
            MetricPoint.at >= start,
            MetricPoint.at < end,
            # An export run's older keys (`study-a-default.lineCount`) repeat its labelled
            # `export.*` series: each move is listed once.
            or_(~MetricPoint.source.like("export:%"), MetricPoint.name.like("export.%")),
        )
        .order_by(MetricPoint.at)
    ):
        inside.setdefault(key, []).append((at, value))
        labels_of[key] = dict(labels or {}) or parse_series(key)[1]
    rules = _shift_rules(session)
    found: list[Trend] = []
    for key, points in inside.items():
        params, rule = _params(rules, key)
        history = list(
            session.scalars(
                select(MetricPoint.value)
                .where(MetricPoint.series == key, MetricPoint.at < start)
                .order_by(MetricPoint.at.desc())
                .limit(int(params["points"]))
            )
        )
        if len(history) < int(params["min_history"]):
            continue
        best: tuple[dt.datetime, dict[str, Any]] | None = None
        for at, value in points:
            moved, numbers = shift_of(
                value,
                history,
                k=float(params["k"]),
                min_relative=float(params["min_relative"]),
                direction="both",
            )
            if not moved or abs(numbers["median"]) < max(MIN_BASELINE, params["min_baseline"]):
                continue
            if best is None or abs(numbers["change"]) > abs(best[1]["change"]):
                best = (at, numbers)
        if best is None:
            continue
        at, numbers = best
        found.append(
            Trend(
                series=key,
                at=at,
                value=numbers["value"],
                median=numbers["median"],
                spread=numbers["mad"],
                change=numbers["change"],
                relative=numbers["change"] / abs(numbers["median"]),
                mads=math.inf if numbers["mads"] is None else numbers["mads"],
                history=len(history),
                rule=rule,
                silenced=None,
            )
        )
    found.sort(key=lambda t: (-abs(t.relative), -t.mads, t.series))
    return [
        replace(t, silenced=_silence_of(session, rules, t.series, labels_of[t.series], t.at))
        for t in found[:limit]
    ]
