"""Each channel gets the notice in its own conventions: Slack text escaped and in blocks,
Discord embeds that mention nobody, every notice linking to its ticket, mails that thread,
everything cut to the service's limits rather than refused."""

from __future__ import annotations

import datetime as dt
import json
from email.message import Message

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.notify import escalation
from dutydesk.notify import service as notify
from dutydesk.tickets import service as tickets
from tests.conftest import clear_caches
from tests.notify.conftest import T0, Receiver
from tests.notify.test_delivery import deliver_all

BASE = "https://desk.example.org"


@pytest.fixture(autouse=True)
def console_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUTYDESK_BASE_URL", BASE)
    clear_caches()


def everywhere(db: Session, receiver: Receiver, *extra: tuple[str, str | None, str]) -> None:
    """Channels to the receiver in each format, and a policy that tells them all at once."""
    channels = [
        ("slack", "slack", f"{receiver.url}/slack"),
        ("discord", "discord", f"{receiver.url}/discord"),
        ("oncall", "webhook", f"{receiver.url}/oncall"),
        *extra,
    ]
    for name, kind, url in channels:
        notify.create_channel(db, name=name, url=url, kind=kind)
    escalation.create_policy(
        db,
        name="all",
        steps=[{"target": "channel", "name": name, "wait_minutes": 0} for name, _, _ in channels],
        severities=["critical", "warning"],
    )


def alarm_ticket(db: Session, title: str, description: str = "") -> tickets.Ticket:
    alarm = tickets.Alarm(
        source="prometheus",
        fingerprint=title[:50],
        title=title,
        description=description,
        severity="critical",
    )
    ticket = tickets.open_or_update_ticket(db, alarm).ticket
    assert ticket is not None
    return ticket


def test_mentions_in_an_alert_arrive_escaped_on_slack_and_muted_on_discord(
    db: Session, factory: sessionmaker[Session], receiver: Receiver
) -> None:
    everywhere(db, receiver)
    ticket = alarm_ticket(
        db, 'Disk "db-1" full <!channel> @everyone & co', "see <https://evil.example|here> <!here>"
    )
    escalation.run_escalations(db, now=T0)
    assert deliver_all(db, factory, T0) == ["sent"] * 3

    [slack] = receiver.bodies("/slack")
    sent = json.dumps(slack)
    assert "<!channel>" not in sent and "<!here>" not in sent and "<https://evil" not in sent
    assert slack["text"] == f'*[{ticket.key}] Disk "db-1" full &lt;!channel&gt; @everyone &amp; co*'
    [attachment] = slack["attachments"]
    assert attachment["color"] == "#d32f2f"  # critical
    section, context = attachment["blocks"]
    assert "&lt;https://evil.example|here&gt; &lt;!here&gt;" in section["text"]["text"]
    assert context["elements"][0]["text"].startswith(f"<{BASE}/tickets/{ticket.key}|{ticket.key}>")

    [discord] = receiver.bodies("/discord")
    assert discord["allowed_mentions"] == {"parse": []}
    [embed] = discord["embeds"]
    assert embed["title"] == f'[{ticket.key}] Disk "db-1" full <!channel> @everyone & co'
    assert embed["url"] == f"{BASE}/tickets/{ticket.key}"
    assert embed["color"] == 0xD32F2F
    assert dt.datetime.fromisoformat(embed["timestamp"]).tzinfo is not None
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Severity"] == "critical" and fields["Status"] == "open"
    assert fields["Ticket"] == ticket.key and fields["Source"] == "prometheus"

    [oncall] = receiver.bodies("/oncall")
    assert oncall["alert_group"]["permalinks"]["web"] == f"{BASE}/tickets/{ticket.key}"


