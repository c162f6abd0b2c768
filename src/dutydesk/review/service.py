"""The review's period, its agenda (one section per item of the weekly meeting, each written
from the desk's own data and linking to the pages behind it) and marking a review held."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.db import utcnow
from dutydesk.export.models import ExportRun
from dutydesk.intake.models import InboxItem
from dutydesk.metrics.models import MetricPoint
from dutydesk.notify.models import Delivery
from dutydesk.review import _trends
from dutydesk.review.models import ReviewAction, ReviewMark
from dutydesk.settings import get_settings
from dutydesk.tickets import service as tickets
from dutydesk.tickets.models import Ticket
from dutydesk.web.overview import is_pipeline

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
TOP = 10
# The review e-mail's trend charts show this many periods before the reviewed one.
TREND_PERIODS_BEFORE = 4
STALE_DAYS = 7


class ReviewError(ValueError):
    """Input the review cannot use; the message says what was wrong."""


@dataclass(frozen=True)
class Period:
    """The stretch a review covers, and how it is named."""

    start: dt.datetime
    end: dt.datetime
    label: str


@dataclass
class Section:
    """One agenda item: its lines, the page behind it, or why its source is missing."""

    key: str
    title: str
    link: str
    lines: list[str] = field(default_factory=list)
    missing: str | None = None
    # A page per line (`/dashboards/series?...`), or "" where a line has none; may be shorter.
    links: list[str] = field(default_factory=list)
    link_text: str = "open"

    def add(self, line: str, link: str = "") -> None:
        """Append a line, with the page behind it."""
        self.links += [""] * (len(self.lines) - len(self.links)) + [link]
        self.lines.append(line)

    def linked(self) -> list[tuple[str, str]]:
        """Each line with its page ("" for none)."""
        return [
            (line, self.links[i] if i < len(self.links) else "")
            for i, line in enumerate(self.lines)
        ]


def period_for(session: Session, week: str | None, *, now: dt.datetime | None = None) -> Period:
    """The ISO week `week` (`2026-W49`), or without one: since the last review (a week back
    when there was none) until now."""
    now = now or utcnow()
    if week:
        match = WEEK.match(week.strip())
        if not match:
            raise ReviewError(f"week {week!r} is not an ISO week such as 2026-W49")
        try:
            day = dt.date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        except ValueError:
            raise ReviewError(f"week {week!r} does not exist") from None
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return Period(start, start + dt.timedelta(days=7), week.strip())
    last = session.scalar(select(ReviewMark).order_by(ReviewMark.marked_at.desc()).limit(1))
    if last is None:
        return Period(now - dt.timedelta(days=7), now, "the last 7 days")
    return Period(last.period_end, now, "since the last review")


def _optional(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):
            return None
        raise


def _minutes(seconds: list[float]) -> str:
    return f"{statistics.mean(seconds) / 60:.0f} min" if seconds else "n/a"


def ci_section(session: Session, period: Period) -> Section:
    """Pipelines that failed in the period and whether they are still failing."""
    section = Section("ci", "CI and integration tests", "/alarms")
    alarms = session.scalars(
        select(Alarm)
        .where(is_pipeline(), Alarm.last_fired_at >= period.start)
        .where(Alarm.first_fired_at < period.end)
        .order_by(Alarm.occurrences.desc())
    ).all()
    for alarm in alarms:
        state = "still failing" if alarm.state == "firing" else "passing again"
        section.lines.append(f"{alarm.title}: {alarm.occurrences} failure(s), {state}")
    if not alarms:
        section.lines.append("No pipeline failed.")
    return section


def tickets_section(session: Session, period: Period) -> Section:
    """Tickets opened and closed, MTTA and MTTR, the noisiest alarms, open and unassigned, stale."""
    section = Section("tickets", "Alarms and tickets", "/tickets")
    opened = session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.first_seen_at >= period.start, Ticket.first_seen_at < period.end)
    )
    closed = session.scalars(
        select(Ticket).where(Ticket.closed_at >= period.start, Ticket.closed_at < period.end)
    ).all()
    acked = session.scalars(
        select(Ticket).where(
            Ticket.acknowledged_at >= period.start, Ticket.acknowledged_at < period.end
        )
    ).all()
    mtta = [
        (t.acknowledged_at - t.first_seen_at).total_seconds() for t in acked if t.acknowledged_at
    ]
    mttr = [(t.closed_at - t.first_seen_at).total_seconds() for t in closed if t.closed_at]
    section.lines.append(
        f"{opened} opened, {len(closed)} closed; MTTA {_minutes(mtta)}, MTTR {_minutes(mttr)}"
    )
    noisy = session.execute(
        select(Alarm.fingerprint, Alarm.occurrences)
        .where(Alarm.last_fired_at >= period.start, Alarm.first_fired_at < period.end)
        .order_by(Alarm.occurrences.desc(), Alarm.fingerprint)
        .limit(5)
    ).all()
    if noisy:
        section.lines.append(
            "Noisiest: " + ", ".join(f"{fingerprint} ({n})" for fingerprint, n in noisy)
        )
    is_open = Ticket.status != "closed"
    unassigned = session.scalar(
        select(func.count()).select_from(Ticket).where(is_open, Ticket.assignee_id.is_(None))
    )
    stale = session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(is_open, Ticket.last_seen_at < period.end - dt.timedelta(days=STALE_DAYS))
    )
    section.lines.append(
        f"Still open and unassigned: {unassigned}; stale (quiet {STALE_DAYS} days): {stale}"
    )
    notices = Counter(
        dict(
            session.execute(
                select(Delivery.state, func.count())
                .where(Delivery.created_at >= period.start, Delivery.created_at < period.end)
                .group_by(Delivery.state)
            ).all()
        )
    )
    states = ", ".join(f"{n} {state}" for state, n in sorted(notices.items())) or "none"
    section.add(f"Notices: {sum(notices.values())} ({states})", "/notify/deliveries")
    return section


def inbox_section(session: Session, period: Period) -> Section:
    """Mail that came in, grouped by sender and subject (the mailing list's fallback)."""
    section = Section("inbox", "The inbox", "/inbox")
    groups: Counter[tuple[str, str]] = Counter()
    for headers in session.scalars(
        select(InboxItem.headers).where(
            InboxItem.source.in_(("smtp", "imap", "email")),
            InboxItem.received_at >= period.start,
            InboxItem.received_at < period.end,
        )
    ):
        lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        groups[(lowered.get("from", "?"), lowered.get("subject", "(no subject)"))] += 1
    for (sender, subject), count in groups.most_common(TOP):
        section.lines.append(f"{sender}: {subject} ({count})")
    if not groups:
        section.lines.append("No mail came in.")
    return section


def trends_section(session: Session, period: Period) -> Section:
    """Series that moved in the period against their baseline before it, by the shift rules'
    test, largest relative change first, whether or not an alarm fired (silenced ones say so);
    each with its numbers and a link to its chart."""
    section = Section("trends", "Trends", "/dashboards", link_text="chart")
    for trend in _trends.trends(session, period.start, period.end, limit=TOP):
        section.add(trend.line(), trend.link)
    if not section.lines:
        section.add("No series moved beyond its baseline band.")
    return section


def export_section(session: Session, period: Period) -> Section:
    """Export runs by state, their durations against the runs before, records per study."""
    section = Section("export", "Export health", "/exports")
    runs = session.scalars(
        select(ExportRun).where(
            ExportRun.created_at >= period.start, ExportRun.created_at < period.end
        )
    ).all()
    states = Counter(run.state for run in runs)
    section.lines.append(
        f"{len(runs)} run(s): "
        + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none")
    )
    earlier = session.scalars(
        select(ExportRun)
        .where(ExportRun.created_at < period.start, ExportRun.finished_at.is_not(None))
        .order_by(ExportRun.id.desc())
        .limit(30)
    ).all()

    def seconds(run: ExportRun) -> float | None:
        if run.started_at and run.finished_at:
            return (run.finished_at - run.started_at).total_seconds()
        return None

    now_s = [s for s in map(seconds, runs) if s is not None]
    base_s = [s for s in map(seconds, earlier) if s is not None]
    if now_s:
        baseline = f" (baseline {statistics.median(base_s):.0f} s)" if base_s else ""
        section.lines.append(f"Median duration {statistics.median(now_s):.0f} s{baseline}")
    per_study: Counter[str] = Counter()
    for labels, value in session.execute(
        select(MetricPoint.labels, MetricPoint.value).where(
            MetricPoint.name == "export.numTotal",
            MetricPoint.at >= period.start,
            MetricPoint.at < period.end,
        )
    ):
        per_study[str((labels or {}).get("study", "?"))] += int(value)
    if per_study:
        section.lines.append(
            "Records: " + ", ".join(f"{study} {n}" for study, n in sorted(per_study.items()))
        )
    return section


def redrive_section(session: Session, period: Period) -> Section:
    """Re-drive batches touched in the period and their state."""
    section = Section("redrive", "Re-drives", "/redrives")
    models = _optional("dutydesk.runbooks.redrive.models")
    if models is None:
        section.missing = "Re-drives are not part of this installation."
        return section
    batch = models.RedriveBatch
    for row in session.scalars(
        select(batch).where(batch.updated_at >= period.start, batch.created_at < period.end)
    ):
        section.lines.append(f"Batch {row.id} of {row.month}: {row.state}")
    if not section.lines:
        section.lines.append("No re-drive batch.")
    return section


def releases_section(session: Session, period: Period) -> Section:
    """Releases planned or run in the period, and the change notices sent."""
    section = Section("releases", "Releases and change notices", "/releases")
    models = _optional("dutydesk.runbooks.releases.models")
    if models is None:
        section.missing = "Releases are not part of this installation."
    else:
        release = models.Release
        for row in session.scalars(
            select(release).where(
                release.created_at >= period.start, release.created_at < period.end
            )
        ):
            section.lines.append(f"Release {row.version}: {row.state}")
    audit = _optional("dutydesk.audit.models")
    notice = getattr(audit, "ChangeNotice", None)
    if notice is not None:
        count = session.scalar(
            select(func.count())
            .select_from(notice)
            .where(notice.created_at >= period.start, notice.created_at < period.end)
        )
        section.lines.append(f"{count} change notice(s)")
    return section


def backups_section(session: Session, period: Period) -> Section:
    """Backups taken and restore drills run in the period, per target."""
    section = Section("backups", "Backups and drills", "/backups")
    models = _optional("dutydesk.backups.models")
    if models is None:
        section.missing = "Backups are not part of this installation."
        return section
    for target in session.scalars(select(models.BackupTarget).order_by(models.BackupTarget.name)):
        taken = session.scalar(
            select(func.count())
            .select_from(models.Backup)
            .where(
                models.Backup.target_id == target.id,
                models.Backup.started_at >= period.start,
                models.Backup.started_at < period.end,
            )
        )
        drills = Counter(
            session.scalars(
                select(models.RestoreDrill.state).where(
                    models.RestoreDrill.target_id == target.id,
                    models.RestoreDrill.started_at >= period.start,
                    models.RestoreDrill.started_at < period.end,
                )
            )
        )
        drilled = ", ".join(f"{n} {s}" for s, n in sorted(drills.items())) or "none"
        section.lines.append(f"{target.name}: {taken} backup(s); drills: {drilled}")
    if not section.lines:
        section.lines.append("No backup target.")
    return section


def duty_section(session: Session, period: Period) -> Section:
    """Who was on duty in the period and who is next, per rotation."""
    from dutydesk.duty import service as duty

    section = Section("duty", "On duty", "/duty")
    for rotation in duty.list_rotations(session):
        shifts = duty.shifts(rotation, period.start, period.end)
        people = ", ".join(dict.fromkeys(shift.user.username for shift in shifts)) or "nobody"
        upcoming = duty.current_shift(rotation, max(period.end, utcnow()))
        following = duty.current_shift(rotation, upcoming.ends_at) if upcoming else None
        next_name = following.user.username if following else "nobody"
        section.lines.append(f"{rotation.name}: {people}; next {next_name}")
    if not section.lines:
        section.lines.append("No rotation.")
    return section


SECTIONS = (
    ci_section,
    tickets_section,
    inbox_section,
    trends_section,
    export_section,
    redrive_section,
    releases_section,
    backups_section,
    duty_section,
)


def agenda(session: Session, period: Period) -> list[Section]:
    """Every section of the review of `period`, in the meeting's order."""
    return [build(session, period) for build in SECTIONS]


def to_markdown(period: Period, sections: list[Section]) -> str:
    """The review as Markdown: the same sections, in the same order, as the page."""
    start, end = period.start.strftime("%Y-%m-%d %H:%M"), period.end.strftime("%Y-%m-%d %H:%M")
    lines = [f"# Weekly review: {period.label}", "", f"{start} to {end} UTC", ""]
    base = get_settings().base_url.rstrip("/")
    for section in sections:
        lines += [f"## {section.title}", ""]
        if section.missing:
            lines.append(f"- {section.missing}")
        for line, link in [] if section.missing else section.linked():
            lines.append(f"- {line} ([{section.link_text}]({base}{link}))" if link else f"- {line}")
        lines.append("")
    return "\n".join(lines)


def mark_reviewed(
    session: Session,
    period: Period,
    *,
    attendees: list[str],
    notes: str,
    actions: list[str],
    actor: str,
) -> ReviewMark:
    """Record the review held (the next one starts at its end); each action item becomes a
    ticket naming the review."""
    attendees = [name.strip() for name in attendees if name.strip()]
    if not attendees:
        raise ReviewError("name at least one attendee")
    mark = ReviewMark(
        period_start=period.start,
        period_end=period.end,
        marked_by=actor,
        attendees=attendees,
        notes=notes.strip(),
    )
    session.add(mark)
    session.flush()
    for text in (a.strip() for a in actions):
        if not text:
            continue
        if len(text) > 300:
            raise ReviewError("an action item is longer than 300 characters")
        made = tickets.create_ticket(
            session,
            title=text,
            description=f"Action item of the review of {period.label} (review {mark.id}).",
            severity="info",
            actor=actor,
        )
        ticket_id = made.ticket.id if made.ticket is not None else None
        mark.actions.append(ReviewAction(text=text, ticket_id=ticket_id))
    session.flush()
    return mark


def last_marks(session: Session, limit: int = 5) -> list[ReviewMark]:
    """The newest reviews held."""
    return list(
        session.scalars(select(ReviewMark).order_by(ReviewMark.marked_at.desc()).limit(limit))
    )
