"""The engine's rules through its service: who may move each state, signoff rules, Balrog's
drop-on-edit, run only once approved, and every step on the timeline and in the audit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.audit.models import AuditEvent
from dutydesk.jobs.models import Job
from dutydesk.notify.models import Delivery
from dutydesk.runbooks import (
    ChangeRefused,
    ChangeState,
    _rules,
    cancel_change,
    comment_change,
    evidence_hash,
    reject_change,
    revise_change,
    rules_met,
    run_change,
    sign_off,
    submit_change,
    timeline,
)
from dutydesk.runbooks.service import execute_run
from tests.runbooks.changes_kit import EXECUTED, KIND, People, make_people, new_change


@pytest.fixture
def people(db: Session) -> People:
    return make_people(db)


def refused(status: int, words: str) -> pytest.RaisesExc[ChangeRefused]:
    return pytest.raises(ChangeRefused, match=words)


def approve(db: Session, change, user) -> None:  # type: ignore[no-untyped-def]
    sign_off(db, change, user, data_version=change.data_version, evidence_hash=change.evidence_hash)


def test_evidence_hash_is_sha256_of_canonical_json() -> None:
    import hashlib

    assert (
        evidence_hash({"b": 1, "a": [1, "é"]})
        == hashlib.sha256('{"a":[1,"é"],"b":1}'.encode()).hexdigest()
    )


def test_submit_notifies_everyone_whose_signoff_is_needed_but_not_the_author(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    assert change.state == ChangeState.draft and change.data_version == 1
    submit_change(db, change, people.olga)
    assert change.state == ChangeState.pending
    notices = db.scalars(select(Delivery).where(Delivery.reason == "signoff needed")).all()
    assert sorted(d.address for d in notices) == [
        "mailto:abe@desk.example",
        "mailto:ada@desk.example",
        "mailto:amy@desk.example",
    ]
    assert all(f"/changes/{change.id}" in d.body for d in notices)


def test_nobody_signs_their_own_request(db: Session, people: People) -> None:
    change = new_change(db, people.abe)
    submit_change(db, change, people.abe)
    with pytest.raises(ChangeRefused, match="nobody signs off their own") as refusal:
        approve(db, change, people.abe)
    assert refusal.value.status == 403
    assert change.state == ChangeState.pending


def test_a_token_without_a_user_never_signs(db: Session, people: People) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    with pytest.raises(ChangeRefused, match="token without a user") as refusal:
        sign_off(db, change, None, data_version=1, evidence_hash=change.evidence_hash)
    assert refusal.value.status == 403


def test_a_role_below_every_rule_cannot_sign(db: Session, people: People) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    for user in (people.vic, people.otto):
        with pytest.raises(ChangeRefused, match="cannot sign") as refusal:
            approve(db, change, user)
        assert refusal.value.status == 403


def test_a_signoff_on_a_stale_version_or_evidence_is_refused_with_the_reason(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    revise_change(db, change, people.olga, evidence={"count": 3, "ids": ["a", "b", "c"]})
    assert change.data_version == 2
    with pytest.raises(ChangeRefused, match=r"stale data_version.*version 1.*version 2") as stale:
        sign_off(db, change, people.abe, data_version=1, evidence_hash=change.evidence_hash)
    assert stale.value.status == 409
    with pytest.raises(ChangeRefused, match="evidence hash") as wrong:
        sign_off(db, change, people.abe, data_version=2, evidence_hash="0" * 64)
    assert wrong.value.status == 409
    assert change.state == ChangeState.pending and change.active_signoffs == []


def test_one_approver_meets_the_default_rule_and_approval_queues_nothing(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    assert rules_met(db, change) == (False, ["1 more signoff from approver (or higher)"])
    approve(db, change, people.abe)
    assert change.state == ChangeState.approved
    assert rules_met(db, change) == (True, [])
    assert db.scalar(select(func.count()).select_from(Job)) == 0
    author_notice = db.scalars(select(Delivery).where(Delivery.reason == "change approved")).one()
    assert author_notice.address == "mailto:olga@desk.example"


def test_several_rules_at_once_each_signoff_counts_once(db: Session, people: People) -> None:
    _rules.set_rule(db, kind=KIND, role="approver", count=2)
    _rules.set_rule(db, kind=KIND, role="admin", count=1)
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    approve(db, change, people.ada)
    # The admin meets the admin rule; an approver rule of two is still open.
    assert rules_met(db, change) == (False, ["2 more signoffs from approver (or higher)"])
    approve(db, change, people.abe)
    assert change.state == ChangeState.pending
    approve(db, change, people.amy)
    assert change.state == ChangeState.approved


def test_rules_rows_replace_the_defaults_and_are_checked(db: Session, people: People) -> None:
    assert [r.describe() for r in _rules.rules_for(db, KIND)] == [
        "1 signoff from approver (or higher)"
    ]
    _rules.set_rule(db, kind=KIND, role="admin", count=1)
    assert [(r.role, r.count, r.default) for r in _rules.rules_for(db, KIND)] == [
        ("admin", 1, False)
    ]
    for kind, role, count, words in [
        ("nope", "admin", 1, "unknown change kind"),
        (KIND, "boss", 1, "unknown role"),
        (KIND, "viewer", 1, "cannot sign off"),
        (KIND, "admin", 0, "count must be 1 to 10"),
    ]:
        with pytest.raises(ChangeRefused, match=words) as refusal:
            _rules.set_rule(db, kind=kind, role=role, count=count)
        assert refusal.value.status == 422
    _rules.remove_rule(db, kind=KIND, role="admin")
    assert [r.default for r in _rules.rules_for(db, KIND)] == [True]
    audited = db.scalars(
        select(AuditEvent.action).where(AuditEvent.object_type == "signoff_rules")
    ).all()
    assert sorted(audited) == ["create", "delete"]


def test_editing_after_approval_drops_every_signoff_and_is_on_the_timeline(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    approve(db, change, people.abe)
    assert change.state == ChangeState.approved
    revise_change(db, change, people.olga, payload={"ids": ["r-1", "r-2", "r-3"]})
    assert change.state == ChangeState.pending
    assert change.data_version == 2 and change.active_signoffs == []
    assert change.signoffs[0].dropped_at is not None
    revised = [e for e in timeline(db, change) if e.kind == "revised"]
    assert revised[0].detail["dropped_signoffs"] == ["abe"]
    with pytest.raises(ChangeRefused, match="runs only once approved"):
        run_change(db, change, people.olga)


def test_whoever_made_a_version_may_not_sign_it(db: Session, people: People) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    revise_change(db, change, people.abe, payload={"ids": ["x"]})
    with pytest.raises(ChangeRefused, match="you made this version"):
        approve(db, change, people.abe)
    approve(db, change, people.amy)
    assert change.state == ChangeState.approved


def test_run_before_approval_is_refused(db: Session, people: People) -> None:
    change = new_change(db, people.olga)
    with pytest.raises(ChangeRefused, match="draft: it runs only once approved") as refusal:
        run_change(db, change, people.olga)
    assert refusal.value.status == 409
    submit_change(db, change, people.olga)
    with pytest.raises(ChangeRefused, match="pending: it runs only once approved"):
        run_change(db, change, people.olga)


def test_run_queues_one_job_that_executes_and_marks_the_request_done(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    approve(db, change, people.abe)
    with pytest.raises(ChangeRefused, match="only the author or an operator") as refusal:
        run_change(db, change, people.vic)
    assert refusal.value.status == 403
    job_id = run_change(db, change, people.otto)
    assert db.get(Job, job_id).kind == "runbooks.run_change"  # type: ignore[union-attr]
    with pytest.raises(ChangeRefused, match="already queued"):
        run_change(db, change, people.olga)
    EXECUTED.clear()
    assert execute_run(db, change.id, 1) == {"state": "done"}
    assert list(EXECUTED) == [(change.id, 1)]
    assert change.state == ChangeState.done and change.result == {"done": ["r-1", "r-2"]}
    assert execute_run(db, change.id, 1) == {"skipped": f"change #{change.id} is done"}
    assert list(EXECUTED) == [(change.id, 1)]
    states = [e.kind for e in timeline(db, change) if e.kind in ChangeState.__members__]
    assert states == ["pending", "approved", "running", "done"]
    assert db.scalars(select(Delivery.reason).where(Delivery.reason == "change done")).one()
    audited = db.scalars(
        select(AuditEvent.diff).where(
            AuditEvent.object_type == "change_requests", AuditEvent.object_id == str(change.id)
        )
    ).all()
    moves = [d["state"] for d in audited if "state" in d and d["state"][0] is not None]
    assert moves[-2:] == [["approved", "running"], ["running", "done"]]


def test_a_kind_that_raises_fails_the_request_and_keeps_the_error(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga, fail="bucket not found")
    submit_change(db, change, people.olga)
    approve(db, change, people.abe)
    result = execute_run(db, change.id, 1)
    assert change.state == ChangeState.failed
    assert result["error"] == change.error == "RuntimeError: bucket not found"
    failed = db.scalars(select(Delivery).where(Delivery.reason == "change failed")).one()
    assert "bucket not found" in failed.body


def test_a_kind_that_returns_no_dict_fails_the_request_instead_of_leaving_it_running(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga, not_a_dict=True)
    submit_change(db, change, people.olga)
    approve(db, change, people.abe)
    execute_run(db, change.id, 1)
    assert change.state == ChangeState.failed and change.error is not None


def test_the_job_rechecks_the_rules_in_its_own_transaction(db: Session, people: People) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    approve(db, change, people.abe)
    _rules.set_rule(db, kind=KIND, role="admin", count=1)
    assert execute_run(db, change.id, 1) == {"refused": ["1 more signoff from admin (or higher)"]}
    assert change.state == ChangeState.approved


def test_reject_needs_a_signer_and_a_reason_and_tells_the_author(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    with pytest.raises(ChangeRefused, match="cannot sign or reject"):
        reject_change(db, change, people.otto, comment="no")
    with pytest.raises(ChangeRefused, match="needs a comment"):
        reject_change(db, change, people.abe, comment=" ")
    reject_change(db, change, people.abe, comment="wrong month")
    assert change.state == ChangeState.rejected
    notice = db.scalars(select(Delivery).where(Delivery.reason == "change rejected")).one()
    assert "wrong month" in notice.body and notice.address == "mailto:olga@desk.example"
    with pytest.raises(ChangeRefused, match="can no longer change"):
        revise_change(db, change, people.olga, payload={"ids": []})


def test_cancel_by_the_author_or_an_admin_only_before_running(db: Session, people: People) -> None:
    change = new_change(db, people.olga)
    with pytest.raises(ChangeRefused, match="only the author or an admin") as refusal:
        cancel_change(db, change, people.abe)
    assert refusal.value.status == 403
    cancel_change(db, change, people.ada, comment="duplicate")
    assert change.state == ChangeState.cancelled
    with pytest.raises(ChangeRefused, match="cannot be cancelled"):
        cancel_change(db, change, people.olga)


def test_every_state_change_signoff_and_comment_is_on_the_timeline_and_in_the_audit(
    db: Session, people: People
) -> None:
    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    comment_change(db, change, people.abe, "Is the count right?")
    approve(db, change, people.abe)
    kinds = [e.kind for e in timeline(db, change)]
    assert kinds == ["opened", "pending", "notified", "comment", "signed_off", "approved"]
    audit = db.execute(
        select(AuditEvent.object_type, AuditEvent.action).where(
            AuditEvent.object_type.in_(["change_requests", "change_signoffs", "change_comments"])
        )
    ).all()
    assert ("change_comments", "create") in audit and ("change_signoffs", "create") in audit
    state_diffs = db.scalars(
        select(AuditEvent.diff).where(
            AuditEvent.object_type == "change_requests", AuditEvent.action == "update"
        )
    ).all()
    assert [d["state"] for d in state_diffs if "state" in d] == [
        ["draft", "pending"],
        ["pending", "approved"],
    ]


def test_a_run_whose_worker_stopped_fails_the_request_saying_so(
    db: Session, people: People
) -> None:
    import datetime as dt

    from dutydesk.jobs import service as jobs
    from dutydesk.jobs.models import JobState
    from dutydesk.runbooks._run import _claim

    change = new_change(db, people.olga)
    submit_change(db, change, people.olga)
    approve(db, change, people.abe)
    job = db.get(Job, run_change(db, change, people.olga))
    assert job is not None
    assert _claim(db, change.id)
    db.expire(change)  # the claim is a bulk UPDATE, as in a worker's own session
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    job.state, job.attempts, job.heartbeat_at, job.worker = "running", 1, long_ago, "gone"
    db.flush()
    assert jobs.sweep(db)["failed"] == 1
    db.refresh(change)
    assert job.state == JobState.failed and change.state == ChangeState.failed
    assert change.error is not None and "stopped without finishing" in change.error
