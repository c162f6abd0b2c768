"""Helpers of the diagnose tests: projects made through the service, events and envelopes as
Sentry SDKs send them."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from dutydesk.diagnose import service
from dutydesk.diagnose.models import ExceptionProject
from tests.intake.desk_server import free_port


def make_project(db: Session, name: str = "shop", **options: Any) -> ExceptionProject:
    """A committed exception project."""
    project = service.create_project(db, name=name, actor="test", **options)
    db.commit()
    return project


def auth(project: ExceptionProject, key: str | None = None) -> dict[str, str]:
    """The X-Sentry-Auth header an SDK sends for `project` (or with another key)."""
    used = key or project.public_key
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1.0, sentry_key={used}"}


def event(
    kind: str = "ValueError",
    value: str = "bad input",
    line: str = "raise ValueError('bad input')",
    **extra: Any,
) -> dict[str, Any]:
    """An error event with one exception whose in-app top frame runs `line`."""
    return {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "platform": "python",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": value,
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "lib/http.py",
                                "function": "dispatch",
                                "lineno": 10,
                                "in_app": False,
                            },
                            {
                                "filename": "shop/views.py",
                                "module": "shop.views",
                                "function": "checkout",
                                "lineno": 42,
                                "context_line": f"    {line}",
                                "in_app": True,
                            },
                        ]
                    },
                }
            ]
        },
        **extra,
    }


def envelope(*items: tuple[dict[str, Any], bytes]) -> bytes:
    """An envelope of (item header, payload) items, each with its length."""
    lines = [json.dumps({"event_id": uuid.uuid4().hex}).encode()]
    for header, payload in items:
        lines.append(json.dumps({**header, "length": len(payload)}).encode())
        lines.append(payload)
    return b"\n".join(lines) + b"\n"


def event_item(body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """An `event` item."""
    return {"type": "event"}, json.dumps(body).encode()


PASSWORD = "s3cret-supervisor"
CONFIG = """
[inet_http_server]
port=127.0.0.1:{port}
username=desk
password={password}

[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:web]
command=/bin/sh -c 'echo serving requests; exec sleep 600'
startsecs=1
stopwaitsecs=2
stdout_logfile={tmp}/web.log

[program:crasher]
command=/bin/sh -c 'echo cannot connect to the database >&2; exit 3'
startsecs=1
startretries=1
autorestart=true
stderr_logfile={tmp}/crasher.err
"""


@dataclass
class Running:
    """A supervisord of the test: its XML-RPC URL and a client that bypasses the desk."""

    url: str
    direct: xmlrpc.client.ServerProxy

    def state(self, process: str) -> str:
        """The process's state name, asked of supervisord directly."""
        info: Any = self.direct.supervisor.getProcessInfo(process)
        return str(info["statename"])


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Running]:
    """A real supervisord on a free loopback port, stopped at teardown."""
    with running_supervisord(tmp_path) as running:
        yield running


@pytest.fixture
def failover_supervisord(tmp_path: Path) -> Iterator[Running]:
    """A second real supervisord (the failover machine's), with the same programs."""
    folder = tmp_path / "failover"
    folder.mkdir()
    with running_supervisord(folder) as running:
        yield running


@contextmanager
def running_supervisord(tmp_path: Path) -> Iterator[Running]:
    """Start supervisord with CONFIG in `tmp_path` and wait until its `web` runs."""
    port = free_port()
    config = tmp_path / "supervisord.conf"
    config.write_text(CONFIG.format(port=port, password=PASSWORD, tmp=tmp_path))
    process = subprocess.Popen(
        ["/usr/bin/supervisord", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/RPC2"
    direct = xmlrpc.client.ServerProxy(f"http://desk:{PASSWORD}@127.0.0.1:{port}/RPC2")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if Running(url, direct).state("web:web") == "RUNNING":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "supervisord did not start web"
            time.sleep(0.2)
        yield Running(url, direct)
    finally:
        process.terminate()
        process.wait(timeout=20)
