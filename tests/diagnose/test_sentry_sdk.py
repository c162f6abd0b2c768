"""The real sentry-sdk, in a process of its own, sends to a real desk (uvicorn on loopback)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from dutydesk.db import transaction
from dutydesk.diagnose import service
from dutydesk.diagnose.models import ExceptionGroup
from dutydesk.people import service as people
from dutydesk.people.models import Role
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Ticket
from dutydesk.web.access import SESSION_COOKIE
from tests.conftest import TEST_PASSWORD
from tests.intake.desk_server import serving_desk

APP = textwrap.dedent(
    """
    import os
    import sys

    import sentry_sdk

    sentry_sdk.init(
        dsn=sys.argv[1],
        release="shop@1.4",
        environment="staging",
        default_integrations=False,
        debug=True,
        _experiments={"transport_compression_algo": "gzip"},  # the envelope is sent gzipped
    )


    def checkout(items):
        return 100 / items


    if sys.argv[2] == "errors":
        for _ in range(2):
            try:
                checkout(0)
            except ZeroDivisionError as error:
                sentry_sdk.capture_exception(error)
        try:
            average = 100 / 0
        except ZeroDivisionError as error:
            sentry_sdk.capture_exception(error)
    else:
        with sentry_sdk.new_scope() as scope:
            scope.add_attachment(bytes=os.urandom(400_000), filename="core.bin")
            sentry_sdk.capture_message("with a big attachment")
    sentry_sdk.flush(timeout=10)
    """
)


def run_app(tmp_path: Path, dsn: str, mode: str) -> str:
    """Run the app script; its SDK's debug log (stderr) is returned."""
    script = tmp_path / "shop_app.py"
    script.write_text(APP)
    done = subprocess.run(
        [sys.executable, str(script), dsn, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + done.stderr


def test_sentry_sdk_events_group_open_tickets_and_show_stack_traces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_EXCEPTION_MAX_BODY_BYTES", "200000")
    get_settings.cache_clear()
    with serving_desk(tmp_path) as (base, factory):
        with transaction(factory) as session:
            project = service.create_project(session, name="shop", actor="test")
            dsn = service.dsn(project, base)
            wrong_dsn = dsn.replace(project.public_key, "0" * 32)
            viewer = people.add_user(
                session, "viewer", Role.viewer.value, email=None, password=TEST_PASSWORD
            )
            cookie = people.start_session(session, viewer, hours=1, client="test")

        log = run_app(tmp_path, dsn, "errors")
        assert "Unexpected status code" not in log, log
        with transaction(factory) as session:
            groups = session.scalars(select(ExceptionGroup).order_by(ExceptionGroup.id)).all()
            assert [(g.title, g.count) for g in groups] == [
                ("ZeroDivisionError: division by zero", 2),
                ("ZeroDivisionError: division by zero", 1),
            ]
            assert [(g.first_release, g.environment) for g in groups] == [
                ("shop@1.4", "staging"),
                ("shop@1.4", "staging"),
            ]
            titles = session.scalars(select(Ticket.title).where(Ticket.source == "exceptions"))
            assert sorted(titles) == ["[shop] ZeroDivisionError: division by zero"] * 2
            first_id, second_id = groups[0].id, groups[1].id

        # A loaded machine renders the first page slowly: more than httpx's default 5 s.
        with httpx.Client(base_url=base, cookies={SESSION_COOKIE: cookie}, timeout=60) as browser:
            page = browser.get(f"/exceptions/{first_id}")
            assert page.status_code == 200
            assert (
                'File "shop_app.py", line 18, in checkout' in page.text
                and "return 100 / items" in page.text
            )
            other = browser.get(f"/exceptions/{second_id}")
            assert "average = 100 / 0" in other.text and "in checkout" not in other.text

        refused = run_app(tmp_path, wrong_dsn, "errors")
        assert "Unexpected status code: 401" in refused, refused
        oversized = run_app(tmp_path, dsn, "big")
        assert "HTTP 413" in oversized, oversized
        with transaction(factory) as session:
            assert (
                session.scalar(select(ExceptionGroup.id).where(ExceptionGroup.id > second_id))
                is None
            )
