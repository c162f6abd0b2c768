"""Sending one notice over one kind of channel, in that channel's own format and within its
limits; raises SendError with the receiver's answer."""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import apprise
import httpx

from dutydesk.notify.models import ChannelKind
from dutydesk.settings import get_settings

# Where apprise-style slack:// and discord:// webhook URLs point.
SLACK_HOOKS = "https://hooks.slack.com/services/"
DISCORD_HOOKS = "https://discord.com/api/webhooks/"


class SendError(Exception):
    """A notice did not get through; the message says what the receiver answered."""


def webhook_url(kind: str, url: str) -> str:
    """The https (or http) URL a slack, discord or webhook channel posts to."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return url
    path = f"{parts.netloc}{parts.path}".strip("/")
    if kind == ChannelKind.slack and parts.scheme == "slack":
        return SLACK_HOOKS + path
    if kind == ChannelKind.discord and parts.scheme == "discord":
        return DISCORD_HOOKS + path
    if kind == ChannelKind.webhook and parts.scheme in ("json", "jsons"):
        scheme = "https" if parts.scheme == "jsons" else "http"
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    raise SendError(f"a {kind} channel cannot post to a {parts.scheme}:// URL")


@dataclass(frozen=True)
class Notice:
    """One notice as every kind of channel renders it.

    `link` is the ticket's page (or the console for a notice about no ticket); `facts` are
    the ticket's severity, status and so on, by name; `message_id` and `thread_id` are the
    mail headers that make a ticket's notices one thread in mail clients.
    """

    title: str
    body: str
    link: str
    at: dt.datetime
    severity: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    thread_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def colour(self) -> str:
        """The colour of the notice's severity (green for a resolved ticket)."""
        if self.facts.get("Status") == "closed":
            return RESOLVED_COLOUR
        return COLOURS.get(self.severity or "", COLOURS["info"])


# Colours by severity, as Slack attachments and Discord embeds show them at the side.
COLOURS = {"critical": "#d32f2f", "high": "#ef6c00", "warning": "#f9a825", "info": "#1e88e5"}
RESOLVED_COLOUR = "#2e7d32"

# What the services take (longer messages are refused, not cut, by them).
SLACK_SECTION = 3000
DISCORD_CONTENT = 2000
DISCORD_TITLE = 256
DISCORD_DESCRIPTION = 4096
DISCORD_FIELD_NAME = 256
DISCORD_FIELD_VALUE = 1024
DISCORD_FIELDS = 25
DISCORD_EMBED_TOTAL = 6000


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, ending in an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escape(text: str) -> str:
    """Text Slack shows as it is: its three control characters `&`, `<`, `>` as entities
    (so `<!channel>` in an alert is text, not a mention of the channel)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_cut(text: str, limit: int) -> str:
    """`slack_escape(text)` in at most `limit` characters, never cut inside an entity."""
    escaped = slack_escape(text)
    if len(escaped) <= limit:
        return escaped
    kept, size = [], 0
    for character in text:
        entity = slack_escape(character)
        if size + len(entity) > limit - 1:
            break
        kept.append(entity)
        size += len(entity)
    return "".join(kept) + "…"


def slack_body(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message: the title as its text, and an attachment in the
    severity's colour whose blocks hold the body and a link to the ticket."""
    title = _slack_cut(notice.title, 300)
    facts = " · ".join(slack_escape(v) for k, v in notice.facts.items() if k != "Ticket")
    link = f"<{slack_escape(notice.link)}|{slack_escape(notice.facts.get('Ticket', 'open'))}>"
    section = f"*{title}*\n" + _slack_cut(notice.body, SLACK_SECTION - len(title) - 3)
    return {
        "text": f"*{title}*",
        "attachments": [
            {
                "color": notice.colour,
                "fallback": title,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": section.strip()}},
                    {
                        "type": "context",
                        "elements": [
                            {"type": "mrkdwn", "text": cut(f"{link} {facts}".strip(), 3000)}
                        ],
                    },
                ],
            }
        ],
    }


