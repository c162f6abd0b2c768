"""Approval-gated actions: change requests with signoffs, and the kinds that run through them."""

from dutydesk.runbooks._kinds import ChangeKind, ChangeRefused, evidence_hash, register_kind
from dutydesk.runbooks.models import ChangeEvent, ChangeRequest, ChangeSignoff, ChangeState
from dutydesk.runbooks.service import (
    cancel_change,
    comment_change,
    get_change,
    open_change,
    reject_change,
    revise_change,
    rules_met,
    run_change,
    sign_off,
    submit_change,
    timeline,
)

__all__ = [
    "ChangeEvent",
    "ChangeKind",
    "ChangeRefused",
    "ChangeRequest",
    "ChangeSignoff",
    "ChangeState",
    "cancel_change",
    "comment_change",
    "evidence_hash",
    "get_change",
    "open_change",
    "register_kind",
    "reject_change",
    "revise_change",
    "rules_met",
    "run_change",
    "sign_off",
    "submit_change",
    "timeline",
]
