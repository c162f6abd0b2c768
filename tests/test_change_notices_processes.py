"""With real `dutydesk web` and `dutydesk worker` processes and no beat at all, an admin's role
change on the users page reaches the change-notice list's address in a real SMTP server: the
notice waits for no tick."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.message import Message

import httpx
import pytest

from dutydesk.db import session_factory, transaction
from dutydesk.notify import service as notify
from dutydesk.people import service as people
from dutydesk.settings import get_settings
from tests.notify.conftest import mail_server  # noqa: F401 - the real SMTP server fixture
from tests.test_change_notices import LIST_ADDRESS, body
from tests.test_processes import healthy
from tests.test_worker import Desk, free_port, make_desk, wait_until

__all__ = ["make_desk"]  # the fixture, used by name below
PASSWORD = "correct horse battery staple"


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_a_role_change_on_the_users_page_is_mailed_at_once_with_no_beat_running(
    make_desk: Callable[..., Desk],
    mail_server: list[Message],  # noqa: F811
) -> None:
    settings = get_settings()
    desk = make_desk()
    desk.env.update(
        DUTYDESK_CHANGE_NOTICE_LIST="change-watchers",
        DUTYDESK_MAIL_HOST=settings.mail_host,
        DUTYDESK_MAIL_PORT=str(settings.mail_port),
        DUTYDESK_MAIL_STARTTLS="false",
    )
    desk.migrate()
    with transaction(session_factory(desk.engine), actor="test") as session:
        notify.create_contact_list(session, name="change-watchers", members=[LIST_ADDRESS])
        people.add_user(session, "root", "admin", email=None, password=PASSWORD)
        ana_id = people.add_user(session, "ana", "operator", email=None, password=PASSWORD).id
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    desk.processes.start("web", ["web", "--port", str(port)], desk.env)
    wait_until(lambda: healthy(base), 60, "the web process to answer")
    desk.start_worker()

    with httpx.Client(base_url=base, timeout=30) as browser:
        token = form_token(browser.get("/login").text)
        signed_in = browser.post(
            "/login", data={"username": "root", "password": PASSWORD, "csrf_token": token}
        )
        assert signed_in.status_code == 303, signed_in.text
        token = form_token(browser.get("/users").text)
        started = time.monotonic()
        changed = browser.post(
            f"/users/{ana_id}", data={"role": "approver", "active": "true", "csrf_token": token}
        )
        assert changed.status_code == 303, changed.text

    def role_notice() -> Message | None:
        return next((m for m in mail_server if "role" in str(m["Subject"])), None)

    notice = wait_until(role_notice, 60, "the role change's notice in the SMTP server")
    print(f"the notice arrived {time.monotonic() - started:.1f} s after the change")
    assert notice["To"] == LIST_ADDRESS
    assert notice["Subject"] == f"[dutydesk change] root changed users {ana_id} (ana): role"
    assert "role: operator → approver" in body(notice)
    assert "Who: root" in body(notice)
