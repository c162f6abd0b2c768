"""Pages and API for users and tokens (admins), and `GET /api/v1/me`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.db import utcnow
from dutydesk.people import service
from dutydesk.people.models import Role, Scope
from dutydesk.people.schemas import MeOut, NewTokenOut, TokenIn, TokenOut, UserOut
from dutydesk.web.access import Admin, AdminPage, Db, Principal, Viewer, ViewerPage
from dutydesk.web.params import RowId
from dutydesk.web.templating import render
from dutydesk.web.words import iso_moment, time_zone_names

router = APIRouter()
registry.add_nav(registry.NavItem("People", "/users", min_role="admin", order=900))
registry.add_nav(registry.NavItem("Tokens", "/tokens", min_role="admin", order=910))


def _users_page(request: Request, db: Db, **extra: object) -> HTMLResponse:
    return render(
        request,
        "people/users.html",
        {
            "users": service.list_users(db),
            "roles": list(Role),
            "time_zones": sorted(time_zone_names()),
            **extra,
        },
        status_code=400 if extra.get("error") else 200,
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, _who: AdminPage, db: Db) -> HTMLResponse:
    """Everyone who can sign in, and a form to add someone."""
    return _users_page(request, db)


@router.post("/users", response_class=HTMLResponse)
def add_user(
    request: Request,
    _who: AdminPage,
    db: Db,
    username: Annotated[str, Form(max_length=64)],
    role: Annotated[str, Form()],
    email: Annotated[str, Form(max_length=254)] = "",
    time_zone: Annotated[str, Form(max_length=64)] = "UTC",
) -> HTMLResponse:
    """Add a user with a generated password, shown once on the page."""
    password = service.generate_password()
    try:
        user = service.add_user(
            db,
            username.strip().lower(),
            role,
            email=email.strip() or None,
            password=password,
            time_zone=time_zone or "UTC",
        )
    except service.PeopleError as error:
        return _users_page(request, db, error=str(error))
    return _users_page(request, db, created=user.username, password=password)


@router.post("/users/{user_id}")
def edit_user(
    _who: AdminPage,
    db: Db,
    user_id: RowId,
    role: Annotated[str, Form()],
    active: Annotated[bool, Form()] = False,
    time_zone: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """Change a user's role, time zone, or switch their access off."""
    try:
        user = service.get_user(db, user_id)
    except service.PeopleError as error:
        raise HTTPException(404, str(error)) from None
    try:
        service.update_user(db, user, role=role, active=active, time_zone=time_zone)
    except service.PeopleError as error:
        raise HTTPException(400, str(error)) from None
    return RedirectResponse("/users", status_code=303)


def _account_page(request: Request, db: Db, who: Principal, **extra: object) -> HTMLResponse:
    if who.user is None:
        raise HTTPException(404, "a token without a person has no account page")
    user = service.get_user(db, who.user.id)
    return render(
        request,
        "people/account.html",
        {
            "account": user,
            "time_zones": sorted(time_zone_names()),
            "example": iso_moment(utcnow(), zone=user.time_zone),
            **extra,
        },
        status_code=400 if extra.get("error") else 200,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, who: ViewerPage, db: Db) -> HTMLResponse:
    """The signed-in person's own account: who they are and the time zone dates are shown in."""
    return _account_page(request, db, who)


@router.post("/account", response_class=HTMLResponse)
def set_own_time_zone(
    request: Request,
    who: ViewerPage,
    db: Db,
    time_zone: Annotated[str, Form(max_length=200)],
) -> Response:
    """Choose the time zone the console shows (and reads typed) dates in for oneself."""
    if who.user is None:
        raise HTTPException(404, "a token without a person has no account page")
    user = service.get_user(db, who.user.id)
    try:
        service.set_time_zone(user, time_zone)
    except service.PeopleError as error:
        return _account_page(request, db, who, error=str(error), typed=time_zone)
    return RedirectResponse("/account?saved=1", status_code=303)


def _tokens_page(request: Request, db: Db, **extra: object) -> HTMLResponse:
    return render(
        request,
        "people/tokens.html",
        {
            "tokens": service.list_tokens(db),
            "scopes": list(Scope),
            "users": service.list_users(db),
            **extra,
        },
        status_code=400 if extra.get("error") else 200,
    )


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, _who: AdminPage, db: Db) -> HTMLResponse:
    """API tokens: who has one, what it may do, when it was last used; revoke."""
    return _tokens_page(request, db)


@router.post("/tokens", response_class=HTMLResponse)
async def create_token_form(request: Request, _who: AdminPage, db: Db) -> HTMLResponse:
    """Make a token from the form; its secret is shown once."""
    form = await request.form()
    scopes = [str(value) for value in form.getlist("scopes")]
    try:
        made = service.create_token(
            db,
            str(form.get("name", "")),
            scopes,
            username=str(form.get("user") or "") or None,
        )
    except service.PeopleError as error:
        return _tokens_page(request, db, error=str(error))
    return _tokens_page(request, db, secret=made.secret, created=made.token.name)


@router.post("/tokens/{token_id}/revoke")
def revoke_token_form(_who: AdminPage, db: Db, token_id: RowId) -> Response:
    """Revoke a token from the console."""
    try:
        service.revoke_token(db, token_id)
    except service.PeopleError as error:
        raise HTTPException(404, str(error)) from None
    return RedirectResponse("/tokens", status_code=303)


@router.get("/api/v1/me")
def me(who: Viewer) -> MeOut:
    """Who the caller is and what they may do."""
    return MeOut(
        username=who.user.username if who.user else None,
        role=who.user.role if who.user else None,
        time_zone=who.user.time_zone if who.user else None,
        token=who.token.name if who.token else None,
        grants=sorted(need.value for need in who.grants),
    )


@router.get("/api/v1/users")
def list_users(_who: Admin, db: Db) -> list[UserOut]:
    """Every user."""
    return [UserOut.model_validate(user) for user in service.list_users(db)]


@router.get("/api/v1/tokens")
def list_tokens(_who: Admin, db: Db) -> list[TokenOut]:
    """Every token (without secrets)."""
    return [TokenOut.model_validate(token) for token in service.list_tokens(db)]


@router.post("/api/v1/tokens", status_code=201)
def create_token(_who: Admin, db: Db, body: TokenIn) -> NewTokenOut:
    """Make a token; the answer is the only place its secret appears."""
    try:
        made = service.create_token(db, body.name, body.scopes, username=body.user)
    except service.PeopleError as error:
        raise HTTPException(422, str(error)) from None
    return NewTokenOut(**TokenOut.model_validate(made.token).model_dump(), token=made.secret)


@router.delete("/api/v1/tokens/{token_id}")
def revoke_token(_who: Admin, db: Db, token_id: RowId) -> TokenOut:
    """Revoke a token."""
    try:
        token = service.revoke_token(db, token_id)
    except service.PeopleError as error:
        raise HTTPException(404, str(error)) from None
    return TokenOut.model_validate(token)