def test_a_long_alert_is_cut_within_slack_and_discord_limits_and_still_delivered(
    db: Session, factory: sessionmaker[Session], receiver: Receiver
) -> None:
    everywhere(db, receiver)
    alarm_ticket(db, "W" * 290, "a & b < c > d " * 2000 + "the end")
    escalation.run_escalations(db, now=T0)
    assert deliver_all(db, factory, T0) == ["sent"] * 3

    [slack] = receiver.bodies("/slack")
    section = slack["attachments"][0]["blocks"][0]["text"]["text"]
    assert len(section) <= 3000 and section.endswith("…")
    assert section.removesuffix("…").endswith(("&amp;", "&lt;", "&gt;", " ", "a", "b", "c", "d"))
    [discord] = receiver.bodies("/discord")
    [embed] = discord["embeds"]
    assert len(embed["title"]) <= 256 and embed["title"].endswith("…")
    assert len(embed["description"]) <= 4096 and embed["description"].endswith("…")
    assert len(discord["content"]) <= 2000
    total = len(embed["title"]) + len(embed["description"])
    total += sum(len(field["name"]) + len(field["value"]) for field in embed["fields"])
    assert total <= 6000 and len(embed["fields"]) <= 25


def test_mail_and_apprise_notices_link_to_the_ticket_and_a_tickets_mails_thread(
    db: Session,
    factory: sessionmaker[Session],
    receiver: Receiver,
    mail_server: list[Message],
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    everywhere(
        db,
        receiver,
        ("mail", None, "ops@desk.example"),
        ("apprise", "apprise", f"json://127.0.0.1:{port}/apprise"),
    )
    ticket = alarm_ticket(db, "Queue stuck")
    escalation.run_escalations(db, now=T0)
    assert deliver_all(db, factory, T0) == ["sent"] * 5
    [apprise_body] = receiver.bodies("/apprise")
    assert f"{BASE}/tickets/{ticket.key}" in apprise_body["message"]

    tickets.close_ticket(db, ticket, resolution="restarted", actor="ana")
    escalation.run_escalations(db, now=T0 + dt.timedelta(minutes=1))
    deliver_all(db, factory, T0 + dt.timedelta(minutes=1))
    first, resolved = mail_server
    assert resolved["Subject"].startswith(f"[{ticket.key}] resolved")
    for mail in (first, resolved):
        assert f"{BASE}/tickets/{ticket.key}" in mail.get_payload()
        assert mail["Date"] and mail["Message-ID"].endswith("@desk.example.org>")
        assert (
            mail["In-Reply-To"] == mail["References"] == f"<ticket.{ticket.key}@desk.example.org>"
        )
    assert first["Message-ID"] != resolved["Message-ID"]
    resolved_hooks = [b for b in receiver.bodies("/discord") if "resolved" in b["content"]]
    assert resolved_hooks[0]["embeds"][0]["color"] == 0x2E7D32  # green once closed


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "slack"),
        ("https://discord.com/api/webhooks/123/abc", "discord"),
        ("https://discordapp.com/api/webhooks/123/abc", "discord"),
    ],
)
def test_slack_and_discord_https_webhook_urls_are_taken_as_slack_and_discord(
    url: str, kind: str
) -> None:
    assert notify.check_url(url) == (kind, url)


def test_a_notice_about_a_change_request_links_to_its_page_and_threads_with_its_others(
    db: Session,
) -> None:
    import dutydesk.runbooks.service  # noqa: F401  (registers the change page)
    from dutydesk.notify._send import Notice
    from dutydesk.notify.models import Delivery

    def notice(subject: str) -> Notice:
        delivery = Delivery(
            id=1,
            subject=subject,
            target="user:ada",
            channel="mail",
            kind="mail",
            address="ada@desk.example",
            reason="signoff needed",
            sequence="v1",
            title="Signoff needed",
            body="Review it",
            created_at=T0,
        )
        return notify.notice_for(delivery, None)

    signoff, outcome = notice("change:7"), notice("change:7")
    assert signoff.link == outcome.link == f"{BASE}/changes/7"
    assert signoff.thread_id == outcome.thread_id is not None
    assert notice("change:8").thread_id != signoff.thread_id
    # A subject no domain gave a page to links to the console, as before.
    assert notice("override:3").link == f"{BASE}/"
    assert notice("change:../admin").link == f"{BASE}/"
