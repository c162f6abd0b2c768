"""The desk's own series, counted per clock hour from its tables: log lines per source and
level, intake items per integration and outcome, tickets opened, MTTA and MTTR, deliveries,
HTTP probe latencies, and the RPO and RTO of restore drills."""

from __future__ import annotations

import datetime as dt
import importlib
from collections import Counter, defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import AlarmRule, RuleEvaluation, RuleKind
from dutydesk.intake.models import InboxItem, Integration, LogCount
from dutydesk.metrics.service import Point, record
from dutydesk.notify.models import Delivery
from dutydesk.tickets.models import Ticket

SOURCE = "desk:hourly"
HOUR = dt.timedelta(hours=1)


def collect_hour(session: Session, start: dt.datetime) -> int:
    """Write the points of the hour from `start` (at `start`, replacing earlier ones for it);
    returns how many. A series with nothing in the hour gets no point."""
    end = start + HOUR
    points = [
        *_log_lines(session, start, end),
        *_intake(session, start, end),
        *_tickets(session, start, end),
        *_deliveries(session, start, end),
        *_probes(session, start, end),
        *_drills(session, start, end),
    ]
    return record(session, SOURCE, start, points)


def _log_lines(session: Session, start: dt.datetime, end: dt.datetime) -> list[Point]:
    counts: Counter[tuple[str, str]] = Counter()
    for source, level, count in session.execute(
        select(LogCount.source, LogCount.level, LogCount.count).where(
            LogCount.minute >= start, LogCount.minute < end
        )
    ):
        counts[(source, level)] += count
    return [
        Point("logs.lines", n, {"source": source, "level": level})
        for (source, level), n in counts.items()
    ]


def _intake(session: Session, start: dt.datetime, end: dt.datetime) -> list[Point]:
    counts: Counter[tuple[str, str]] = Counter()
    for name, outcome in session.execute(
        select(Integration.name, InboxItem.outcome)
        .select_from(InboxItem)
        .outerjoin(Integration, Integration.id == InboxItem.integration_id)
        .where(InboxItem.received_at >= start, InboxItem.received_at < end)
    ):
        counts[(name or "(none)", outcome)] += 1
    return [
        Point("intake.items", n, {"integration": name, "outcome": outcome})
        for (name, outcome), n in counts.items()
    ]


def _tickets(session: Session, start: dt.datetime, end: dt.datetime) -> list[Point]:
    opened: Counter[str] = Counter()
    waits: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows = session.execute(
        select(
            Ticket.severity, Ticket.first_seen_at, Ticket.acknowledged_at, Ticket.closed_at
        ).where(
            (Ticket.first_seen_at >= start) & (Ticket.first_seen_at < end)
            | (Ticket.acknowledged_at >= start) & (Ticket.acknowledged_at < end)
            | (Ticket.closed_at >= start) & (Ticket.closed_at < end)
        )
    )
    for severity, seen, acknowledged, closed in rows:
        if start <= seen < end:
            opened[severity] += 1
        if acknowledged is not None and start <= acknowledged < end:
            waits["tickets.mtta_seconds"][severity].append((acknowledged - seen).total_seconds())
        if closed is not None and start <= closed < end:
            waits["tickets.mttr_seconds"][severity].append((closed - seen).total_seconds())
    points = [Point("tickets.opened", n, {"severity": s}) for s, n in opened.items()]
    for name, by_severity in waits.items():
        points.extend(
            Point(name, sum(values) / len(values), {"severity": severity})
            for severity, values in by_severity.items()
        )
    return points


def _deliveries(session: Session, start: dt.datetime, end: dt.datetime) -> list[Point]:
    counts: Counter[tuple[str, str]] = Counter(
        (kind, state)
        for kind, state in session.execute(
            select(Delivery.kind, Delivery.state).where(
                Delivery.created_at >= start, Delivery.created_at < end
            )
        )
    )
    return [
        Point("notify.deliveries", n, {"kind": kind, "state": state})
        for (kind, state), n in counts.items()
    ]


def _probes(session: Session, start: dt.datetime, end: dt.datetime) -> list[Point]:
    latencies: dict[str, list[float]] = defaultdict(list)
    for name, numbers in session.execute(
        select(AlarmRule.name, RuleEvaluation.numbers)
        .join(AlarmRule, AlarmRule.id == RuleEvaluation.rule_id)
        .where(
            AlarmRule.kind == RuleKind.http_probe.value,
            RuleEvaluation.at >= start,
            RuleEvaluation.at < end,
        )
    ):
        latency = (numbers or {}).get("latency_ms")
        if isinstance(latency, int | float):
            latencies[name].append(float(latency))
    return [
        Point("probes.latency_ms", sum(values) / len(values), {"rule": name})
        for name, values in latencies.items()
    ]


def _drills(session: Session, start: dt.datetime, end: dt.datetime) -> list[Point]:
    try:
        models = importlib.import_module("dutydesk.backups.models")
    except ModuleNotFoundError:  # an installation without backups has no drills
        return []
    drill, target = models.RestoreDrill, models.BackupTarget
    points = []
    for name, rpo, rto in session.execute(
        select(target.name, drill.rpo_seconds, drill.rto_seconds)
        .join(target, target.id == drill.target_id)
        .where(drill.finished_at >= start, drill.finished_at < end)
        .order_by(drill.finished_at)
    ):
        # The hour's last drill of a target stands for it.
        if rpo is not None:
            points.append(Point("backups.rpo_seconds", float(rpo), {"target": name}))
        if rto is not None:
            points.append(Point("backups.rto_seconds", float(rto), {"target": name}))
    return points
