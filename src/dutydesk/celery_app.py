"""The Celery application: a broker carries only "run job N" and "tick" messages."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqla

from dutydesk.settings import Settings, get_settings

log = logging.getLogger(__name__)
RUN_JOB_TASK = "dutydesk.run_job"
TICK_TASK = "dutydesk.tick"
# How often a worker asks a SQLAlchemy broker (the embedded SQLite file) for messages. kombu's
# default is once a second, and a notice waits for that poll: at 0.1 s a job starts within a
# tenth of a second. An idle poll is one indexed SELECT on a small table (bench/notify_latency.py
# measures the idle worker's CPU: about 1 % of a core).
SQLA_POLL_SECONDS = 0.1


class PolledSqlaTransport(kombu_sqla.Transport):
    """kombu's SQLAlchemy transport, polled every SQLA_POLL_SECONDS.

    Its `transport_options` go to `create_engine`, so its `polling_interval` cannot be set
    there; the URL's `sqla+` prefix would pick kombu's own class, so `configure` names this one
    as `broker_transport` with the URL after the prefix.
    """

    polling_interval = SQLA_POLL_SECONDS


def transport_options(broker_url: str) -> dict[str, object]:
    """Options for the broker's transport.

    The SQLAlchemy transport hands its options to `create_engine`: a SQLite broker file shared
    by several processes needs a busy timeout there. Other transports poll once a second.
    """
    if broker_url.startswith("sqla+sqlite"):
        return {"connect_args": {"timeout": 15, "check_same_thread": False}}
    if broker_url.startswith("sqla+"):
        return {"pool_pre_ping": True}
    return {"polling_interval": 1.0}


def configure(app: Celery, settings: Settings) -> Celery:
    """Point `app` at the configured broker with the desk's conventions."""
    if settings.effective_broker_url.startswith("sqla+sqlite:///"):
        # The transport cannot create the folder of its database file.
        Path(settings.effective_broker_url.removeprefix("sqla+sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    broker_url = settings.effective_broker_url
    broker_transport = None
    if broker_url.startswith("sqla+"):
        broker_url = broker_url.removeprefix("sqla+")
        broker_transport = f"{__name__}:{PolledSqlaTransport.__name__}"
    app.conf.update(
        broker_url=broker_url,
        broker_transport=broker_transport,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings.effective_broker_url),
        task_default_queue=settings.broker_queue,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "dutydesk-tick": {"task": TICK_TASK, "schedule": settings.tick_seconds},
        },
        include=["dutydesk.jobs.jobs"],
    )
    return app


@lru_cache(maxsize=1)
def get_celery() -> Celery:
    """The configured Celery app, made once per process."""
    return configure(Celery("dutydesk"), get_settings())


def warm_up() -> None:
    """Connect to the broker and declare the queue now, as a process that sends jobs starts.

    The first message otherwise waits for Celery's and kombu's first imports and for the
    connection (with the SQLite broker: its engine and tables), seconds on a busy machine, and
    the first notice after start-up with it. The producer stays in Celery's pool for that
    message. A broker that is down is only logged: sending retries as it always does.
    """
    app = get_celery()
    try:
        with app.producer_or_acquire() as producer:
            for queue in app.amqp.queues.values():
                queue.declare(channel=producer.channel)
    except Exception as error:  # noqa: BLE001 - any broker failure; sending copes with it later
        log.warning("could not reach the broker yet (%s); the first job will connect", error)
