"""Due work of the review: the weekly e-mail."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dutydesk import registry


@registry.due("review.mail")
def review_mail_due(session: Session) -> None:
    """Mail the review to DUTYDESK_REVIEW_MAIL_LIST once a week, from its weekday and hour."""
    from dutydesk.review.mail import send_weekly

    send_weekly(session)
