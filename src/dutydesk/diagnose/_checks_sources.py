"""Checklist lines read from outside the desk's tables or from scraped series: hosts' load and
responses (metric series), databases (PostgreSQL, read only), logs, Supervisor processes."""

from __future__ import annotations

import datetime as dt
import statistics
import urllib.parse
from collections.abc import Callable

from dutydesk.diagnose import _checks_postgres
from dutydesk.diagnose.checks import TITLES, Context, Evidence, Line, Verdict

BASELINE = dt.timedelta(days=7)
RECENT = dt.timedelta(hours=1)
LOAD_SERIES = ("node_load5", "node_load1")
ERROR_LEVELS = {"error", "err", "critical", "crit", "fatal", "severe", "alert", "emerg"}
_ORDER = [Verdict.ok, Verdict.unknown, Verdict.unusual, Verdict.failing]


def _worst(verdicts: list[Verdict]) -> Verdict:
    return max(verdicts, key=_ORDER.index) if verdicts else Verdict.unknown


def _matches(labels: dict[str, str], wanted: str) -> bool:
    return any(value == wanted or value.startswith(f"{wanted}:") for value in labels.values())


def _against_baseline(
    context: Context, key: str, label: str, *, factor: float, floor: float
) -> tuple[Verdict, Evidence]:
    """The series' latest point against the median of the week before the last hour."""
    from dutydesk.metrics import service as metrics

    points = metrics.series(context.session, key, since=context.now - BASELINE)
    if not points:
        return Verdict.unknown, Evidence(f"{label}: no points in the last 7 days")
    at, latest = points[-1]
    if at < context.now - RECENT:
        return Verdict.unknown, Evidence(
            f"{label}: last point at {at:%Y-%m-%d %H:%M}, over an hour old (is it scraped?)"
        )
    before = [value for moment, value in points if moment < context.now - RECENT]
    if len(before) < 3:
        return Verdict.ok, Evidence(
            f"{label}: {latest:g} now; too few earlier points for a baseline"
        )
    baseline = statistics.median(before)
    unusual = latest > floor and latest > baseline * factor
    verdict = Verdict.unusual if unusual else Verdict.ok
    return verdict, Evidence(f"{label}: {latest:g} now against a baseline of {baseline:g}")


def _series_line(
    context: Context,
    key: str,
    wanted: Callable[[str], bool],
    missing: str,
    *,
    factor: float,
    floor: float,
) -> Line:
    from dutydesk.metrics import service as metrics

    targets = [context.service.name, *context.service.config.get("hosts", [])]
    verdicts, evidence = [], []
    for series, labels in metrics.series_names(context.session):
        name = series.split("[", 1)[0]
        if wanted(name) and any(_matches(labels, target) for target in targets):
            verdict, item = _against_baseline(context, series, series, factor=factor, floor=floor)
            verdicts.append(verdict)
            evidence.append(item)
    if not evidence:
        return Line(key, TITLES[key], Verdict.unknown, [Evidence(missing)])
    return Line(key, TITLES[key], _worst(verdicts), evidence)


def host_load(context: Context) -> Line:
    """Each host's load average (node exporter's series) against its week's baseline."""
    hosts = context.service.config.get("hosts", [])
    if not hosts:
        return Line(
            "host_load", TITLES["host_load"], Verdict.unknown, [Evidence("no hosts configured")]
        )
    return _series_line(
        context,
        "host_load",
        lambda name: name in LOAD_SERIES,
        f"no {' or '.join(LOAD_SERIES)} series labelled with {', '.join(hosts)}: no scrape "
        "of the hosts' node exporter feeds the metric series",
        factor=2.0,
        floor=1.0,
    )


def responses(context: Context) -> Line:
    """5xx counts and response times (series whose name says 5xx or duration) against their
    week's baseline."""
    return _series_line(
        context,
        "responses",
        lambda name: "5xx" in name or "duration" in name or "response_time" in name,
        "no series of 5xx counts or response times labelled with the service or its hosts",
        factor=3.0,
        floor=0.0,
    )


