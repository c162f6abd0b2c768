"""Change notices: every audited change gets a risk level; a high-risk change is sent at once
to the DUTYDESK_CHANGE_NOTICE_LIST contact list, the rest go into one daily digest.

Nothing is sent from the transaction that makes a change. A committed change is an
`audit_events` row; `record_notices` (run by a job queued when a transaction with a high-risk
change commits, and by every beat tick) gives each new row its `change_notices` row and, for a
high-risk change, the deliveries to the list, in one transaction. A change that is rolled back
leaves no audit row, so nothing about it is ever sent; one that commits is found by the next
tick at the latest, so none is lost. The unique `audit_event_id` makes two recorders racing on
the same change write one notice, and the digest's day is its primary key, so each day's digest
is sent once however often the tick runs.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable
from itertools import chain
from typing import Any

from sqlalchemy import Select, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from dutydesk import registry
from dutydesk.audit import _notice_text as text
from dutydesk.audit.models import AuditEvent, ChangeDigest, ChangeNotice
from dutydesk.db import utcnow
from dutydesk.settings import get_settings

log = logging.getLogger(__name__)


class Risk(enum.StrEnum):
    """How a change is told. high: at once, to the change-notice list. low: in the digest."""

    high = "high"
    low = "low"


class Told(enum.StrEnum):
    """How a change was told.

    at_once: deliveries to the list were made when it was recorded. digest: it goes (or went,
    see `digest_day`) into a daily digest. none: no list was set (or found) when it was
    recorded; `note` says which.
    """

    at_once = "at_once"
    digest = "digest"
    none = "none"


# The one table of risk levels, by the audited table's name; every other table is low risk.
# Roles are a column of `users`; integrations' secrets are columns of `integrations`, and a
# notify channel's URL is the secret of an outgoing integration.
HIGH_RISK: dict[str, str] = {
    "users": "people and their roles",
    "api_tokens": "API tokens",
    "signoff_rules": "who must sign off change requests",
    "alarm_rules": "alarm rules",
    "silences": "silences and maintenance windows",
    "integrations": "intake integrations and their secrets",
    "notify_channels": "notification channels and their secret URLs",
    "db_change_targets": "database change targets and their credentials",
    "escalation_policies": "escalation policies",
}

# How far back a recorder looks for changes without a notice: longer than any transaction
# stays open between writing its audit rows (at flush) and committing them.
LOOKBACK = dt.timedelta(days=1)
# Changes recorded per run; a tick records the rest.
BATCH = 500
# Changes a digest lists one by one; the page has them all.
DIGEST_LISTED = 200
NOTICE_REASON = "change notice"
DIGEST_REASON = "change digest"
_HIGH_RISK_CHANGED = "dutydesk_high_risk_changed"
_JOB = "audit.change_notices"


def risk_of(object_type: str) -> Risk:
    """The risk level of a change to a table, from HIGH_RISK."""
    return Risk.high if object_type in HIGH_RISK else Risk.low


def notices_link() -> str:
    """The change-notices page of the console."""
    return f"{get_settings().base_url.rstrip('/')}/change-notices"


def _notice_list(session: Session) -> tuple[Any, str, str]:
    """(the contact list or None, its name, why nothing is sent) from the setting."""
    from dutydesk.notify.service import NotifyError, get_contact_list

    name = get_settings().change_notice_list.strip()
    if not name:
        return None, "", "not sent: DUTYDESK_CHANGE_NOTICE_LIST is empty"
    try:
        return get_contact_list(session, name), name, ""
    except NotifyError:
        log.warning("DUTYDESK_CHANGE_NOTICE_LIST names %r, which is no contact list", name)
        return None, name, f"not sent: no contact list named {name!r}"


def _unrecorded(now: dt.datetime) -> Select[AuditEvent]:
    return (
        select(AuditEvent)
        .outerjoin(ChangeNotice, ChangeNotice.audit_event_id == AuditEvent.id)
        .where(ChangeNotice.id.is_(None), AuditEvent.at >= now - LOOKBACK)
        .order_by(AuditEvent.id)
        .limit(BATCH)
    )


def record_notices(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Give every recent change without a notice its notice; a high-risk one gets deliveries
    to the list at once. Returns how many were recorded at once, for the digest, unsent."""
    from dutydesk.notify.service import notify_list

    now = now or utcnow()
    counts = {"at_once": 0, "digest": 0, "none": 0}
    events = list(session.scalars(_unrecorded(now)))
    if not events:
        return counts
    contact_list, list_name, why_not = _notice_list(session)
    for change in events:
        risk = risk_of(change.object_type)
        told = Told.none if contact_list is None else Told.at_once
        if told is Told.at_once and risk is Risk.low:
            told = Told.digest
        notice = ChangeNotice(
            audit_event_id=change.id,
            risk=risk.value,
            told=told.value,
            list_name=list_name,
            note=why_not,
        )
        try:
            with session.begin_nested():
                session.add(notice)
                session.flush()
                if told is Told.at_once:
                    notify_list(
                        session,
                        contact_list,
                        subject_line=f"[dutydesk change] {text.headline(change)}"[:300],
                        message=text.notice_body(change, risk.value, notices_link()),
                        subject=f"audit:{change.id}",
                        reason=NOTICE_REASON,
                    )
        except IntegrityError:
            continue  # another recorder took this change
        counts[told.value] += 1
    return counts


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def send_digest(session: Session, *, now: dt.datetime | None = None) -> ChangeDigest | None:
    """Once a UTC day is over, the digest of every low-risk change recorded up to its end and
    not yet in a digest: one digest per day (its day is the primary key), none when there is
    nothing to tell."""
    from dutydesk.notify.service import notify_list

    now = now or utcnow()
    day = now.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    if session.get(ChangeDigest, day) is not None:
        return None
    waiting = select(ChangeNotice.id).join(AuditEvent, AuditEvent.id == ChangeNotice.audit_event_id)
    waiting = waiting.where(
        ChangeNotice.told == Told.digest.value,
        ChangeNotice.digest_day.is_(None),
        AuditEvent.at < _day_start(day + dt.timedelta(days=1)),
    )
    ids = list(session.scalars(waiting))
    if not ids:
        return None
    contact_list, list_name, why_not = _notice_list(session)
    digest = ChangeDigest(day=day, list_name=list_name, changes=len(ids), note=why_not)
    try:
        with session.begin_nested():
            session.add(digest)
            session.flush()
    except IntegrityError:
        return None  # another tick made this day's digest
    session.execute(
        update(ChangeNotice)
        .where(ChangeNotice.id.in_(ids))
        .values(digest_day=day)
        .execution_options(synchronize_session=False)
    )
    if contact_list is not None:
        events = list(
            session.scalars(
                select(AuditEvent)
                .join(ChangeNotice, ChangeNotice.audit_event_id == AuditEvent.id)
                .where(ChangeNotice.id.in_(ids))
                .order_by(AuditEvent.at, AuditEvent.id)
            )
        )
        notify_list(
            session,
            contact_list,
            subject_line=f"[dutydesk changes] digest of {day.isoformat()}: {len(ids)} change(s)",
            message=text.digest_body(events, day.isoformat(), notices_link(), DIGEST_LISTED),
            subject=f"change-digest:{day.isoformat()}",
            reason=DIGEST_REASON,
        )
    return digest


