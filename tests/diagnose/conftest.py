"""Helpers of the diagnose tests: projects made through the service, events and envelopes as
Sentry SDKs send them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.diagnose import service
from dutydesk.diagnose.models import ExceptionProject


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
