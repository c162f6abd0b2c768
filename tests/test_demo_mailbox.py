"""The demo's outgoing mail server: a local catcher whose mail the Demo mailbox page shows."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.notify import service as notify
from dutydesk.notify.democatcher import catcher, catcher_environment, free_port
from dutydesk.people.models import Role
from dutydesk.processes import child_commands
from dutydesk.settings import get_settings
from tests.conftest import clear_caches, make_user, sign_in


def use_catcher(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Give this test the settings `up --demo` gives its processes."""
    for name, value in catcher_environment(port).items():
        monkeypatch.setenv(name, value)
    clear_caches()


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the catcher exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail("the catcher did not listen within 20 s")


def test_a_notice_sent_through_the_catcher_process_is_delivered_and_shown(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    db: Session,
    factory: sessionmaker[Session],
    client: TestClient,
) -> None:
    port = free_port()
    use_catcher(monkeypatch, port)
    process = subprocess.Popen(
        child_commands("127.0.0.1", 8000, demo_mail=True)["demo-mail"],
        env={**os.environ},
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        channel = notify.create_channel(db, name="ops-mail", url="mailto:ops@desk.example")
        delivery = notify.send_test(db, channel, actor="test")
        db.commit()
        assert notify.deliver(factory, delivery.id) == "sent"
        sign_in(client, db, make_user(db, Role.viewer))
        page = client.get("/demo/mailbox")
        assert page.status_code == 200
        assert "dutydesk test notice for ops-mail" in page.text
        assert "ops@desk.example" in page.text
        assert "Sent by test to check the channel works." in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert len(list((home / "demo-mail").glob("*.eml"))) == 1


def test_mailbox_lists_the_newest_first_with_everything_escaped(
    monkeypatch: pytest.MonkeyPatch, db: Session, client: TestClient
) -> None:
    port = free_port()
    use_catcher(monkeypatch, port)
    server = catcher(get_settings())
    server.start()
    try:
        for subject in ("first <b>notice</b>", "second <script>alert(1)</script>"):
            message = EmailMessage()
            message["From"] = "dutydesk@localhost"
            message["To"] = "ada@desk.example"
            message["Subject"] = subject
            message.set_content(f"body of {subject} & more")
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                smtp.send_message(message)
    finally:
        server.stop()
    sign_in(client, db, make_user(db, Role.viewer))
    page = client.get("/demo/mailbox").text
    assert page.index("second &lt;script&gt;alert(1)&lt;/script&gt;") < page.index(
        "first &lt;b&gt;notice&lt;/b&gt;"
    )
    assert "<script>alert" not in page
    assert "body of first &lt;b&gt;notice&lt;/b&gt; &amp; more" in page


def test_mailbox_page_and_link_exist_only_while_the_catcher_is_on(
    monkeypatch: pytest.MonkeyPatch, db: Session, client: TestClient
) -> None:
    assert client.get("/demo/mailbox").status_code in (302, 303)  # signed out: sign in first
    sign_in(client, db, make_user(db, Role.viewer))
    assert client.get("/demo/mailbox").status_code == 404
    assert "Demo mailbox" not in client.get("/").text
    use_catcher(monkeypatch, free_port())
    assert 'href="/demo/mailbox"' in client.get("/").text
    empty = client.get("/demo/mailbox")
    assert empty.status_code == 200 and 'id="no-mail"' in empty.text


def test_up_starts_the_catcher_only_for_the_demo() -> None:
    assert "demo-mail" not in child_commands("127.0.0.1", 8000)
    demo = child_commands("127.0.0.1", 8000, demo_mail=True)
    assert next(iter(demo)) == "demo-mail"
    assert demo["demo-mail"] == [sys.executable, "-m", "dutydesk.notify.democatcher"]