# Noticing, as a transaction commits, that it changed something of high risk.


def _changes_high_risk(session: Session) -> bool:
    for obj in chain(session.new, session.dirty, session.deleted):
        if not getattr(type(obj), "__audited__", False):
            continue
        if risk_of(str(getattr(type(obj), "__tablename__", ""))) is not Risk.high:
            continue
        if obj in session.dirty and not session.is_modified(obj, include_collections=False):
            continue
        return True
    return False


@event.listens_for(Session, "after_flush")
def _note_high_risk(session: Session, _context: UOWTransaction) -> None:
    if not session.info.get(_HIGH_RISK_CHANGED) and _changes_high_risk(session):
        session.info[_HIGH_RISK_CHANGED] = True


@event.listens_for(Session, "before_commit")
def _queue_notices_at_commit(session: Session) -> None:
    """A transaction that changed something of high risk adds, before it commits, the job that
    sends its notices; the job row commits with the change, or is rolled back with it."""
    # Changes still pending are flushed after this hook, so they are looked at here too.
    flushed = session.info.pop(_HIGH_RISK_CHANGED, False)
    if not flushed and not _changes_high_risk(session):
        return
    if not get_settings().change_notice_list.strip() or _JOB not in registry.job_kinds:
        return  # (without the job kind loaded, the next beat tick sends the notice)
    from dutydesk.jobs.service import enqueue

    enqueue(session, _JOB, {}, created_by="audit:high-risk change")


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_HIGH_RISK_CHANGED, None)


