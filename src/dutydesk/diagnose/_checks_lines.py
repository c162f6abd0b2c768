"""Checklist lines read from the desk's own tables: open alarms, exception groups, recent
releases and change requests, CI pipelines."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from dutydesk.alarms.models import Alarm, AlarmState
from dutydesk.diagnose import service as exceptions_service
from dutydesk.diagnose.checks import TITLES, Context, Evidence, Line, Verdict
from dutydesk.diagnose.models import ExceptionGroup, ExceptionProject
from dutydesk.intake.models import Integration
from dutydesk.runbooks.models import ChangeRequest
from dutydesk.runbooks.releases.models import Release

DAY = dt.timedelta(hours=24)
RECENT = dt.timedelta(hours=1)
MAX_SHOWN = 10


def _alarm_evidence(alarm: Alarm) -> Evidence:
    link = f"/tickets/{alarm.ticket_id}" if alarm.ticket_id else None
    return Evidence(
        f"{alarm.severity} alarm firing since {alarm.first_fired_at:%Y-%m-%d %H:%M}: "
        f"{alarm.title} ({alarm.occurrences}x)",
        link,
    )


def alarms(context: Context) -> Line:
    """Firing alarms; those labelled with the service (or naming it) make the line unusual."""
    name = context.service.name
    firing = list(
        context.session.scalars(
            select(Alarm)
            .where(Alarm.state == AlarmState.firing.value)
            .order_by(Alarm.last_fired_at.desc())
            .limit(500)
        )
    )
    ours = [
        alarm
        for alarm in firing
        if (alarm.labels or {}).get("service") == name or name in alarm.title.lower()
    ]
    evidence = [_alarm_evidence(alarm) for alarm in ours[:MAX_SHOWN]]
    evidence.append(Evidence(f"{len(firing)} alarm(s) firing in all, {len(ours)} about {name}"))
    verdict = Verdict.unusual if ours else Verdict.ok
    return Line("alarms", TITLES["alarms"], verdict, evidence)


def exceptions(context: Context) -> Line:
    """Exception groups of the service's projects seen in the last 24 hours, those new since
    the project's newest release first."""
    names = context.service.config.get("projects", [])
    if not names:
        return Line(
            "exceptions",
            TITLES["exceptions"],
            Verdict.unknown,
            [Evidence("no exception projects configured for this service")],
        )
    session = context.session
    evidence: list[Evidence] = []
    projects = list(
        session.scalars(select(ExceptionProject).where(ExceptionProject.name.in_(names)))
    )
    missing = sorted(set(names) - {project.name for project in projects})
    evidence += [Evidence(f"no exception project named {name}") for name in missing]
    new_groups, recent = 0, 0
    for project in projects:
        newest = exceptions_service.newest_release(session, project.id)
        groups = list(
            session.scalars(
                select(ExceptionGroup)
                .where(
                    ExceptionGroup.project_id == project.id,
                    ExceptionGroup.last_seen >= context.now - DAY,
                )
                .order_by(ExceptionGroup.last_seen.desc())
                .limit(200)
            )
        )
        fresh = [g for g in groups if newest is not None and g.first_release == newest]
        new_groups += len(fresh)
        recent += sum(1 for g in groups if g.last_seen >= context.now - RECENT)
        evidence.append(
            Evidence(
                f"{project.name}: {len(groups)} group(s) seen in 24 h, {len(fresh)} new since "
                f"release {newest or '(none named)'}",
                f"/exceptions?project={project.id}",
            )
        )
        for group in (fresh + [g for g in groups if g not in fresh])[:MAX_SHOWN]:
            mark = "NEW since last release, " if group in fresh else ""
            evidence.append(
                Evidence(
                    f"{mark}{group.count} event(s), last {group.last_seen:%Y-%m-%d %H:%M}: "
                    f"{group.title}",
                    f"/exceptions/{group.id}",
                )
            )
    if not projects:
        verdict = Verdict.unknown
    elif new_groups or recent:
        verdict = Verdict.unusual
    else:
        verdict = Verdict.ok
    return Line("exceptions", TITLES["exceptions"], verdict, evidence)


def changes(context: Context) -> Line:
    """Releases started, ended or planned and change requests updated in the last 24 hours:
    a recent update could be the cause."""
    since = context.now - DAY
    session = context.session
    releases = list(
        session.scalars(
            select(Release)
            .where(
                or_(
                    Release.started_at >= since,
                    Release.ended_at >= since,
                    Release.created_at >= since,
                )
            )
            .order_by(Release.id.desc())
            .limit(MAX_SHOWN)
        )
    )
    requests = list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.updated_at >= since)
            .order_by(ChangeRequest.updated_at.desc())
            .limit(MAX_SHOWN)
        )
    )
    evidence = [
        Evidence(
            f"release {release.version} ({release.state}) {release.title}".rstrip(),
            f"/releases/{release.id}",
        )
        for release in releases
    ]
    evidence += [
        Evidence(
            f"change request {change.id} ({change.state}): {change.title}", f"/changes/{change.id}"
        )
        for change in requests
    ]
    if not evidence:
        evidence.append(Evidence("no releases nor change requests in the last 24 hours"))
    verdict = Verdict.unusual if releases or requests else Verdict.ok
    return Line("changes", TITLES["changes"], verdict, evidence)


def ci(context: Context) -> Line:
    """Firing alarms of the service's CI pipelines (integrations by name)."""
    names = context.service.config.get("pipelines", [])
    if not names:
        return Line("ci", TITLES["ci"], Verdict.unknown, [Evidence("no CI pipelines configured")])
    session = context.session
    found = {
        integration.name: integration.id
        for integration in session.scalars(select(Integration).where(Integration.name.in_(names)))
    }
    evidence = [Evidence(f"no integration named {name}") for name in names if name not in found]
    failing = 0
    for name, integration_id in sorted(found.items()):
        firing = list(
            session.scalars(
                select(Alarm).where(
                    Alarm.integration_id == integration_id,
                    Alarm.state == AlarmState.firing.value,
                )
            )
        )
        failing += len(firing)
        evidence.append(Evidence(f"{name}: {len(firing)} failing pipeline alarm(s)"))
        evidence += [_alarm_evidence(alarm) for alarm in firing[:MAX_SHOWN]]
    verdict = Verdict.failing if failing else Verdict.ok
    if not found:
        verdict = Verdict.unknown
    return Line("ci", TITLES["ci"], verdict, evidence)
