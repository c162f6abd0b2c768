"""What the change-request engine's tests share: a test-only kind, people, a request."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.people.models import User
from dutydesk.people.service import hash_password
from dutydesk.runbooks import ChangeKind, ChangeRequest, open_change, register_kind
from tests.conftest import TEST_PASSWORD

KIND = "test_change"
# Every execute of the test kind, as (change id, data_version); shared by racing threads.
EXECUTED: list[tuple[int, int]] = []
_LOCK = threading.Lock()


def _execute(session: Session, change: ChangeRequest) -> dict[str, Any]:
    with _LOCK:
        EXECUTED.append((change.id, change.data_version))
    time.sleep(float(change.payload.get("sleep", 0)))
    if change.payload.get("fail"):
        raise RuntimeError(str(change.payload["fail"]))
    if change.payload.get("not_a_dict"):
        return ["not", "a", "dict"]  # type: ignore[return-value]
    return {"done": change.payload.get("ids", [])}


STATES_SEEN: list[tuple[int, str]] = []


def _on_state(_session: Session, change: ChangeRequest, state: str) -> None:
    STATES_SEEN.append((change.id, state))


TEST_KIND = ChangeKind(
    name=KIND,
    label="Test change",
    execute=_execute,
    detail_path=lambda change: f"/tickets?change={change.id}",
    on_state=_on_state,
)
register_kind(TEST_KIND)


@dataclass
class People:
    """An author (operator), two approvers, an admin, a viewer and another operator."""

    olga: User
    abe: User
    amy: User
    ada: User
    vic: User
    otto: User


@functools.cache
def _password_hash() -> str:
    # Hashing is slow on purpose; the tests' people share one hash of TEST_PASSWORD.
    return hash_password(TEST_PASSWORD)


def add_person(db: Session, username: str, role: str, email: str) -> User:
    """A committed active user who signs in with TEST_PASSWORD."""
    user = User(username=username, role=role, email=email, password_hash=_password_hash())
    db.add(user)
    db.commit()
    return user


def make_people(db: Session) -> People:
    """The people every engine test uses, with e-mail addresses."""
    return People(
        olga=add_person(db, "olga", "operator", "olga@desk.example"),
        abe=add_person(db, "abe", "approver", "abe@desk.example"),
        amy=add_person(db, "amy", "approver", "amy@desk.example"),
        ada=add_person(db, "ada", "admin", "ada@desk.example"),
        vic=add_person(db, "vic", "viewer", "vic@desk.example"),
        otto=add_person(db, "otto", "operator", "otto@desk.example"),
    )


def new_change(db: Session, author: User, **payload: Any) -> ChangeRequest:
    """A draft of the test kind with a small ID list as its evidence."""
    ids = payload.setdefault("ids", ["r-1", "r-2"])
    return open_change(
        db,
        kind=KIND,
        title="Re-export two records",
        payload=payload,
        evidence={"count": len(ids), "ids": ids},
        author=author,
        tracker_url="https://tracker.example/PROJ-7",
    )
