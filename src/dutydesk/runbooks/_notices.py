"""Notices of the engine: signers when a request waits for them, the author on outcomes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people.models import Role, User
from dutydesk.runbooks._kinds import get_kind
from dutydesk.runbooks._rules import unmet
from dutydesk.runbooks.models import ChangeRequest
from dutydesk.settings import get_settings

registry.subject_page("change", "/changes/{}")


def change_link(change: ChangeRequest) -> str:
    """The console page of the request."""
    return f"{get_settings().base_url.rstrip('/')}/changes/{change.id}"


def _name(change: ChangeRequest) -> str:
    return f"{get_kind(change.kind).label} #{change.id}: {change.title}"


def signers_needed(session: Session, change: ChangeRequest) -> list[User]:
    """Active people whose signoff would help meet a rule not yet met (never the author, nor
    who made the current version, nor who has already signed it)."""
    roles = [Role(rule.role) for rule, _more in unmet(session, change)]
    if not roles:
        return []
    excluded = {change.author_id, change.revised_by_id}
    excluded |= {s.user_id for s in change.active_signoffs}
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.username))
    return [
        user
        for user in users
        if user.id not in excluded and any(Role(user.role).includes(role) for role in roles)
    ]


def notify_signers(session: Session, change: ChangeRequest) -> list[str]:
    """Tell everyone whose signoff is needed, with a link; the usernames told."""
    from dutydesk.notify.service import notify_user

    told = []
    link = change_link(change)
    for user in signers_needed(session, change):
        notify_user(
            session,
            user,
            subject=f"change:{change.id}",
            reason="signoff needed",
            sequence=f"v{change.data_version}",
            title=f"Signoff needed: {_name(change)}",
            body=(
                f"{change.author.username} asks for your signoff on {_name(change)} "
                f"(data version {change.data_version}, evidence {change.evidence_hash[:12]}).\n"
                f"Review and approve or reject: {link}"
            ),
        )
        told.append(user.username)
    return told


def notify_author(session: Session, change: ChangeRequest, state: str, why: str = "") -> None:
    """Tell the author their request was approved, rejected, done or failed."""
    from dutydesk.notify.service import notify_user

    detail = f"\n{why}" if why else ""
    notify_user(
        session,
        change.author,
        subject=f"change:{change.id}",
        reason=f"change {state}",
        sequence=f"v{change.data_version}",
        title=f"{state.capitalize()}: {_name(change)}",
        body=f"{_name(change)} is now {state}.{detail}\n{change_link(change)}",
    )
