"""The Celery application: a broker carries only "run job N" and "tick" messages."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from celery import Celery

from dutydesk.settings import Settings, get_settings

RUN_JOB_TASK = "dutydesk.run_job"
TICK_TASK = "dutydesk.tick"


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
    app.conf.update(
        broker_url=settings.effective_broker_url,
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
