"""Mail counters on /metrics: counted by the SMTP listener (and the IMAP poll) in their own
processes, seen by a scrape of the web because `dutydesk up` gives every process one shared
multiprocess directory.

A real `dutydesk up`, real mail over SMTP (smtplib), a real scrape with a read token; the IMAP
poll against a real IMAP server (pymap). The `dutydesk` commands other than `up` run in this
process, on the same DUTYDESK_HOME as `up`.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.intake.jobs import mailbox_name
from dutydesk.web.metrics import mail_outcome
from tests.intake.conftest import make_integration
from tests.intake.test_imap_server import ImapServer, desk_polls, imap_server, poll
from tests.intake.test_imap_server import mail as imap_mail
from tests.test_metrics import scrape as scrape_app
from tests.test_metrics import value
from tests.test_metrics_scrape import in_desk, read_token, scrape
from tests.test_processes import CONSOLE_LINE, up_children
from tests.test_worker import Processes, desk_env, free_port, wait_until

__all__ = ["desk_polls", "imap_server"]  # the IMAP tests' fixtures, used here


def mail(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "nagios@example.org"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Host db-1 is DOWN")
    return message


@pytest.mark.worker
@pytest.mark.timeout(600)
def test_a_scrape_of_up_counts_the_mail_its_smtp_listener_took(
    processes: Processes, home: Path
) -> None:
    smtp_port = free_port()
    env = desk_env(home, DUTYDESK_SMTP_PORT=str(smtp_port), DUTYDESK_LOG_LEVEL="WARNING")
    in_desk(home, "db", "upgrade")
    token = read_token(home)
    port = free_port()
    up = processes.start("up", ["up", "--port", str(port)], env)
    processes.wait_for_output(up, CONSOLE_LINE, timeout=240)
    up_children(up)
    listener = {"source": "smtp", "listener": f"127.0.0.1:{smtp_port}"}

    def received() -> float:
        key = ("dutydesk_mail_received_total", tuple(sorted(listener.items())))
        return scrape(port, token)[0].get(key, 0.0)

    assert received() == 0
    # The listener may take a moment after `up` announces the console.
    wait_until(lambda: _connects(smtp_port), 60, "the SMTP listener to answer")
    # No e-mail integration yet: the listener refuses the mail (550).
    with (
        smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.send_message(mail("nagios@desk.example", "** PROBLEM Host Alert: db-0 **"))
    assert refused.value.smtp_code == 550
    in_desk(home, "integrations", "create", "--kind", "email", "--name", "nagios")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
        client.send_message(mail("nagios@desk.example", "** PROBLEM Host Alert: db-1 is DOWN **"))
        client.send_message(mail("nagios@desk.example", "** PROBLEM Host Alert: db-2 is DOWN **"))

    samples, text = scrape(port, token)
    labels = tuple(sorted(listener.items()))
    assert samples[("dutydesk_mail_received_total", labels)] == 3
    for outcome, count in (("accepted", 2), ("refused", 1)):
        key = tuple(sorted({**listener, "outcome": outcome}.items()))
        assert samples[("dutydesk_mail_messages_total", key)] == count, outcome
    assert "# TYPE dutydesk_mail_messages_total counter" in text
    # The web's own counters come through the same directory.
    assert any(name == "dutydesk_http_requests_total" for name, _labels in samples)


def _connects(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] == 250
    except OSError:
        return False


def test_mail_outcomes_follow_the_smtp_reply() -> None:
    assert mail_outcome("250 OK: recorded") == "accepted"
    assert mail_outcome("451 4.7.1 Rate limit reached, try again later") == "deferred"
    assert mail_outcome("550 5.1.1 No e-mail integration takes this mail") == "refused"
    assert mail_outcome(None) == "failed"


def test_a_scrape_counts_the_mail_the_imap_poll_took_under_its_mailbox(
    client: TestClient, db: Session, desk_polls: ImapServer
) -> None:
    make_integration(db, "email", "alerts")
    labels = {"source": "imap", "listener": "127.0.0.1/INBOX"}
    before = scrape_app(client, db)
    desk_polls.append(imap_mail("Backup failed (job 1)", 1), imap_mail("Backup failed (job 2)", 2))
    assert poll(db) == 2
    after = scrape_app(client, db)
    assert (
        value(after, "dutydesk_mail_received_total", **labels)
        == (value(before, "dutydesk_mail_received_total", **labels) or 0) + 2
    )
    accepted = {**labels, "outcome": "accepted"}
    assert (
        value(after, "dutydesk_mail_messages_total", **accepted)
        == (value(before, "dutydesk_mail_messages_total", **accepted) or 0) + 2
    )
    secret = desk_polls.url()
    assert mailbox_name(secret) == "127.0.0.1/INBOX"