def discord_body(notice: Notice) -> dict[str, Any]:
    """A Discord webhook message with one embed (colour, link, time, fields), cut to Discord's
    limits, that mentions nobody whatever its text says (`allowed_mentions` parses none)."""
    fields: list[dict[str, Any]] = [
        {
            "name": cut(name, DISCORD_FIELD_NAME),
            "value": cut(value, DISCORD_FIELD_VALUE),
            "inline": True,
        }
        for name, value in list(notice.facts.items())[:DISCORD_FIELDS]
        if value
    ]
    title = cut(notice.title, DISCORD_TITLE)
    used = len(title) + sum(len(f["name"]) + len(f["value"]) for f in fields)
    embed: dict[str, Any] = {
        "title": title,
        "description": cut(notice.body, min(DISCORD_DESCRIPTION, DISCORD_EMBED_TOTAL - used)),
        "url": notice.link,
        "timestamp": notice.at.astimezone(dt.UTC).isoformat(),
        "color": int(notice.colour.removeprefix("#"), 16),
        "fields": fields,
    }
    for name in ("description", "fields"):
        if not embed[name]:
            del embed[name]  # Discord refuses an empty description
    return {
        "content": cut(notice.title, DISCORD_CONTENT),
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    }


def text_body(notice: Notice) -> str:
    """The body of a plain-text notice (mail, apprise), ending with the link to the ticket."""
    return f"{notice.body}\n\n{notice.link}".strip()


def _post(url: str, payload: dict[str, Any]) -> None:
    timeout = get_settings().notify_timeout_seconds
    try:
        reply = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as error:
        raise SendError(f"could not reach {urlsplit(url).netloc}: {error}") from error
    if reply.status_code >= 400:
        raise SendError(f"{urlsplit(url).netloc} answered {reply.status_code}: {reply.text[:300]}")


def _mail(address: str, notice: Notice) -> None:
    settings = get_settings()
    if not settings.mail_host:
        raise SendError("no outgoing mail server: set DUTYDESK_MAIL_HOST")
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = address.removeprefix("mailto:")
    message["Subject"] = notice.title
    message["Date"] = format_datetime(notice.at.astimezone(dt.UTC))
    message["Message-ID"] = notice.message_id or make_msgid(domain=_mail_domain())
    if notice.thread_id:
        message["In-Reply-To"] = notice.thread_id
        message["References"] = notice.thread_id
    message.set_content(text_body(notice))
    timeout = settings.notify_timeout_seconds
    try:
        with smtplib.SMTP(settings.mail_host, settings.mail_port, timeout=timeout) as smtp:
            if settings.mail_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.mail_user:
                smtp.login(settings.mail_user, settings.mail_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise SendError(f"mail to {message['To']} failed: {error}") from error


def _mail_domain() -> str:
    """The domain of the desk's Message-IDs: its console's host name."""
    return urlsplit(get_settings().base_url).hostname or "dutydesk"


def mail_id(local: str) -> str:
    """A Message-ID of the desk: `<local@console-host>`."""
    return f"<{local}@{_mail_domain()}>"


def load_apprise_plugins() -> None:
    """Have apprise find its plugins now: the first use takes seconds, which a notice should
    not wait for."""
    apprise.Apprise.instantiate("json://localhost")


def send(kind: str, address: str, notice: Notice) -> None:
    """Send one notice in the format of its kind of channel (webhook: Grafana OnCall's)."""
    if kind == ChannelKind.email:
        _mail(address, notice)
    elif kind == ChannelKind.slack and address.startswith(("slack://", "http")):
        _post(webhook_url(kind, address), slack_body(notice))
    elif kind == ChannelKind.discord:
        _post(webhook_url(kind, address), discord_body(notice))
    elif kind == ChannelKind.webhook:
        _post(webhook_url(kind, address), notice.payload)
    else:
        notifier = apprise.Apprise()
        if not notifier.add(address):
            raise SendError("apprise does not understand this URL")
        if not notifier.notify(body=text_body(notice) or notice.title, title=notice.title):
            raise SendError("apprise could not deliver the notice (see the worker log)")
