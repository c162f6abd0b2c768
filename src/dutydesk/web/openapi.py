"""The API's OpenAPI description: the JSON routes only, each with every error it can answer.

The answers every route shares are added here in one place, from what the route declares:
401 and 403 from its access declaration (401 alone for a token in the URL), 404 when its path
names something, 422 when it takes parameters or a body, 431 for headers over the limit. A
route adds its own (409, 400, ...) with `responses=answers(409)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dutydesk.web.access import SESSION_COOKIE, Access, Need, TokenInUrl

AccessOf = Callable[[APIRoute], Access | None]


class Problem(BaseModel):
    """An error: what went wrong, in words."""

    detail: str


class FieldProblem(BaseModel):
    """One field of a request that was not accepted, and why."""

    field: str
    message: str


class Invalid(BaseModel):
    """A request that was not accepted: a list of field problems when its parameters or body
    do not have the declared form, or a sentence when their values make no sense together."""

    detail: list[FieldProblem] | str


_WHY = {
    400: "The request cannot be carried out as it is.",
    401: "No credentials, or credentials that name no one.",
    403: "The caller lacks the permission this needs.",
    404: "Nothing of that name or id.",
    409: "It conflicts with what is there already.",
    413: "The body is over the size limit.",
    422: "A parameter or the body was not accepted.",
    429: "Too many requests; try again later.",
    431: "The request's headers are over the size limit.",
    503: "A service this needs cannot be reached.",
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can also answer these error statuses."""
    return {
        status: {
            "description": _WHY[status],
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=_shape(status))}}
            },
        }
        for status in statuses
    }


_REF = "#/components/schemas/{model}"


def _shape(status: int) -> str:
    return Invalid.__name__ if status == 422 else Problem.__name__


def is_api_path(path: str) -> bool:
    """API and machine endpoints answer in JSON; everything else is a page."""
    return path.startswith(("/api/", "/hooks/", "/ping/", "/health", "/metrics"))


def _shared_answers(route: APIRoute, access: Access | None) -> list[int]:
    statuses = [431]
    if isinstance(access, TokenInUrl):
        statuses.append(401)  # the token in the URL names nothing
    elif access is not None and access.need is not Need.public:
        statuses += [401, 403]
    dependant = route.dependant
    if dependant.path_params:
        statuses.append(404)
    # A route reading its body itself declares it in `openapi_extra`.
    has_body = bool(dependant.body_params) or "requestBody" in (route.openapi_extra or {})
    if dependant.path_params or dependant.query_params or has_body:
        statuses.append(422)
    return statuses


def document_shared_answers(routes: Iterable[APIRoute], access_of: AccessOf) -> None:
    """Add the answers every API route shares to its `responses`, unless it declares them."""
    for route in routes:
        if route.include_in_schema and is_api_path(route.path):
            shared = _shared_answers(route, access_of(route))
            for status, answer in answers(*shared).items():
                route.responses.setdefault(status, answer)


# How a caller says who they are: an API token, or the console's session cookie.
_CREDENTIALS = {
    "apiToken": {"type": "http", "scheme": "bearer"},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
}


def api_description(
    app: FastAPI, routes: Iterable[APIRoute], access_of: AccessOf
) -> dict[str, Any]:
    """The OpenAPI description of the API routes (the console's pages are left out), with the
    credentials each one needs."""
    api = [route for route in routes if is_api_path(route.path)]
    description = get_openapi(title=app.title, version=app.version, routes=api)
    components = description.setdefault("components", {})
    # The error shapes the answers refer to (routes name them by reference, see `answers`).
    _, shapes = models_json_schema(
        [(Problem, "serialization"), (Invalid, "serialization")], ref_template=_REF
    )
    components.setdefault("schemas", {}).update(shapes["$defs"])
    components["securitySchemes"] = _CREDENTIALS
    for route in api:
        access = access_of(route)
        if access is None or isinstance(access, TokenInUrl) or access.need is Need.public:
            continue
        operations = description["paths"].get(route.path, {})
        for method in route.methods or ():
            if method.lower() in operations:
                operations[method.lower()]["security"] = [{name: []} for name in _CREDENTIALS]
    return description