# Reading notices for the page and the API.


def notice_query(
    *,
    risk: str | None = None,
    object_type: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Select[ChangeNotice, AuditEvent]:
    """Notices with their changes matching the filters, newest first."""
    query = (
        select(ChangeNotice, AuditEvent)
        .join(AuditEvent, AuditEvent.id == ChangeNotice.audit_event_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )
    if risk:
        query = query.where(ChangeNotice.risk == risk)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return query


def delivery_states(session: Session, subjects: Iterable[str]) -> dict[str, dict[str, int]]:
    """For each delivery subject, how many of its deliveries are in each state."""
    from dutydesk.notify.models import Delivery

    wanted = sorted(set(subjects))
    found: dict[str, dict[str, int]] = {}
    if not wanted:
        return found
    rows = session.execute(
        select(Delivery.subject, Delivery.state, func.count())
        .where(Delivery.subject.in_(wanted))
        .group_by(Delivery.subject, Delivery.state)
    )
    for subject, state, count in rows:
        found.setdefault(subject, {})[state] = int(count)
    return found


def subject_of(notice: ChangeNotice) -> str | None:
    """The delivery subject that carried (or carries) the notice, if any."""
    if notice.told == Told.at_once.value:
        return f"audit:{notice.audit_event_id}"
    if notice.told == Told.digest.value and notice.digest_day is not None:
        return f"change-digest:{notice.digest_day.isoformat()}"
    return None


def _sending(states: dict[str, int]) -> str:
    if not states:
        return "nobody on the list"
    if set(states) == {"sent"}:
        return "sent"
    if "dead" in states:
        return f"{states['dead']} of {sum(states.values())} failed for good"
    return f"sending ({states.get('sent', 0)} of {sum(states.values())} sent)"


def status_of(notice: ChangeNotice, states: dict[str, dict[str, int]]) -> str:
    """How the change was told, in words: "sent at once", "in digest of <date>"..."""
    subject = subject_of(notice)
    sending = _sending(states.get(subject, {})) if subject else ""
    if notice.told == Told.at_once.value:
        return "sent at once" if sending == "sent" else f"at once: {sending}"
    if notice.told == Told.digest.value:
        if notice.digest_day is None:
            return "waiting for the next daily digest"
        day = notice.digest_day.isoformat()
        if sending == "sent":
            return f"in digest of {day}"
        if sending == "nobody on the list":
            return f"in digest of {day} (not sent)"
        return f"in digest of {day} ({sending})"
    return notice.note or "not sent"


def object_types(session: Session) -> list[str]:
    """Every object type that has a notice, for the filter menu."""
    return list(
        session.scalars(
            select(AuditEvent.object_type)
            .join(ChangeNotice, ChangeNotice.audit_event_id == AuditEvent.id)
            .distinct()
            .order_by(AuditEvent.object_type)
        )
    )
