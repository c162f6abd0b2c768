"""The console's own pages: sign in and out, the overview, health and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from kombu.connection import Connection
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import HTMLResponse

from dutydesk.audit.service import audit_query
from dutydesk.jobs.service import state_counts
from dutydesk.people import service as people
from dutydesk.web.access import (
    SESSION_COOKIE,
    Anyone,
    AnyonePage,
    Db,
    Viewer,
    ViewerPage,
)
from dutydesk.web.templating import render

router = APIRouter()

BROKER_CHECK_TIMEOUT_SECONDS = 3.0


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in; anything else becomes the overview."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def client_address(request: Request) -> str:
    """The caller's address: behind a proxy listed in DUTYDESK_FORWARDED_ALLOW_IPS, the one it
    forwarded (the app's proxy-headers middleware has put it in place)."""
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, _who: AnyonePage, next: str = "/") -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    _who: AnyonePage,
    db: Db,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password and open a session; too many recent failures for the name (from
    this address, or from everywhere) get 429."""
    settings = request.app.state.settings
    client = client_address(request)
    context = {"next": safe_next(next), "username": username}
    limits = people.SignInLimits(
        per_address_and_name=settings.login_failures_per_minute,
        per_name=settings.login_failures_per_name_per_minute,
        per_address=settings.login_failures_per_address_per_minute,
    )
    refusal = people.sign_in_refusal(db, client, username, limits)
    if refusal is not None:
        return render(request, "login.html", {**context, "error": refusal}, status_code=429)
    user = people.authenticate(db, username.strip().lower(), password)
    if user is None:
        people.record_failure(db, client, username)
        return render(
            request,
            "login.html",
            {**context, "error": "Wrong username or password."},
            status_code=401,
        )
    secret = people.start_session(db, user, hours=settings.session_hours, client=client)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request, _who: AnyonePage) -> HTMLResponse:
    """A page with the sign-out button (signing out is a POST, so it cannot be forged)."""
    return render(request, "logout.html")


@router.post("/logout")
def logout(request: Request, _who: AnyonePage, db: Db) -> Response:
    """End the session and go to the sign-in page."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        people.end_session(db, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: ViewerPage, db: Db) -> HTMLResponse:
    """The overview, the live desk: who is on duty, open tickets, firing alarms, the last
    export, approvals waiting for me, broadcasts and silences, backups, CI, the processes."""
    from dutydesk.notify.watchdog import check
    from dutydesk.web.overview import gather

    recent = db.scalars(audit_query().limit(10)).all()
    return render(
        request,
        "overview.html",
        {
            **gather(db, who.user.id if who.user else None),
            "job_counts": state_counts(db),
            "recent_changes": recent,
            "health": _health(request),
            "self_check": check(db),
        },
    )


def _health(request: Request) -> dict[str, str]:
    parts = {"database": "ok", "broker": "ok"}
    try:
        with request.app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        parts["database"] = f"failing: {type(error).__name__}"
    try:
        url = request.app.state.settings.effective_broker_url
        with Connection(url) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - any transport error means the broker is down
        parts["broker"] = f"failing: {type(error).__name__}"
    return parts


@router.get("/health")
def health(request: Request, _who: Anyone) -> JSONResponse:
    """200 with every part ok, or 503 naming the part that fails."""
    parts = _health(request)
    ok = all(value == "ok" for value in parts.values())
    return JSONResponse(
        {"status": "ok" if ok else "failing", **parts}, status_code=200 if ok else 503
    )


class PrometheusText(PlainTextResponse):
    """Prometheus' text exposition format; the description names it as its answer's type."""

    media_type = "text/plain; version=0.0.4"


@router.get("/metrics", response_class=PrometheusText)
def metrics(request: Request, _who: Viewer) -> PrometheusText:
    """Prometheus text: HTTP requests by route and status, jobs by state."""
    return PrometheusText(request.app.state.metrics.render())
