"""How each rule kind decides, from the stored data, whether it fires at a moment.

Each evaluator returns one `Decision` per instance (a log source, a metric series, or the
rule itself) with the numbers behind it; nothing here writes or fires.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.alarms import sentences
from dutydesk.alarms._cron import parse_cron
from dutydesk.alarms.models import AlarmRule, RuleKind
from dutydesk.intake.models import (
    ErrorGroup,
    ErrorGroupCount,
    InboxItem,
    Integration,
    LogCount,
    Outcome,
    Ping,
    PingCheck,
)
from dutydesk.metrics.models import MetricPoint
from dutydesk.metrics.shift import MAD_SCALE as MAD_SCALE  # read from here by the dashboards
from dutydesk.metrics.shift import shift_of


@dataclass
class Decision:
    """One instance's verdict: firing or not, a one-line summary and the numbers behind it."""

    instance: str
    firing: bool
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _matches(pattern: str, *texts: str) -> bool:
    compiled = re.compile(pattern)
    return any(compiled.search(text) for text in texts if text)


# --- log threshold -----------------------------------------------------------------------


def _group_counts(
    session: Session, source: str, levels: list[str], since: dt.datetime, until: dt.datetime
) -> list[tuple[ErrorGroup, int]]:
    statement = (
        select(ErrorGroup, func.sum(ErrorGroupCount.count))
        .join(ErrorGroupCount, ErrorGroupCount.group_id == ErrorGroup.id)
        .where(
            ErrorGroup.source == source,
            ErrorGroupCount.minute > since,
            ErrorGroupCount.minute <= until,
        )
        .group_by(ErrorGroup.id)
    )
    if levels:
        statement = statement.where(ErrorGroup.level.in_(levels))
    return [(group, int(n)) for group, n in session.execute(statement)]


def log_threshold(session: Session, rule: AlarmRule, at: dt.datetime) -> list[Decision]:
    """Lines of the levels (or of the groups matching the regex) in the window, less ignored
    groups (unless those exceed their own threshold), against the threshold; per source."""
    p = rule.params
    window = dt.timedelta(minutes=p["window_minutes"])
    since = at - window
    levels: list[str] = p["levels"]
    chosen: list[str] = p["sources"]
    # Without chosen sources: each source with lines in the window, and each still firing
    # (so its alarm resolves once its lines are out of the window).
    sources = chosen or sorted(
        {
            *session.scalars(
                select(LogCount.source)
                .where(LogCount.minute > since, LogCount.minute <= at)
                .distinct()
            ),
            *(str(instance) for instance in rule.firing),
        }
    )
    decisions = []
    for source in sources:
        level_total = int(
            session.scalar(
                select(func.coalesce(func.sum(LogCount.count), 0)).where(
                    LogCount.source == source,
                    LogCount.minute > since,
                    LogCount.minute <= at,
                    *([LogCount.level.in_(levels)] if levels else []),
                )
            )
            or 0
        )
        groups = _group_counts(session, source, levels, since, at)
        if p.get("regex"):
            matched = [(g, n) for g, n in groups if _matches(p["regex"], g.template, g.last_sample)]
            base = sum(n for _, n in matched)
        else:
            matched = groups
            base = level_total
        ignored = []
        count = base
        for ignore in p["ignore"]:
            hits = [
                (g, n) for g, n in matched if _matches(ignore["pattern"], g.template, g.last_sample)
            ]
            hit_count = sum(n for _, n in hits)
            exceeded = hit_count >= ignore["threshold"]
            if not exceeded:
                count -= hit_count
            ignored.append(
                {
                    "pattern": ignore["pattern"],
                    "count": hit_count,
                    "threshold": ignore["threshold"],
                    "exceeded": exceeded,
                }
            )
        top = sorted(matched, key=lambda item: -item[1])[:5]
        firing = count >= p["threshold"] or any(i["exceeded"] for i in ignored)
        numbers = {
            "source": source,
            "window_start": since.isoformat(),
            "window_end": at.isoformat(),
            "levels": levels,
            "level_count": level_total,
            "count": count,
            "threshold": p["threshold"],
            "ignored": ignored,
            "groups": [
                {"id": g.id, "level": g.level, "template": g.template, "count": n} for g, n in top
            ],
        }
        summary = sentences.log_threshold_sentence(p, source, numbers)
        decisions.append(Decision(source, firing, summary, numbers, {"source": source}))
    return decisions


