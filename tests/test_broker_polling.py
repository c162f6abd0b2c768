"""The embedded SQLite broker: polled every SQLA_POLL_SECONDS, connected before the first job.

How fast a notice goes out is measured in bench/notify_latency.py; these check the set-up the
figures rest on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from celery import Celery

from dutydesk.celery_app import SQLA_POLL_SECONDS, PolledSqlaTransport, configure, warm_up
from dutydesk.settings import get_settings


def test_sqlite_broker_is_polled_every_tenth_of_a_second_with_the_engine_options() -> None:
    app = configure(Celery("probe"), get_settings())
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, PolledSqlaTransport)
        assert connection.transport.polling_interval == SQLA_POLL_SECONDS == 0.1
        # The URL kept its database file, and the busy timeout still reaches create_engine.
        assert connection.hostname.endswith("broker.sqlite")
        assert connection.hostname.startswith("sqlite:///")
        assert connection.transport_options["connect_args"]["timeout"] == 15


def test_a_message_goes_through_the_polled_transport() -> None:
    app = configure(Celery("probe"), get_settings())
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("probe")
        queue.put({"job": 7})
        message = queue.get(timeout=10)
        message.ack()
        assert message.payload == {"job": 7}
        queue.close()


def test_warm_up_connects_and_declares_the_queue_before_any_job(home: Path) -> None:
    broker = Path(get_settings().effective_broker_url.removeprefix("sqla+sqlite:///"))
    assert not broker.exists()
    warm_up()
    with sqlite3.connect(broker) as database:
        queues = [name for (name,) in database.execute("SELECT name FROM kombu_queue")]
    assert get_settings().broker_queue in queues
