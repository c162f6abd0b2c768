"""Alarm mail in the senders' own conventions, sent with Debian's swaks to a real SMTP listener:
Alertmanager's and Grafana's `[FIRING:n]` / `[RESOLVED]` subjects and Nagios/Icinga's
`** PROBLEM ... **` / `** RECOVERY ... **` pair up on one ticket; HTML-only mail is kept as
readable text; attachments are listed on the ticket."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.alarms.models import Alarm
from dutydesk.intake._html import html_to_text
from dutydesk.intake.mail import read_subject
from dutydesk.intake.models import InboxItem
from dutydesk.tickets.models import Ticket
from tests.conftest import make_user, sign_in
from tests.intake.conftest import make_integration
from tests.intake.test_smtp import smtp_port  # noqa: F401  (the listener fixture)

SWAKS = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(
    SWAKS is None, reason="Debian's swaks is not installed (apt-get install swaks)"
)


def swaks(port: int, subject: str, *options: str, body: str = "details") -> None:
    """Send one message with swaks to the listener; fail the test if swaks fails."""
    assert SWAKS is not None
    command = [
        SWAKS,
        "--server",
        f"127.0.0.1:{port}",
        "--from",
        "monitor@mon.example",
        "--to",
        "alerts@desk.example",
        "--header",
        f"Subject: {subject}",
        *options,
    ]
    if "--attach-body" not in options:
        command += ["--body", body]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def tickets_by_title(db: Session) -> dict[str, Ticket]:
    db.expire_all()
    return {ticket.title: ticket for ticket in db.scalars(select(Ticket))}


def test_subject_conventions_are_read_by_their_sender() -> None:
    firing = read_subject("[FIRING:3] NodeDown eu1 (critical)")
    resolved = read_subject("[RESOLVED] NodeDown eu1 (critical)")
    assert (firing.title, firing.resolved) == ("NodeDown eu1 (critical)", False)
    assert resolved.group == firing.group and resolved.resolved
    problem = read_subject("** PROBLEM Service Alert: web-1/HTTP is CRITICAL **")
    recovery = read_subject("** RECOVERY Service Alert: web-1/HTTP is OK **")
    assert problem.title == "Service Alert: web-1/HTTP is CRITICAL"
    assert recovery.group == problem.group and recovery.resolved and not problem.resolved
    # Hosts and services that differ only in a number are different checks (not masked).
    assert read_subject("** PROBLEM Service Alert: web-2/HTTP is CRITICAL **").group != (
        problem.group
    )
    host = read_subject("** PROBLEM Host Alert: db-1 is DOWN **")
    assert host.group == read_subject("** RECOVERY Host Alert: db-1 is UP **").group
    icinga = read_subject("[PROBLEM] HTTP on web-1 is CRITICAL!")
    assert icinga.group == read_subject("[RECOVERY] HTTP on web-1 is OK!").group
    assert not read_subject("** ACKNOWLEDGEMENT Host Alert: db-1 is DOWN **").raises
    # Other subjects keep the masked grouping.
    assert (
        read_subject("Backup failed at 02:00").group == read_subject("Backup failed at 03:00").group
    )


def test_html_becomes_text_with_line_breaks_and_link_targets() -> None:
    text = html_to_text(
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<h1>Disk&nbsp;full</h1><p>Host <b>db-1</b> at 93%.<br>See "
        '<a href="https://grafana.example/d/1">the dashboard</a>.</p>'
        "<table><tr><th>alert</th><th>state</th></tr><tr><td>DiskFull</td><td>firing</td></tr>"
        "</table><ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>"
    )
    assert text == (
        "Disk full\n\nHost db-1 at 93%.\nSee the dashboard (https://grafana.example/d/1).\n\n"
        "alert  state\nDiskFull  firing\n\n- one\n- two"
    )


@needs_swaks
def test_alertmanager_mail_firing_then_resolved_closes_one_ticket(
    smtp_port: int,  # noqa: F811
    db: Session,
) -> None:
    make_integration(db, "email", "alerts", close_on_resolve=True)
    swaks(smtp_port, "[FIRING:2] NodeDown eu1 (critical)")
    swaks(smtp_port, "[FIRING:3] NodeDown eu1 (critical)")
    swaks(smtp_port, "[FIRING:1] NodeDown eu2 (critical)")
    swaks(smtp_port, "[RESOLVED] NodeDown eu1 (critical)")
    found = tickets_by_title(db)
    assert set(found) == {"NodeDown eu1 (critical)", "NodeDown eu2 (critical)"}
    eu1, eu2 = found["NodeDown eu1 (critical)"], found["NodeDown eu2 (critical)"]
    assert (eu1.status, eu1.occurrences) == ("closed", 2)
    assert eu2.status == "open"


@needs_swaks
def test_nagios_problem_and_recovery_mails_resolve_the_same_ticket(
    smtp_port: int,  # noqa: F811
    db: Session,
) -> None:
    make_integration(db, "email", "alerts", close_on_resolve=True)
    swaks(smtp_port, "** PROBLEM Service Alert: web-1/HTTP is WARNING **")
    swaks(smtp_port, "** PROBLEM Service Alert: web-1/HTTP is CRITICAL **")
    swaks(smtp_port, "** PROBLEM Service Alert: web-2/HTTP is CRITICAL **")
    swaks(smtp_port, "** PROBLEM Host Alert: db-1 is DOWN **")
    swaks(smtp_port, "** ACKNOWLEDGEMENT Host Alert: db-1 is DOWN **")
    swaks(smtp_port, "** RECOVERY Service Alert: web-1/HTTP is OK **")
    swaks(smtp_port, "** RECOVERY Host Alert: db-1 is UP **")
    found = tickets_by_title(db)
    assert {title: ticket.status for title, ticket in found.items()} == {
        "Service Alert: web-1/HTTP is WARNING": "closed",
        "Service Alert: web-2/HTTP is CRITICAL": "open",
        "Host Alert: db-1 is DOWN": "closed",
    }
    assert found["Service Alert: web-1/HTTP is WARNING"].occurrences == 2
    assert found["Host Alert: db-1 is DOWN"].occurrences == 1, "the acknowledgement adds none"
    notice = db.scalar(select(InboxItem).where(InboxItem.reason.like("%ACKNOWLEDGEMENT%")))
    assert notice is not None and notice.outcome == "accepted"


@needs_swaks
def test_html_only_mail_is_kept_as_readable_text(smtp_port: int, db: Session) -> None:  # noqa: F811
    make_integration(db, "email", "alerts")
    swaks(
        smtp_port,
        "Replication lag on db-2",
        "--add-header",
        "Content-Type: text/html; charset=utf-8",
        body='<html><body><p>Lag is <b>340 s</b>.<br>Runbook: <a href="https://wiki.example/'
        'lag">replication lag</a></p><table><tr><td>primary</td><td>db-1</td></tr></table>'
        "</body></html>",
    )
    db.expire_all()
    (alarm,) = db.scalars(select(Alarm))
    assert alarm.description == (
        "Lag is 340 s.\nRunbook: replication lag (https://wiki.example/lag)\n\nprimary  db-1"
    )
    ticket = db.get(Ticket, alarm.ticket_id)
    assert ticket is not None and "<b>" not in ticket.description


@needs_swaks
def test_attachments_are_listed_on_the_ticket(
    smtp_port: int,  # noqa: F811
    db: Session,
    client: TestClient,
    tmp_path: Path,
) -> None:
    make_integration(db, "email", "alerts")
    log = tmp_path / "pg_dump.log"
    log.write_text("pg_dump: error: connection refused\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    swaks(
        smtp_port,
        "Backup failed on db-1",
        "--attach-body",
        "pg_dump exited with 1",
        "--attach-type",
        "text/plain",
        "--attach",
        f"@{log}",
        "--attach-type",
        "application/octet-stream",
        "--attach",
        f"@{empty}",
    )
    db.expire_all()
    (ticket,) = db.scalars(select(Ticket))
    assert "pg_dump exited with 1" in ticket.description
    assert "- pg_dump.log (35 bytes, text/plain)" in ticket.description
    assert "- empty.txt (0 bytes, application/octet-stream)" in ticket.description
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get(f"/tickets/{ticket.key}")
    assert page.status_code == 200
    listed = page.text.split('id="ticket-attachments"', 1)[1].split("</section>", 1)[0]
    assert "<code>pg_dump.log</code>" in listed and "35 bytes, text/plain" in listed
    assert "<code>empty.txt</code>" in listed and "0 bytes, application/octet-stream" in listed
