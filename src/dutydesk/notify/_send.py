"""Sending one notice over one kind of channel; raises SendError with the receiver's answer."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
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


def slack_body(title: str, body: str) -> dict[str, Any]:
    """A Slack incoming-webhook message."""
    return {"text": f"*{title}*\n{body}".strip()}


def discord_body(title: str, body: str) -> dict[str, Any]:
    """A Discord webhook message with one embed."""
    return {"content": title[:2000], "embeds": [{"title": title[:256], "description": body[:4096]}]}


def _post(url: str, payload: dict[str, Any]) -> None:
    timeout = get_settings().notify_timeout_seconds
    try:
        reply = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as error:
        raise SendError(f"could not reach {urlsplit(url).netloc}: {error}") from error
    if reply.status_code >= 400:
        raise SendError(f"{urlsplit(url).netloc} answered {reply.status_code}: {reply.text[:300]}")


def _mail(address: str, title: str, body: str) -> None:
    settings = get_settings()
    if not settings.mail_host:
        raise SendError("no outgoing mail server: set DUTYDESK_MAIL_HOST")
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = address.removeprefix("mailto:")
    message["Subject"] = title
    message.set_content(body)
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


def load_apprise_plugins() -> None:
    """Have apprise find its plugins now: the first use takes seconds, which a notice should
    not wait for."""
    apprise.Apprise.instantiate("json://localhost")


def send(kind: str, address: str, title: str, body: str, payload: dict[str, Any]) -> None:
    """Send one notice; `payload` is the Grafana OnCall-shaped body for webhook channels."""
    if kind == ChannelKind.email:
        _mail(address, title, body)
    elif kind == ChannelKind.slack and address.startswith(("slack://", "http")):
        _post(webhook_url(kind, address), slack_body(title, body))
    elif kind == ChannelKind.discord:
        _post(webhook_url(kind, address), discord_body(title, body))
    elif kind == ChannelKind.webhook:
        _post(webhook_url(kind, address), payload)
    else:
        notifier = apprise.Apprise()
        if not notifier.add(address):
            raise SendError("apprise does not understand this URL")
        if not notifier.notify(body=body or title, title=title):
            raise SendError("apprise could not deliver the notice (see the worker log)")
