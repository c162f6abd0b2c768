"""The debug checklist run on a service: each line a verdict (ok, unusual, failing, unknown)
with its evidence; a line whose source cannot be read says unknown and why, and the run goes
on. The result is kept as a diagnosis and, when run for a ticket, as the ticket's note."""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.db import utcnow, write_phase
from dutydesk.diagnose._service_models import DiagnoseService, Diagnosis

log = logging.getLogger(__name__)


class Verdict(enum.StrEnum):
    """What a checklist line found.

    ok: the source was read and nothing stands out.
    unusual: something stands out against its baseline or is worth a look (a recent release,
        a firing alarm, a long query).
    failing: the source shows a fault now (lock waits, a process down, 5xx above baseline).
    unknown: the source could not be read or is not configured; the evidence says why.
    """

    ok = "ok"
    unusual = "unusual"
    failing = "failing"
    unknown = "unknown"


@dataclass
class Evidence:
    """One fact behind a verdict, with a link to where it can be seen when there is one."""

    text: str
    link: str | None = None


@dataclass
class Line:
    """One checklist line's outcome."""

    key: str
    title: str
    verdict: Verdict
    evidence: list[Evidence] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The line as JSON-ready data."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        return data


@dataclass(frozen=True)
class Context:
    """What every check sees: the session, the service and the moment of the run."""

    session: Session
    service: DiagnoseService
    now: dt.datetime


Check = Callable[[Context], Line]

TITLES = {
    "alarms": "Monitoring warnings: open alarms",
    "host_load": "Hosts' load against its baseline",
    "database": "Database: connections, long queries, lock waits, replication lag",
    "responses": "Responses: 5xx and response times",
    "logs": "Logs: error lines in the last hour",
    "exceptions": "Exceptions users saw, new since the last release",
    "instances": "Other running instances (Supervisor)",
    "changes": "Releases and change requests in the last 24 hours",
    "ci": "CI pipelines",
}


def _checks() -> dict[str, Check]:
    import dutydesk.diagnose._checks_lines as _checks_lines
    import dutydesk.diagnose._checks_sources as _checks_sources

    return {
        "alarms": _checks_lines.alarms,
        "host_load": _checks_sources.host_load,
        "database": _checks_sources.database,
        "responses": _checks_sources.responses,
        "logs": _checks_sources.logs,
        "exceptions": _checks_lines.exceptions,
        "instances": _checks_sources.instances,
        "changes": _checks_lines.changes,
        "ci": _checks_lines.ci,
    }


def run_checklist(
    session: Session, service: DiagnoseService, *, now: dt.datetime | None = None
) -> list[Line]:
    """Run each of the service's checklist lines, in its order."""
    context = Context(session, service, now or utcnow())
    checks = _checks()
    lines = []
    for key in service.config.get("checklist", []):
        title = TITLES.get(key, key)
        try:
            with session.begin_nested():
                line = checks[key](context)
        # A line must never fail the run: whatever its source raised, the line says unknown
        # with the error, and the rest of the checklist runs.
        except Exception as error:  # noqa: BLE001
            log.warning("diagnose %s: line %s failed: %s", service.name, key, error)
            line = Line(key, title, Verdict.unknown, [Evidence(f"{type(error).__name__}: {error}")])
        lines.append(line)
    return lines


def render_markdown(service: DiagnoseService, lines: list[Line], at: dt.datetime) -> str:
    """The diagnosis as a Markdown note: one bullet per line with its evidence beneath."""
    out = [f"**Diagnosis of {service.name}** at {at:%Y-%m-%d %H:%M} UTC", ""]
    for line in lines:
        out.append(f"- **{line.verdict.value.upper()}** {line.title}")
        for item in line.evidence:
            text = item.text.replace("\n", " ")
            out.append(f"  - [{text}]({item.link})" if item.link else f"  - {text}")
    return "\n".join(out)


def diagnose(
    session: Session,
    service: DiagnoseService,
    *,
    actor: str,
    ticket_key: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Diagnosis, list[Line]]:
    """Run the checklist and keep it as a diagnosis (and as a note on the ticket, if any).

    The checklist only reads, for seconds; what it found is written in a transaction of its
    own, begun after it (on SQLite, one that read while another process wrote could not write).
    """
    from dutydesk.tickets import service as tickets

    at = now or utcnow()
    ticket = tickets.get_ticket(session, ticket_key) if ticket_key else None
    lines = run_checklist(session, service, now=at)
    write_phase(session)
    kept = Diagnosis(
        service_id=service.id,
        ticket_id=ticket.id if ticket else None,
        actor=actor,
        at=at,
        lines=[line.as_dict() for line in lines],
    )
    session.add(kept)
    session.flush()
    if ticket is not None:
        note = render_markdown(service, lines, at)
        tickets.add_note(session, ticket, note[: tickets.MAX_NOTE], author=actor, at=at)
    return kept, lines


def lines_of(diagnosis: Diagnosis) -> list[Line]:
    """A kept diagnosis's lines."""
    return [
        Line(
            item["key"],
            item["title"],
            Verdict(item["verdict"]),
            [Evidence(**evidence) for evidence in item["evidence"]],
        )
        for item in diagnosis.lines
    ]
