"""The FastAPI app factory: routes of every domain, access checks, errors, static files."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dutydesk import registry
from dutydesk.db import session_factory
from dutydesk.records.store import records_session_factory
from dutydesk.settings import Settings, get_settings
from dutydesk.web import routes as web_routes
from dutydesk.web.access import Access, LoginRequired, Viewer, identify_quietly
from dutydesk.web.csrf import CSRF_COOKIE
from dutydesk.web.limits import RequestLimits
from dutydesk.web.metrics import DeskMetrics
from dutydesk.web.openapi import api_description, document_shared_answers, is_api_path
from dutydesk.web.templating import render

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, looking inside included routers (which FastAPI keeps as one entry)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def access_of(route: APIRoute) -> Access | None:
    """The `Access` declaration among a route's dependencies, if any."""

    def find(dependant: Dependant) -> Access | None:
        for sub in dependant.dependencies:
            if isinstance(sub.call, Access):
                return sub.call
            found = find(sub)
            if found is not None:
                return found
        return None

    return find(route.dependant)


def _check_every_route_declares_access(app: FastAPI) -> None:
    missing = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in api_routes(app.routes)
        if access_of(route) is None
    ]
    if missing:
        raise RuntimeError(f"routes without an access declaration: {', '.join(missing)}")


def _domain_route_modules() -> Iterator[ModuleType]:
    for domain in registry.DOMAINS:
        try:
            yield importlib.import_module(f"dutydesk.{domain}.routes")
        except ModuleNotFoundError as error:
            if error.name != f"dutydesk.{domain}.routes":
                raise


def _include_routes(app: FastAPI) -> None:
    """Every domain's routes. A domain's `machine_router` (endpoints that machines call many
    times a second: webhooks, pings) comes before everything else, so matching a request to
    it does not walk the whole console first."""
    modules = list(_domain_route_modules())
    for module in modules:
        machine_router = getattr(module, "machine_router", None)
        if machine_router is not None:
            app.include_router(machine_router)
    app.include_router(web_routes.router)
    for module in modules:
        app.include_router(module.router)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at the request's path (the router's 405 names only those
    of the first route there, and each method of a path is a route of its own)."""
    methods: set[str] = set()
    for route in api_routes(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _message(item: Any) -> str:
    """A validation error's message, with the parser's reason when the body is no JSON."""
    reason = (item.get("ctx") or {}).get("error") if item.get("type") == "json_invalid" else None
    return f"{item['msg']}: {reason}" if reason else str(item["msg"])


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, error: LoginRequired) -> Response:
        target = error.next_path
        if request.url.query:
            target += f"?{request.url.query}"
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        if is_api_path(request.url.path) or request.headers.get("hx-request"):
            return JSONResponse(
                {"detail": error.detail}, status_code=error.status_code, headers=headers
            )
        if not hasattr(request.state, "principal"):
            # An unknown path ran no access check; find the caller so the page keeps its menu.
            request.state.principal = identify_quietly(request)
        return render(
            request,
            "error.html",
            {"status": error.status_code, "detail": error.detail},
            status_code=error.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(part) for part in item["loc"]), "message": _message(item)}
            for item in error.errors()
        ]
        if is_api_path(request.url.path):
            return JSONResponse({"detail": problems}, status_code=422)
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return render(request, "error.html", {"status": 422, "detail": detail}, status_code=422)


# Headers every answer carries unless its handler set them itself.
_SAFETY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def _route_template(scope: Scope) -> str:
    """The route's template (never the raw path, so the metrics' labels stay few)."""
    path: str = scope.get("path", "")
    return getattr(scope.get("route"), "path", None) or (
        "/static" if path.startswith("/static/") else "unmatched"
    )


class _CsrfCookieAndMetrics:
    """Plain ASGI middleware: counts each answer by route, sets the CSRF cookie a page made
    a nonce for, and adds the safety headers. (Plain ASGI rather than `@app.middleware`:
    that form runs every request in an extra task with its own streams.)"""

    def __init__(self, app: ASGIApp, metrics: DeskMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._finish(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            self.metrics.http_duration.labels(
                scope.get("method", ""), _route_template(scope), str(status)
            ).observe(time.perf_counter() - started)

    def _finish(self, scope: Scope, message: Message) -> None:
        headers = MutableHeaders(scope=message)
        nonce = scope.get("state", {}).get("csrf_nonce")
        if nonce and not Request(scope).cookies.get(CSRF_COOKIE):
            cookie = Response()
            cookie.set_cookie(
                CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="lax",
                secure=scope.get("scheme") == "https",
            )
            headers.append("set-cookie", cookie.headers["set-cookie"])
        self.metrics.http_requests.labels(
            _route_template(scope), scope.get("method", ""), str(message["status"])
        ).inc()
        for name, value in _SAFETY_HEADERS:
            if name.decode() not in headers:
                headers.append(name.decode(), value.decode())


def create_app(
    settings: Settings | None = None,
    factory: sessionmaker[Session] | None = None,
    *,
    records_factory: sessionmaker[Session] | None = None,
) -> FastAPI:
    """Build the web app; refuses to build if any route lacks an access declaration."""
    settings = settings or get_settings()
    registry.load_domains()
    app = FastAPI(
        title="dutydesk",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.secret_key = settings.signing_key()
    app.state.session_factory = factory or session_factory()
    app.state.records_factory = records_factory or records_session_factory()
    app.state.metrics = DeskMetrics(app.state.session_factory)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _include_routes(app)

    document_shared_answers(api_routes(app.routes), access_of)

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi(_who: Viewer) -> JSONResponse:
        """The API's OpenAPI description."""
        if app.openapi_schema is None:
            app.openapi_schema = api_description(app, api_routes(app.routes), access_of)
        return JSONResponse(app.openapi_schema)

    _install_error_handlers(app)
    app.add_middleware(RequestLimits)
    app.add_middleware(_CsrfCookieAndMetrics, metrics=app.state.metrics)
    # Outermost, so everything inside sees the caller's address and scheme as a proxy listed
    # in DUTYDESK_FORWARDED_ALLOW_IPS forwarded them (whatever server runs the app).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    _check_every_route_declares_access(app)
    return app
