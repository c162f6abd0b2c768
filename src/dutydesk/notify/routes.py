"""Notification pages: channels (secrets masked) with "send test", escalation policies,
contact lists with "notify list", and deliveries with the dead letters and "retry"."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.notify import escalation, service, watchdog
from dutydesk.notify.demo_mailbox import router as demo_mailbox_router
from dutydesk.notify.models import (
    Channel,
    ContactList,
    ContactMethod,
    Delivery,
    DeliveryState,
    EscalationPolicy,
    QuietHours,
)
from dutydesk.people.models import User
from dutydesk.web.access import AdminPage, Db, OperatorPage, Principal, ViewerPage
from dutydesk.web.params import INT32_MAX, INT32_MIN, RowId, form_int
from dutydesk.web.templating import render

router = APIRouter()
router.include_router(demo_mailbox_router)
registry.add_nav(registry.NavItem("Notify", "/notify", order=56))


def _actor(who: Principal) -> str:
    return who.user.username if who.user is not None else "api"


@router.get("/notify", response_class=HTMLResponse)
def notify_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """Channels, policies, contact lists and the self-check."""
    return render(
        request,
        "notify/index.html",
        {
            "channels": service.list_channels(db),
            "mask": service.mask_url,
            "policies": db.scalars(select(EscalationPolicy).order_by(EscalationPolicy.position)),
            "lists": db.scalars(select(ContactList).order_by(ContactList.name)).all(),
            "check": watchdog.check(db),
            "my_methods": db.scalars(
                select(ContactMethod).where(ContactMethod.user_id == _who.user.id)
            ).all()
            if _who.user is not None
            else [],
            "my_quiet": db.get(QuietHours, _who.user.id) if _who.user is not None else None,
        },
    )


@router.get("/notify/deliveries", response_class=HTMLResponse)
def deliveries_page(request: Request, _who: ViewerPage, db: Db) -> HTMLResponse:
    """The newest deliveries; `?state=dead` shows the dead letters."""
    state = request.query_params.get("state") or None
    if state is not None and state not in DeliveryState.__members__:
        raise HTTPException(422, f"unknown state {state!r}")
    return render(
        request,
        "notify/deliveries.html",
        {
            "deliveries": service.list_deliveries(db, state=state),
            "state": state,
            "states": list(DeliveryState),
        },
    )


@router.post("/notify/channels")
async def add_channel(request: Request, _who: AdminPage, db: Db) -> Response:
    """Add a channel from the form."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.create_channel(
            db,
            name=form.get("name", ""),
            url=form.get("url", ""),
            kind=form.get("kind") or None,
            team=form.get("team", ""),
        )
    except service.NotifyError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/notify", status_code=303)


@router.post("/notify/channels/{channel_id}/test")
def test_channel(who: OperatorPage, db: Db, channel_id: RowId) -> Response:
    """Queue a "test" notice to the channel."""
    channel = db.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(404, f"no channel {channel_id}")
    service.send_test(db, channel, actor=_actor(who))
    return RedirectResponse("/notify/deliveries", status_code=303)


@router.post("/notify/lists/{list_id}/send")
async def send_to_list(request: Request, _who: OperatorPage, db: Db, list_id: RowId) -> Response:
    """Send a subject and message to everyone on a contact list."""
    contact_list = db.get(ContactList, list_id)
    if contact_list is None:
        raise HTTPException(404, f"no contact list {list_id}")
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.notify_list(
            db, contact_list, subject_line=form.get("subject", ""), message=form.get("message", "")
        )
    except service.NotifyError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/notify/deliveries", status_code=303)


@router.post("/notify/deliveries/{delivery_id}/retry")
def retry_delivery(_who: OperatorPage, db: Db, delivery_id: RowId) -> Response:
    """Send a dead letter again."""
    delivery = db.get(Delivery, delivery_id)
    if delivery is None:
        raise HTTPException(404, f"no delivery {delivery_id}")
    try:
        service.retry(db, delivery)
    except service.NotifyError as error:
        raise HTTPException(409, str(error)) from None
    return RedirectResponse("/notify/deliveries?state=dead", status_code=303)


def _person(db: Db, who: Principal) -> User:
    user = db.get(User, who.user.id) if who.user is not None else None
    if user is None:
        # A service token has no person to attach this to: the request itself is wrong.
        raise HTTPException(422, "contact methods and quiet hours belong to a person; sign in")
    return user


# A policy walks its steps at most this many times (each pass pages someone again).
MAX_REPEATS = 100


def _form_list(value: str) -> list[str]:
    return [part for part in value.replace(",", " ").split() if part]


@router.post("/notify/policies")
async def add_policy(request: Request, _who: AdminPage, db: Db) -> Response:
    """Add an escalation policy; steps are lines of `TARGET NAME WAIT_MINUTES`."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        escalation.create_policy(
            db,
            name=form.get("name", ""),
            steps=service.parse_steps(form.get("steps", "")),
            repeat=form_int(form, "repeat", 1, low=1, high=MAX_REPEATS),
            sources=_form_list(form.get("sources", "")),
            severities=_form_list(form.get("severities", "")) or None,
            position=form_int(form, "position", 100, low=INT32_MIN, high=INT32_MAX),
        )
    except (service.NotifyError, ValueError) as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/notify", status_code=303)


@router.post("/notify/lists")
async def add_list(request: Request, _who: AdminPage, db: Db) -> Response:
    """Add a contact list of usernames and e-mail addresses."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.create_contact_list(
            db, name=form.get("name", ""), members=_form_list(form.get("members", ""))
        )
    except service.NotifyError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/notify", status_code=303)


@router.post("/notify/contact-methods")
async def add_contact_method(request: Request, who: OperatorPage, db: Db) -> Response:
    """Add a way to reach the signed-in person."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.add_contact_method(
            db, _person(db, who), form.get("url", ""), form.get("kind") or None
        )
    except service.NotifyError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/notify", status_code=303)


@router.post("/notify/contact-methods/{method_id}/test")
def test_contact_method(who: OperatorPage, db: Db, method_id: RowId) -> Response:
    """Queue a "test" notice to one of the signed-in person's contact methods."""
    method = db.get(ContactMethod, method_id)
    if method is None or who.user is None or method.user_id != who.user.id:
        raise HTTPException(404, f"you have no contact method {method_id}")
    service.send_test_to_method(db, method, actor=_actor(who))
    return RedirectResponse("/notify/deliveries", status_code=303)


@router.post("/notify/quiet-hours")
async def set_quiet_hours(request: Request, who: OperatorPage, db: Db) -> Response:
    """Set the signed-in person's quiet hours."""
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        service.set_quiet_hours(
            db,
            _person(db, who),
            time_zone=form.get("time_zone", ""),
            starts=form.get("starts", ""),
            ends=form.get("ends", ""),
        )
    except service.NotifyError as error:
        raise HTTPException(422, str(error)) from None
    return RedirectResponse("/notify", status_code=303)
