"""The review as an HTML e-mail: the page's sections, the Markdown as the plain-text part, and a
chart of each series that moved as an inline PNG (`cid:`), sent once a week to a contact list."""

from __future__ import annotations

import datetime as dt
import html
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.metrics.models import MetricPoint
from dutydesk.review import service
from dutydesk.review._chart import line_chart
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)
CHARTS = 4


class ReviewMailError(RuntimeError):
    """The review e-mail could not be sent; the message says why."""


def moved_series(sections: list[service.Section]) -> list[str]:
    """The keys of the series the trends section lists, largest move first."""
    trends = next((s for s in sections if s.key == "trends" and not s.missing), None)
    if trends is None:
        return []
    return [line.partition(": ")[0] for line, link in trends.linked() if link]


def charts(session: Session, period: service.Period, keys: list[str]) -> dict[str, bytes]:
    """A PNG per series: its points over the period and the periods the trends compare with."""
    since = period.start - (period.end - period.start) * service.TREND_PERIODS_BEFORE
    made: dict[str, bytes] = {}
    for key in keys[:CHARTS]:
        rows = session.execute(
            select(MetricPoint.at, MetricPoint.value)
            .where(MetricPoint.series == key, MetricPoint.at >= since)
            .where(MetricPoint.at < period.end)
            .order_by(MetricPoint.at, MetricPoint.id)
        ).all()
        values = [value for _, value in rows]
        inside = next((i for i, (at, _) in enumerate(rows) if at >= period.start), len(rows))
        made[key] = line_chart(values, inside)
    return made


def _html(
    period: service.Period, sections: list[service.Section], cids: dict[str, str], base: str
) -> str:
    start, end = period.start.strftime("%Y-%m-%d %H:%M"), period.end.strftime("%Y-%m-%d %H:%M")
    parts = [
        '<!doctype html><html><body style="font-family: sans-serif">',
        f"<h1>Weekly review: {html.escape(period.label)}</h1>",
        f"<p>{start} to {end} UTC</p>",
    ]
    for section in sections:
        link = html.escape(base + section.link)
        parts.append(f'<h2><a href="{link}">{html.escape(section.title)}</a></h2><ul>')
        for line, page in [(section.missing, "")] if section.missing else section.linked():
            more = f' <a href="{html.escape(base + page)}">{section.link_text}</a>' if page else ""
            parts.append(f"<li>{html.escape(line)}{more}</li>")
        parts.append("</ul>")
        if section.key == "trends":
            for key, cid in cids.items():
                parts.append(
                    f'<p>{html.escape(key)}<br><img src="cid:{cid.strip("<>")}" '
                    f'alt="{html.escape(key)}" width="480" height="120"></p>'
                )
    parts.append(f'<p><a href="{html.escape(base)}/review">Open the review</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def review_message(session: Session, period: service.Period) -> EmailMessage:
    """The review of `period` as a message: text and HTML alternatives, charts inline."""
    settings = get_settings()
    sections = service.agenda(session, period)
    pictures = charts(session, period, moved_series(sections))
    cids = {key: make_msgid(domain="review.dutydesk") for key in pictures}
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["Subject"] = f"[dutydesk review] {period.label}"
    message["Date"] = format_datetime(utcnow())
    message.set_content(service.to_markdown(period, sections))
    message.add_alternative(
        _html(period, sections, cids, settings.base_url.rstrip("/")), subtype="html"
    )
    html_part = message.get_body(("html",))
    if html_part is None:  # set just above; the check is for the type checker
        raise ReviewMailError("the review e-mail lost its HTML part")
    for key, png in pictures.items():
        html_part.add_related(png, "image", "png", cid=cids[key], filename=f"chart-{len(cids)}.png")
    return message


def recipients(session: Session, list_name: str) -> list[str]:
    """The e-mail addresses of a contact list: bare addresses and each person's e-mail methods."""
    from dutydesk.notify.service import contact_methods, get_contact_list

    found: list[str] = []
    for entry in get_contact_list(session, list_name).entries:
        if entry.user is not None:
            for _, kind, address in contact_methods(session, entry.user):
                if kind == "email":
                    found.append(address.removeprefix("mailto:"))
        elif entry.address:
            found.append(entry.address)
    return list(dict.fromkeys(found))


def send(message: EmailMessage, to: list[str]) -> None:
    """Send through the desk's outgoing mail server."""
    settings = get_settings()
    if not settings.mail_host:
        raise ReviewMailError("no outgoing mail server: set DUTYDESK_MAIL_HOST")
    message["To"] = ", ".join(to)
    try:
        with smtplib.SMTP(
            settings.mail_host, settings.mail_port, timeout=settings.notify_timeout_seconds
        ) as smtp:
            if settings.mail_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.mail_user:
                smtp.login(settings.mail_user, settings.mail_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise ReviewMailError(f"the review e-mail to {message['To']} failed: {error}") from error


def send_weekly(session: Session, *, now: dt.datetime | None = None) -> list[str]:
    """From the set weekday and hour on, mail the review (since the last review) to the set
    list once per ISO week; returns the addresses sent to (none when not due or already sent).
    A failed send raises, so the week's mark rolls back and the next tick tries again."""
    from dutydesk.jobs.service import is_due

    settings = get_settings()
    now = now or utcnow()
    name = settings.review_mail_list.strip()
    if not name:
        return []
    if (now.isoweekday(), now.hour) < (settings.review_mail_weekday, settings.review_mail_hour):
        return []
    year, week, _ = now.isocalendar()
    from dutydesk.notify.service import NotifyError

    try:
        to = recipients(session, name)
    except NotifyError:
        log.warning("DUTYDESK_REVIEW_MAIL_LIST names %r, which is no contact list", name)
        return []
    if not to or not is_due(
        session, f"review.mail:{year}-W{week:02d}", dt.timedelta(days=7), now=now
    ):
        return []
    send(review_message(session, service.period_for(session, None, now=now)), to)
    return to
