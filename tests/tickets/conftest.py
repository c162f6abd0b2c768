"""Fixtures of the ticket tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.people import service as people
from dutydesk.people.models import User
from dutydesk.tickets.service import Alarm
from tests.conftest import TEST_PASSWORD, sign_in

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def alarm(fingerprint: str = "fp-disk-db1", **changes: Any) -> Alarm:
    """An alarm as the alarm side would hand it over."""
    values: dict[str, Any] = {
        "source": "alertmanager",
        "fingerprint": fingerprint,
        "title": "Disk usage above 90% on db-1",
        "description": "Filesystem /var/lib/postgresql is 93% full.",
        "severity": "high",
        "payload": {"labels": {"alertname": "DiskFull", "instance": "db-1"}},
        "occurred_at": T0,
    }
    values.update(changes)
    return Alarm(**values)


def add_person(db: Session, username: str, role: str, email: str | None = None) -> User:
    """A committed user with an e-mail address."""
    user = people.add_user(db, username, role, email=email, password=TEST_PASSWORD)
    db.commit()
    return user


@pytest.fixture
def olga(db: Session) -> User:
    """An operator."""
    return add_person(db, "olga", "operator", "olga@desk.example")


@pytest.fixture
def vera(db: Session) -> User:
    """A viewer."""
    return add_person(db, "vera", "viewer", "vera@desk.example")


@pytest.fixture
def operator_client(client: TestClient, db: Session, olga: User) -> TestClient:
    """A client signed in as the operator olga; its CSRF token is in `client.headers`."""
    token = sign_in(client, db, olga)
    client.headers["X-CSRF-Token"] = token
    return client


@pytest.fixture
def viewer_client(client: TestClient, db: Session, vera: User) -> TestClient:
    """A client signed in as the viewer vera."""
    token = sign_in(client, db, vera)
    client.headers["X-CSRF-Token"] = token
    return client
