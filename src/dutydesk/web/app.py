"""The FastAPI app factory: routes of every domain, access checks, errors, static files."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from dutydesk import registry
from dutydesk.db import session_factory
from dutydesk.records.store import records_session_factory
from dutydesk.settings import Settings, get_settings
from dutydesk.web import routes as web_routes
from dutydesk.web.access import Access, LoginRequired, Viewer, identify_quietly
from dutydesk.web.csrf import CSRF_COOKIE
from dutydesk.web.metrics import DeskMetrics
from dutydesk.web.templating import render

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def is_api_path(path: str) -> bool:
    """API and machine endpoints answer in JSON; everything else is a page."""
    return path.startswith(("/api/", "/hooks/", "/ping/", "/health", "/metrics"))


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


def _include_domain_routes(app: FastAPI) -> None:
    for domain in registry.DOMAINS:
        try:
            module = importlib.import_module(f"dutydesk.{domain}.routes")
        except ModuleNotFoundError as error:
            if error.name != f"dutydesk.{domain}.routes":
                raise
            continue
        app.include_router(module.router)


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
            {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
            for item in error.errors()
        ]
        if is_api_path(request.url.path):
            return JSONResponse({"detail": problems}, status_code=422)
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return render(request, "error.html", {"status": 422, "detail": detail}, status_code=422)


def _install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def _csrf_cookie_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        nonce = getattr(request.state, "csrf_nonce", None)
        if nonce and not request.cookies.get(CSRF_COOKIE):
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        route = request.scope.get("route")
        template = getattr(route, "path", None) or (
            "/static" if request.url.path.startswith("/static/") else "unmatched"
        )
        app.state.metrics.http_requests.labels(
            template, request.method, str(response.status_code)
        ).inc()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


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
    app.include_router(web_routes.router)
    _include_domain_routes(app)

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi(_who: Viewer) -> JSONResponse:
        """The API's OpenAPI description."""
        return JSONResponse(get_openapi(title=app.title, version=app.version, routes=app.routes))

    _install_error_handlers(app)
    _install_middleware(app)
    _check_every_route_declares_access(app)
    return app