# --- deadline ----------------------------------------------------------------------------


def _durations_ping(session: Session, check: PingCheck, limit: int) -> list[float]:
    pings = list(
        session.execute(
            select(Ping.kind, Ping.at)
            .where(Ping.check_id == check.id, Ping.kind.in_(["start", "success"]))
            .order_by(Ping.at.desc())
            .limit(limit * 2 + 2)
        )
    )
    durations = []
    pings.reverse()
    started: dt.datetime | None = None
    for kind, at in pings:
        if kind == "start":
            started = at
        elif started is not None:
            durations.append((at - started).total_seconds())
            started = None
    return durations


def _last_event(
    session: Session, rule: AlarmRule, limit: int
) -> tuple[dt.datetime | None, list[float], dict[str, Any]]:
    """When the expected event last happened, the durations reported, and what was looked at."""
    p = rule.params
    if p["event"] == "ping":
        check = session.scalar(
            select(PingCheck).join(Integration).where(Integration.name == p["check"])
        )
        if check is None:
            return None, [], {"check": p["check"], "problem": "no such heartbeat check"}
        return check.last_success_at, _durations_ping(session, check, limit), {"check": p["check"]}
    if p["event"] == "export":
        from dutydesk.export.models import ExportRun

        runs = list(
            session.execute(
                select(ExportRun.started_at, ExportRun.finished_at)
                .where(ExportRun.state == "succeeded", ExportRun.finished_at.is_not(None))
                .order_by(ExportRun.finished_at.desc())
                .limit(limit + 1)
            )
        )
        durations = [
            (end - start).total_seconds() for start, end in reversed(runs) if start and end
        ]
        return (runs[0][1] if runs else None), durations, {"event": "successful export run"}
    state = rule.state
    last = dt.datetime.fromisoformat(state["last_event_at"]) if state.get("last_event_at") else None
    durations = [float(x) for x in state.get("durations", [])][-(limit + 1) :]
    return last, durations, {"source": p.get("source"), "regex": p["regex"]}


def deadline(session: Session, rule: AlarmRule, at: dt.datetime) -> list[Decision]:
    """Missed: no expected event since the latest scheduled time whose grace has passed.
    Slow: the latest duration above the median of the earlier ones by the factor."""
    p = rule.params
    grace = dt.timedelta(minutes=p["grace_minutes"])
    scheduled = parse_cron(p["cron"]).previous(at - grace)
    last, durations, looked_at = _last_event(session, rule, p["baseline_runs"])
    missed = scheduled is not None and (last is None or last < scheduled)
    numbers: dict[str, Any] = {
        **looked_at,
        "cron": p["cron"],
        "scheduled_at": _iso(scheduled),
        "due_by": _iso(scheduled + grace) if scheduled else None,
        "last_event_at": _iso(last),
        "missed": missed,
    }
    slow = False
    if p.get("slow_factor") and len(durations) >= 4:
        latest, earlier = durations[-1], durations[:-1]
        baseline = statistics.median(earlier)
        slow = baseline > 0 and latest > p["slow_factor"] * baseline
        numbers.update(
            duration_s=latest, baseline_s=baseline, slow_factor=p["slow_factor"], slow=slow
        )
    summary = sentences.deadline_sentence(p, numbers, at=at, last=last, scheduled=scheduled)
    return [Decision("", missed or slow, summary, numbers)]


# --- metric shift ------------------------------------------------------------------------


