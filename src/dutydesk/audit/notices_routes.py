"""The change-notices page and API: every recorded change with its risk and how it was told."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from dutydesk.audit import _notice_text as text
from dutydesk.audit import notices
from dutydesk.audit.models import AuditEvent, ChangeNotice
from dutydesk.settings import get_settings
from dutydesk.web.access import Db, Viewer, ViewerPage
from dutydesk.web.params import FormMoment, Moment, Offset, Page, form_moment
from dutydesk.web.templating import render

router = APIRouter()

RiskFilter = Annotated[
    str | None, Query(pattern="^(high|low)?$", description="Only changes of this risk level.")
]
Text = Annotated[str | None, Query(max_length=200)]
When = Annotated[Moment | None, Query(description="UTC when no time zone is given.")]
# The page's form sends its empty fields too, and a date as `YYYY-MM-DD HH:MM`.
PAGE_SIZE = 50


class FieldChangeOut(BaseModel):
    """One field of a change; `hidden` (set, changed, deleted) when it holds a secret."""

    field: str
    before: str | None
    after: str | None
    hidden: str


class ChangeNoticeOut(BaseModel):
    """A recorded change, its risk level and how it was told."""

    id: int
    audit_event_id: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    summary: str
    risk: str
    told: str
    status: str
    digest_day: dt.date | None
    changes: list[FieldChangeOut]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value


def _rows(db: Session, found: Sequence[Row[ChangeNotice, AuditEvent]]) -> list[ChangeNoticeOut]:
    subjects = [s for notice, _ in found if (s := notices.subject_of(notice))]
    states = notices.delivery_states(db, subjects)
    return [
        ChangeNoticeOut(
            id=notice.id,
            audit_event_id=change.id,
            at=change.at,
            actor=change.actor,
            action=change.action,
            object_type=change.object_type,
            object_id=change.object_id,
            summary=text.headline(change),
            risk=notice.risk,
            told=notice.told,
            status=notices.status_of(notice, states),
            digest_day=notice.digest_day,
            changes=[
                FieldChangeOut(field=c.field, before=c.before, after=c.after, hidden=c.hidden)
                for c in text.field_changes(change)
            ],
        )
        for notice, change in found
    ]


@router.get("/change-notices", response_class=HTMLResponse)
def change_notices_page(
    request: Request,
    _who: ViewerPage,
    db: Db,
    risk: RiskFilter = None,
    object_type: Text = None,
    actor: Text = None,
    since: FormMoment = None,
    until: FormMoment = None,
    page: Page = 1,
) -> HTMLResponse:
    """Every recorded change with its risk level and whether it was sent at once or in which
    daily digest, newest first."""
    query = notices.notice_query(
        risk=risk or None,
        object_type=object_type or None,
        actor=actor or None,
        since=form_moment("since", since),
        until=form_moment("until", until),
    )
    found = db.execute(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    return render(
        request,
        "audit/change_notices.html",
        {
            "rows": _rows(db, found[:PAGE_SIZE]),
            "has_more": len(found) > PAGE_SIZE,
            "page": page,
            "object_types": notices.object_types(db),
            "high_risk": notices.HIGH_RISK,
            "notice_list": get_settings().change_notice_list.strip(),
            "filters": {
                "risk": risk or "",
                "object_type": object_type or "",
                "actor": actor or "",
                "since": since or "",
                "until": until or "",
            },
        },
    )


@router.get("/api/v1/change-notices")
def list_change_notices(
    _who: Viewer,
    db: Db,
    risk: RiskFilter = None,
    object_type: Text = None,
    actor: Text = None,
    since: When = None,
    until: When = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[ChangeNoticeOut]:
    """Recorded changes matching the filters, newest first, each with its risk level and how
    it was told ("sent at once", "in digest of <date>")."""
    query = notices.notice_query(
        risk=risk or None,
        object_type=object_type or None,
        actor=actor or None,
        since=_aware(since),
        until=_aware(until),
    )
    return _rows(db, db.execute(query.offset(offset).limit(limit)).all())
