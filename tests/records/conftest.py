"""Record-store fixtures: a fresh store built by its migrations for every test.

SQLite always (a file in the test's tmp folder); PostgreSQL too when DUTYDESK_TEST_POSTGRES_URL
is set, in a database named apart from the ops one (`dd_records_<worker>`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import build_engine
from dutydesk.people import service as people
from dutydesk.records import service
from dutydesk.records.store import upgrade_records
from dutydesk.settings import get_settings
from tests.conftest import fresh_database_url

STUDY = "study-x"
TAPPING_FIELDS: list[dict[str, Any]] = [
    {"name": "count", "type": "INT"},
    {"name": "speed", "type": "FLOAT"},
    {"name": "when", "type": "TIMESTAMP"},
    {"name": "hand", "type": "SINGLE_CHOICE", "maxLength": 8},
    {"name": "symptoms", "type": "MULTI_CHOICE", "multiChoiceAnswerList": ["a", "b"]},
    {"name": "happy", "type": "BOOLEAN"},
    {"name": "day", "type": "CALENDAR_DATE"},
    {"name": "blob", "type": "INLINE_JSON_BLOB"},
    {"name": "raw", "type": "ATTACHMENT_V2", "mimeType": "application/json"},
]
METADATA_FIELDS: list[dict[str, Any]] = [{"name": "runs", "type": "INT"}]


@pytest.fixture
def empty_records_url(backend: str, tmp_path: Path) -> str:
    """An empty record store of `backend` for this test alone (not migrated)."""
    return fresh_database_url(backend, tmp_path, "records")


@pytest.fixture
def records_url(empty_records_url: str) -> str:
    """A fresh record store of `backend`, migrated to head."""
    upgrade_records(empty_records_url)
    return empty_records_url


@pytest.fixture
def records_engine(records_url: str) -> Iterator[Engine]:
    """An engine on the test's record store."""
    engine = build_engine(records_url)
    yield engine
    engine.dispose()


@pytest.fixture
def records_factory(records_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the test's record store."""
    return sessionmaker(bind=records_engine, expire_on_commit=False)


@pytest.fixture
def rdb(records_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A record-store session for arranging and checking data."""
    with records_factory() as session:
        yield session


@pytest.fixture
def study(rdb: Session) -> str:
    """A configured study with a `tapping` schema (revision 1) and two participants."""
    service.upsert_study(
        rdb, STUDY, "Study X", project="syn1", upload_metadata_fields=METADATA_FIELDS
    )
    service.upsert_schema(rdb, STUDY, "tapping", 1, TAPPING_FIELDS)
    service.set_participant_scope(rdb, STUDY, "hc-sharing", "ALL_QUALIFIED_RESEARCHERS")
    service.set_participant_scope(rdb, STUDY, "hc-withdrawn", "NO_SHARING")
    rdb.commit()
    return STUDY


@pytest.fixture
def records_app(
    factory: sessionmaker[Session], records_factory: sessionmaker[Session], home: Path
) -> FastAPI:
    """The web app on the test's ops database and record store."""
    from dutydesk.web.app import create_app

    return create_app(get_settings(), factory, records_factory=records_factory)


@pytest.fixture
def records_client(records_app: FastAPI) -> Iterator[TestClient]:
    """An anonymous HTTP client of the app."""
    with TestClient(records_app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def bearer(db: Session, *scopes: str) -> dict[str, str]:
    """Headers carrying a new service token with `scopes`."""
    made = people.create_token(db, f"token-{'-'.join(scopes)}", list(scopes), username=None)
    db.commit()
    return {"Authorization": f"Bearer {made.secret}"}