def series_pattern(pattern: str) -> re.Pattern[str]:
    """A series name pattern where `*` is any text and everything else is literal."""
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def metric_shift(session: Session, rule: AlarmRule, at: dt.datetime) -> list[Decision]:
    """Each matching series' latest point at or before `at` against its last N points."""
    p = rule.params
    pattern = series_pattern(p["series"])
    names = [
        name
        for name in session.scalars(select(MetricPoint.series).distinct())
        if pattern.match(name)
    ]
    decisions = []
    for name in sorted(names):
        rows = [
            (point_at, value)
            for point_at, value in session.execute(
                select(MetricPoint.at, MetricPoint.value)
                .where(MetricPoint.series == name, MetricPoint.at <= at)
                .order_by(MetricPoint.at.desc())
                .limit(p["points"] * (7 if p["same_weekday"] else 1) + 1)
            )
        ]
        if not rows:
            continue
        (current_at, current), earlier = rows[0], rows[1:]
        if p["same_weekday"]:
            earlier = [(t, v) for t, v in earlier if t.weekday() == current_at.weekday()]
        history = [v for _, v in earlier[: p["points"]]]
        labels = {"series": name}
        if len(history) < p["min_history"]:
            numbers = {"value": current, "history": len(history), "min_history": p["min_history"]}
            summary = sentences.shift_sentence(p, name, numbers, firing=False)
            decisions.append(Decision(name, False, summary, numbers, labels))
            continue
        firing, numbers = shift_of(
            current, history, k=p["k"], min_relative=p["min_relative"], direction=p["direction"]
        )
        numbers.update(series=name, at=current_at.isoformat(), history=len(history))
        if abs(numbers["median"]) < p["min_baseline"]:
            # Counts this small move by half on their own (1 against 2): not a shift.
            numbers["min_baseline"] = p["min_baseline"]
            summary = sentences.shift_sentence(p, name, numbers, firing=False)
            decisions.append(Decision(name, False, summary, numbers, labels))
            continue
        summary = sentences.shift_sentence(p, name, numbers, firing=firing)
        decisions.append(Decision(name, firing, summary, numbers, labels))
    return decisions


# --- HTTP probe and CI silence -----------------------------------------------------------


def http_probe(_session: Session, rule: AlarmRule, _at: dt.datetime) -> list[Decision]:
    """GET the URL: fires on a transport error, an unexpected status or a slow answer."""
    p = rule.params
    started = time.perf_counter()
    numbers: dict[str, Any] = {"url": p["url"], "expected_status": p["expected_status"]}
    try:
        response = httpx.get(p["url"], timeout=p["timeout_seconds"], follow_redirects=False)
    except httpx.HTTPError as error:
        numbers["error"] = f"{type(error).__name__}: {error}"
        return [Decision("", True, sentences.probe_sentence(p, numbers), numbers)]
    latency = (time.perf_counter() - started) * 1000
    numbers.update(status=response.status_code, latency_ms=round(latency, 1))
    numbers["latency_threshold_ms"] = p["latency_ms"]
    bad_status = response.status_code != p["expected_status"]
    slow = latency > p["latency_ms"]
    summary = sentences.probe_sentence(p, numbers)
    return [Decision("", bad_status or slow, summary, numbers)]


def ci_silence(session: Session, rule: AlarmRule, at: dt.datetime) -> list[Decision]:
    """Fires when the CI integration sent no accepted event for the rule's hours."""
    p = rule.params
    integration = session.scalar(select(Integration).where(Integration.name == p["integration"]))
    if integration is None:
        numbers = {"integration": p["integration"], "problem": "no such integration"}
        return [Decision("", False, sentences.ci_silence_sentence(p, numbers), numbers)]
    last = session.scalar(
        select(func.max(InboxItem.received_at)).where(
            InboxItem.integration_id == integration.id,
            InboxItem.outcome == Outcome.accepted.value,
            InboxItem.received_at <= at,
        )
    )
    since = last or integration.created_at
    hours = (at - since).total_seconds() / 3600
    firing = hours >= p["hours"]
    numbers = {
        "integration": p["integration"],
        "last_event_at": _iso(last),
        "hours_since": round(hours, 2),
        "hours": p["hours"],
    }
    return [Decision("", firing, sentences.ci_silence_sentence(p, numbers), numbers)]


EVALUATORS: dict[str, Callable[[Session, AlarmRule, dt.datetime], list[Decision]]] = {
    RuleKind.log_threshold.value: log_threshold,
    RuleKind.deadline.value: deadline,
    RuleKind.metric_shift.value: metric_shift,
    RuleKind.http_probe.value: http_probe,
    RuleKind.ci_silence.value: ci_silence,
}
