"""Jinja2 templates shared by every domain, with the layout's globals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from dutydesk import registry
from dutydesk.people.models import Role
from dutydesk.web.access import Need
from dutydesk.web.csrf import form_token
from dutydesk.web.words import UTC_NAME, is_time_zone, iso_moment, plural, shown_in

TEMPLATE_DIRS = [Path(__file__).parent / "templates"] + [
    Path(__file__).parent.parent.joinpath(*domain.split("."), "templates")
    for domain in registry.DOMAINS
]
templates = Jinja2Templates(directory=[str(path) for path in TEMPLATE_DIRS if path.exists()])
templates.env.filters.update(plural=plural, iso=iso_moment)


def _nav_for(request: Request) -> list[registry.NavItem]:
    principal = getattr(request.state, "principal", None)
    user = getattr(principal, "user", None)
    if user is None:
        return []
    return [item for item in registry.nav_items if user.role_enum.includes(Role(item.min_role))]


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """Render a page with the layout's globals (user, navigation, CSRF token, and `zone`: the
    time zone its moments are shown in, the signed-in person's)."""
    principal = getattr(request.state, "principal", None)
    user = getattr(principal, "user", None)
    zone = getattr(user, "time_zone", UTC_NAME)
    zone = zone if is_time_zone(zone) else UTC_NAME

    def may(need: str) -> bool:
        return bool(principal is not None and principal.may(Need(need)))

    full = {
        "user": user,
        "zone": zone,
        "may": may,
        "nav": _nav_for(request),
        "csrf_token": form_token(request),
        "path": request.url.path,
        **(context or {}),
    }
    with shown_in(zone):
        return templates.TemplateResponse(request, name, full, status_code=status_code)
