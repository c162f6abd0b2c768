"""Kinds of change request (re-drive, database change, release, ...) and the refusal error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dutydesk.runbooks.models import ChangeRequest


class ChangeRefused(Exception):
    """A change-request action that is not allowed; `status` is the HTTP answer (403 when the
    caller may not, 409 when the request's state or version forbids it, 422 for bad input),
    and the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class ChangeKind:
    """What one kind of request does when it runs, and how the desk shows it."""

    name: str
    label: str
    # Runs inside the run job's transaction; its dict is stored as the request's result.
    # Raising fails the request (the error text is kept).
    execute: Callable[[Session, ChangeRequest], dict[str, Any]]
    # The kind's own page for a request (e.g. "/redrives/3"), linked from the change page.
    detail_path: Callable[[ChangeRequest], str] | None = None
    # Told of each state change (the new state), in the transaction that makes it.
    on_state: Callable[[Session, ChangeRequest, str], None] | None = None
    # (role, count) rules used while no signoff rule rows exist for the kind.
    default_rules: tuple[tuple[str, int], ...] = (("approver", 1),)


_kinds: dict[str, ChangeKind] = {}


def register_kind(kind: ChangeKind) -> None:
    """Make a kind of change request known (again: the latest registration wins)."""
    _kinds[kind.name] = kind


def known_kinds() -> dict[str, ChangeKind]:
    """Every registered kind by name."""
    return dict(sorted(_kinds.items()))


def get_kind(name: str) -> ChangeKind:
    """The kind named `name`, or a 422 naming the known ones."""
    kind = _kinds.get(name)
    if kind is None:
        known = ", ".join(sorted(_kinds)) or "none"
        raise ChangeRefused(422, f"unknown change kind {name!r}; known kinds: {known}")
    return kind


def evidence_hash(evidence: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the evidence as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(evidence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
