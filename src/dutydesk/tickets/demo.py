"""Demo tickets: two months of alarms from several sources, triaged the way the weekly
meeting does it: notes (some with words found nowhere else), assignments, closes, tracker
links, and a fresh batch still open and unassigned for the next meeting."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.people.service import find_user
from dutydesk.tickets import service
from dutydesk.tickets.models import Ticket

DEMO_DAYS = 60
SEED = 4
# Alarm firings over the two months: about 250 tickets, and a first demo start that does not
# keep a two-core laptop busy for long (each firing goes through the real ticket service).
FIRINGS = 700
# (source, fingerprint, title, description, severity, weight)
ALARMS: tuple[tuple[str, str, str, str, str, int], ...] = (
    (
        "alertmanager",
        "am-errors-bridge-worker",
        "ERROR lines above 10/hour on bridge-worker",
        "The worker logged 37 ERROR lines in the last hour.",
        "high",
        6,
    ),
    (
        "alertmanager",
        "am-warn-bridge-worker",
        "WARN lines above 100/hour on bridge-worker",
        "The worker logged 212 WARN lines in the last hour.",
        "warning",
        8,
    ),
    (
        "alertmanager",
        "am-disk-db-1",
        "Disk usage above 90% on db-1",
        "Filesystem /var/lib/postgresql is 93% full.",
        "critical",
        2,
    ),
    (
        "alertmanager",
        "am-5xx-api",
        "HTTP 5xx rate above 2% on api",
        "Upstream timeouts from the record store.",
        "high",
        4,
    ),
    (
        "export-monitor",
        "export-finished-missing",
        "Finished processing request missing",
        'No "Finished processing request" line 3 hours after the nightly export began.',
        "critical",
        3,
    ),
    (
        "export-monitor",
        "export-slow",
        "Nightly export slower than 2 hours",
        "The export took 2 h 41 min.",
        "warning",
        4,
    ),
    (
        "export-monitor",
        "export-upload-queue-backlog",
        "Upload queue backlog above 5,000 messages",
        "The upload queue held 7,412 messages for 40 minutes: the worker fell behind.",
        "critical",
        1,
    ),
    (
        "heartbeat",
        "hb-nightly-backup",
        "Heartbeat missed: nightly-backup",
        "No ping from the backup job for 26 hours.",
        "high",
        3,
    ),
    (
        "heartbeat",
        "hb-synapse-sync",
        "Heartbeat missed: synapse-sync",
        "The sync job did not report in its window.",
        "warning",
        3,
    ),
    (
        "github-ci",
        "ci-exporter-main",
        "CI pipeline failed: exporter on main",
        "workflow_run conclusion=failure on main.",
        "warning",
        5,
    ),
    (
        "email",
        "mail-bounce-notices",
        "Downtime notice bounced for 3 recipients",
        "Mailer-daemon returned 550 for three contact-list addresses.",
        "info",
        2,
    ),
)
NOTES = (
    "Looked at the worker logs: the errors are retries against the record store, nothing lost.",
    "Restarted the worker; errors stopped after the **quokka** replica came back.",
    "Same as last week: the upload burst from the *marmalade* cohort app release.",
    "Checked `pg_stat_activity`, one long vacuum on the records table. Waiting it out.",
    "Re-drove the failed tables; the kestrel schema revision was missing on the warehouse side.",
    "Talked to the study team, they paused the zeppelin survey while we look.",
    "False alarm: the threshold is too low for Mondays. Proposing 150 WARN lines/hour.",
    "Backup ran late because the snapshot host was patched; see the change notice.",
    "Disk cleaned: old WAL archives removed, 41% free now.",
)
RESOLUTIONS = (
    "Transient; recovered without action.",
    "Fixed by restarting the worker.",
    "Threshold adjusted in the alarm rule.",
    "Data re-driven; counts match again.",
    "Known issue, tracked upstream.",
)
OPERATORS = ("olga", "omar", "ada", "dirk")


@registry.demo_seeder("tickets")
def seed_tickets(session: Session, context: registry.DemoContext) -> None:
    """Two months of tickets, once: nothing is added when the desk has tickets already."""
    if session.scalar(select(func.count()).select_from(Ticket)):
        return
    rng = random.Random(SEED)
    now = utcnow()
    people = [name for name in OPERATORS if find_user(session, name) is not None]
    weights = [alarm[5] for alarm in ALARMS]
    start = now - dt.timedelta(days=DEMO_DAYS)
    moments = sorted(
        start + dt.timedelta(seconds=rng.uniform(0, DEMO_DAYS * 86400)) for _ in range(FIRINGS)
    )
    tickets: dict[int, Ticket] = {}
    for moment in moments:
        source, fingerprint, title, description, severity, _weight = rng.choices(ALARMS, weights)[0]
        variant = rng.randrange(6)
        alarm = service.Alarm(
            source=source,
            fingerprint=f"{fingerprint}-{variant}",
            title=title,
            description=description,
            severity=severity,
            payload={"labels": {"alertname": fingerprint, "instance": f"node-{variant}"}},
            occurred_at=moment,
        )
        outcome = service.open_or_update_ticket(session, alarm)
        ticket = outcome.ticket
        assert ticket is not None
        tickets[ticket.id] = ticket
        if outcome.is_new and ticket.severity == "critical":
            # Whoever was on duty was told when it opened: the desk's self-check looks for
            # that notice on every critical ticket still open.
            service.record_notification(
                session,
                ticket,
                channel="email",
                recipient="rotation:ops",
                reason="first notification",
                actor="notify",
                at=moment + dt.timedelta(minutes=1),
            )
        # Triage happens after a while; the last two days are left for the next meeting.
        age = now - moment
        if not outcome.is_new or age < dt.timedelta(days=2):
            continue
        when = moment + dt.timedelta(minutes=rng.uniform(5, 600))
        if people and rng.random() < 0.85:
            who = rng.choice(people)
            service.acknowledge(session, ticket, actor=who, at=when)
            service.assign(session, ticket, who, actor=who, at=when)
            if rng.random() < 0.7:
                text = rng.choice(NOTES)
                service.add_note(session, ticket, text, author=who, at=when)
            if rng.random() < 0.9:
                done = when + dt.timedelta(hours=rng.uniform(0.2, 30))
                link = None
                if rng.random() < 0.25:
                    link = f"https://tracker.example/browse/OPS-{rng.randrange(100, 999)}"
                service.close_ticket(
                    session,
                    ticket,
                    resolution=rng.choice(RESOLUTIONS),
                    link_url=link,
                    actor=who,
                    at=min(done, now),
                )
    context.note(f"{len(tickets)} tickets over {DEMO_DAYS} days")