def database(context: Context) -> Line:
    """Each database's activity: lock waits fail the line; long queries, replication lag or
    connections near the limit make it unusual; an unreachable database is unknown."""
    from dutydesk.diagnose import services

    logins = services.database_logins(context.service)
    if not logins:
        return Line(
            "database", TITLES["database"], Verdict.unknown, [Evidence("no databases configured")]
        )
    verdicts, evidence = [], []
    for entry in logins:
        try:
            seen = _checks_postgres.activity(entry.login)
        except _checks_postgres.DatabaseUnreachable as error:
            verdicts.append(Verdict.unknown)
            evidence.append(Evidence(f"{entry.name}: {error}"))
            continue
        states = ", ".join(f"{state} {count}" for state, count in seen["connections"].items())
        total = sum(seen["connections"].values())
        evidence.append(
            Evidence(f"{entry.name}: connections {total} of {seen['max_connections']} ({states})")
        )
        verdict = Verdict.ok
        if seen["max_connections"] and total > 0.8 * seen["max_connections"]:
            verdict = Verdict.unusual
        for query in seen["long_queries"]:
            verdict = Verdict.unusual
            evidence.append(
                Evidence(
                    f"{entry.name}: query of pid {query['pid']} running {query['seconds']} s: "
                    f"{query['query']}"
                )
            )
        for wait in seen["lock_waits"]:
            verdict = Verdict.failing
            blockers = ", ".join(str(pid) for pid in wait["blocked_by"]) or "?"
            evidence.append(
                Evidence(
                    f"{entry.name}: lock wait: pid {wait['pid']} blocked by pid {blockers} for "
                    f"{wait['seconds']} s: {wait['query']}"
                )
            )
        lag = seen["replay_lag_seconds"]
        if seen["standby"]:
            evidence.append(
                Evidence(f"{entry.name}: standby, replay lag {lag if lag is not None else '?'} s")
            )
            if lag is not None and lag > _checks_postgres.LAG_SECONDS:
                verdict = _worst([verdict, Verdict.unusual])
        for replica in seen["replicas"]:
            replica_lag = replica["lag_seconds"]
            evidence.append(
                Evidence(
                    f"{entry.name}: replica {replica['name'] or replica['client']} "
                    f"lag {replica_lag or 0:g} s"
                )
            )
            if replica_lag is not None and replica_lag > _checks_postgres.LAG_SECONDS:
                verdict = _worst([verdict, Verdict.unusual])
        if not seen["standby"] and not seen["replicas"]:
            evidence.append(Evidence(f"{entry.name}: no replication"))
        verdicts.append(verdict)
    return Line("database", TITLES["database"], _worst(verdicts), evidence)


def logs(context: Context) -> Line:
    """Lines of the service's log sources in the last hour by level (or by status for access
    logs), with a link to the query on the Logs page."""
    from dutydesk import logs as log_queries

    sources = context.service.config.get("log_sources", [])
    if not sources:
        return Line(
            "logs", TITLES["logs"], Verdict.unknown, [Evidence("no log sources configured")]
        )
    verdicts, evidence = [], []
    for source in sources:
        link = "/logs?" + urllib.parse.urlencode(
            {"pattern": source, "since": "1h", "group_by": "level", "run": "true"}
        )
        try:
            result = log_queries.run(
                log_queries.Query(sources=(source,), since="1h", group_by=("level",))
            )
        except log_queries.QueryError as error:
            verdicts.append(Verdict.unknown)
            evidence.append(Evidence(f"{source}: {error}", link))
            continue
        counts = {
            str(row.get("level") or ""): int(row["count"]) for row in result.table.to_pylist()
        }
        errors = sum(count for level, count in counts.items() if level.lower() in ERROR_LEVELS)
        shown = (
            ", ".join(f"{level or '-'} {count}" for level, count in counts.items()) or "no lines"
        )
        evidence.append(Evidence(f"{source}: last hour: {shown}", link))
        verdicts.append(Verdict.unusual if errors else Verdict.ok)
    return Line("logs", TITLES["logs"], _worst(verdicts), evidence)


def instances(context: Context) -> Line:
    """The service's processes under Supervisor: one not running fails the line; one running
    on more than one server (an instance to stop) makes it unusual."""
    from dutydesk.diagnose import supervisors
    from dutydesk.diagnose.service import DiagnoseError

    entries = context.service.config.get("supervisors", [])
    if not entries:
        return Line(
            "instances",
            TITLES["instances"],
            Verdict.unknown,
            [Evidence("no Supervisor servers configured")],
        )
    running: dict[str, list[str]] = {}
    verdicts, evidence = [], []
    for entry in entries:
        try:
            server = supervisors.get_server(context.session, entry["server"])
            found = supervisors.processes(server)
        except (DiagnoseError, supervisors.SupervisorUnreachable) as error:
            verdicts.append(Verdict.unknown)
            evidence.append(Evidence(f"{entry['server']}: {error}"))
            continue
        wanted = set(entry.get("processes") or [view.name for view in found])
        for view in found:
            if view.name not in wanted:
                continue
            evidence.append(
                Evidence(
                    f"{server.name} {view.name}: {view.state} {view.description}".rstrip(),
                    f"/supervisors/{server.id}",
                )
            )
            if view.state == "RUNNING":
                running.setdefault(view.name, []).append(server.name)
            elif view.state in ("FATAL", "BACKOFF", "EXITED", "UNKNOWN"):
                verdicts.append(Verdict.failing)
        missing = wanted - {view.name for view in found}
        for name in sorted(missing):
            verdicts.append(Verdict.unusual)
            evidence.append(Evidence(f"{server.name} has no process {name}"))
        verdicts.append(Verdict.ok)
    for name, servers in sorted(running.items()):
        if len(servers) > 1:
            verdicts.append(Verdict.unusual)
            evidence.append(
                Evidence(f"{name} runs on {len(servers)} servers: {', '.join(servers)}")
            )
    return Line("instances", TITLES["instances"], _worst(verdicts), evidence)
