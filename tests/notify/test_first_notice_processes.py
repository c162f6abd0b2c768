"""With real `dutydesk web` and `dutydesk worker` processes and no beat at all, an alert posted
to intake reaches the channel of a zero-wait policy: nothing waits for a tick."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from dutydesk.db import session_factory, transaction
from dutydesk.intake import service as intake
from dutydesk.jobs.models import Job
from dutydesk.notify import escalation
from dutydesk.notify import service as notify
from tests.notify.conftest import Receiver
from tests.test_processes import healthy
from tests.test_worker import Desk, free_port, make_desk, wait_until

__all__ = ["make_desk"]  # the fixture, used by name below


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_an_alert_reaches_the_channel_with_web_and_worker_running_and_no_beat(
    make_desk: Callable[..., Desk], receiver: Receiver
) -> None:
    desk = make_desk()
    desk.migrate()
    with transaction(session_factory(desk.engine), actor="test") as session:
        notify.create_channel(session, name="ops", url=f"{receiver.url}/slack", kind="slack")
        escalation.create_policy(
            session,
            name="pages",
            steps=[{"target": "channel", "name": "ops", "wait_minutes": 0}],
        )
        path = intake.create_integration(
            session, name="prometheus", kind="generic", actor="test"
        ).path
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    desk.processes.start("web", ["web", "--port", str(port)], desk.env)
    wait_until(lambda: healthy(base), 60, "the web process to answer")
    desk.start_worker()

    alert = {"title": "Disk full <!channel>", "severity": "critical", "dedup_key": "disk"}
    answer = httpx.post(f"{base}{path}", json=alert, timeout=30)
    assert answer.status_code == 202, answer.text

    [notice] = wait_until(lambda: receiver.bodies("/slack"), 60, "the notice at the receiver")
    assert "Disk full &lt;!channel&gt;" in notice["text"]
    with desk.engine.connect() as connection:
        made_by = connection.scalars(select(Job.created_by).where(Job.kind == "notify.escalate"))
        assert list(made_by) == ["notify:ticket opened"]
