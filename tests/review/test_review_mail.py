"""The review as an HTML e-mail: it reaches a real SMTP server once per week from the set
weekday and hour, with the page's sections and a chart of each moved series as an inline PNG."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy.orm import Session

from dutydesk.notify.service import create_contact_list
from dutydesk.people import service as people
from dutydesk.review import mail, service
from tests.conftest import clear_caches
from tests.mail_support import smtp_server
from tests.review.test_review import MONDAY, fill_week

# The Monday after the filled week, 08:30 UTC: the default weekday and hour have come.
SEND_AT = MONDAY + dt.timedelta(days=7, hours=8, minutes=30)


def mail_settings(monkeypatch: pytest.MonkeyPatch, list_name: str = "review") -> None:
    monkeypatch.setenv("DUTYDESK_REVIEW_MAIL_LIST", list_name)
    clear_caches()


def test_the_review_mail_arrives_as_html_with_its_sections_and_charts(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_week(db)
    people.add_user(db, "ann", "viewer", email="ann@example.org", password="x" * 16)
    create_contact_list(db, name="review", members=["ann", "ops@example.org"])
    with smtp_server(monkeypatch) as inbox:
        mail_settings(monkeypatch)
        sent = mail.send_weekly(db, now=SEND_AT)
    assert sent == ["ann@example.org", "ops@example.org"]
    [message] = inbox.messages
    assert message["X-Rcpt"] == "ann@example.org, ops@example.org"
    assert message["Subject"] == "[dutydesk review] the last 7 days"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert set(parts) >= {"text/plain", "text/html", "image/png", "multipart/related"}
    page = parts["text/html"].get_payload(decode=True).decode()
    titles = re.findall(r"<h2><a href=\"[^\"]+\">([^<]+)</a></h2>", page)
    period = service.period_for(db, None, now=SEND_AT)
    assert titles == [s.title for s in service.agenda(db, period)]
    # The mail covers the 7 days before it, from Monday 08:30: its first point is Tuesday's.
    assert "export.uniqueHealthCodes[s1]: 50 on 2026-11-24 08:00 against a baseline" in page
    # Every image the HTML refers to by cid: is attached as a PNG with that Content-ID.
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    referred = re.findall(r'src="cid:([^"]+)"', page)
    assert referred and len(images) == len(referred)
    for image in images:
        assert image["Content-ID"].strip("<>") in referred
        png = image.get_payload(decode=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 200
    # The plain-text part is the review's Markdown.
    text = parts["text/plain"].get_payload(decode=True).decode()
    assert text.startswith("# Weekly review: the last 7 days")
    assert "## Trends" in text


def test_the_review_mail_goes_once_a_week_and_not_before_its_hour(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_week(db)
    create_contact_list(db, name="review", members=["ops@example.org"])
    with smtp_server(monkeypatch) as inbox:
        mail_settings(monkeypatch)
        assert mail.send_weekly(db, now=SEND_AT - dt.timedelta(hours=1)) == []  # 07:30 Monday
        assert mail.send_weekly(db, now=SEND_AT) == ["ops@example.org"]
        assert mail.send_weekly(db, now=SEND_AT + dt.timedelta(hours=3)) == []
        assert mail.send_weekly(db, now=SEND_AT + dt.timedelta(days=3)) == []  # same week
        assert mail.send_weekly(db, now=SEND_AT + dt.timedelta(days=7)) == ["ops@example.org"]
    assert len(inbox.messages) == 2


def test_no_review_mail_without_a_list_or_with_an_unknown_one(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(monkeypatch) as inbox:
        mail_settings(monkeypatch, "")
        assert mail.send_weekly(db, now=SEND_AT) == []
        mail_settings(monkeypatch, "nobody-list")
        assert mail.send_weekly(db, now=SEND_AT) == []
    assert inbox.messages == []


def test_a_failed_send_names_the_server_problem_and_is_tried_again(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_contact_list(db, name="review", members=["ops@example.org"])
    with smtp_server(monkeypatch):
        pass  # the server is stopped: its port now refuses
    mail_settings(monkeypatch)
    failed = r"the review e-mail to ops@example\.org failed"
    with pytest.raises(mail.ReviewMailError, match=failed), db.begin_nested():
        mail.send_weekly(db, now=SEND_AT)
    with smtp_server(monkeypatch) as inbox:
        mail_settings(monkeypatch)
        assert mail.send_weekly(db, now=SEND_AT) == ["ops@example.org"]
    assert len(inbox.messages) == 1
