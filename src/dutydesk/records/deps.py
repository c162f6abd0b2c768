"""The web request's session on the record store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import transaction
from dutydesk.records import migrations


def _is_migrated(factory: sessionmaker[Session]) -> bool:
    """Whether the record store behind `factory` is at the newest revision."""
    with factory() as session:
        connection = session.connection()
        return migrations.current_of(connection) in migrations.heads()


def get_records_db(request: Request) -> Iterator[Session]:
    """The request's record-store session; committed when the handler returns without error.

    Until the store is found migrated, each request checks it and answers 503 if it is not:
    migrating is `dutydesk db upgrade`'s job, never a web request's.
    """
    factory: sessionmaker[Session] = request.app.state.records_factory
    if not getattr(request.app.state, "records_ready", False):
        try:
            ready = _is_migrated(factory)
        except OperationalError as error:
            raise HTTPException(503, f"cannot reach the record store: {error.orig}") from None
        if not ready:
            raise HTTPException(503, "the record store is not migrated; run `dutydesk db upgrade`")
        request.app.state.records_ready = True
    with transaction(factory) as session:
        yield session


RecordsDb = Annotated[Session, Depends(get_records_db, scope="function")]
