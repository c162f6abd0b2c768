"""The API against its own OpenAPI description: a schemathesis run with every check, in-process,
signed in with an admin token; the console's pages by schemathesis too, for server errors only.

Leave those runs (a minute or two each) out of a quick run with `-m "not fuzz"`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient
from schemathesis.engine import Status, events
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.people import service as people
from dutydesk.web.app import api_routes
from dutydesk.web.openapi import is_api_path
from dutydesk.web.params import INT32_MAX, INT64_MAX
from tests.conftest import make_user

# Enough for every check to see each operation's edges; the run takes about a minute.
EXAMPLES_PER_OPERATION = 15
PAGE_EXAMPLES_PER_OPERATION = 10
# One seed and no example store: every run (a developer's, CI's) draws the same cases, so a
# failure is met again by whoever runs the test next. Change the seed to explore anew.
SEED = 20261207
# Schema-valid values the schema cannot tell are wrong (an unknown time zone, a malformed
# search) are refused with a reason; the check still fails on anything else.
ACCEPTED_AS_REFUSALS = ["400", "422"]


def admin_token(factory: sessionmaker[Session]) -> type[Any]:
    """An auth provider: an admin's API token, made anew whenever the run revoked it (it may
    call `DELETE /api/v1/tokens/{id}` on its own token)."""

    class AdminToken:
        secret = ""

        def get(self, case: schemathesis.Case, context: Any) -> str:
            with factory() as session:
                if people.token_for_secret(session, AdminToken.secret) is None:
                    made = people.create_token(session, "schema", ["admin"], username="fuzzer")
                    session.commit()
                    AdminToken.secret = made.secret
            return AdminToken.secret

        def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return AdminToken


def sign_in_with(schema: Any, provider: type[Any]) -> None:
    """Register `provider` for every case of `schema`. (`schema.auth(provider)` alone only
    makes a decorator for a test function, and the run goes unauthenticated.) Its token is
    kept until an answer is 401, which makes schemathesis fetch a new one (the provider makes
    a new token when the run revoked its own) and send the request again, rather than a query
    before every case."""
    schema.auth()(provider)


def run(schema: Any) -> list[str]:
    """Run schemathesis over `schema` (every phase); print the figures, return the failures."""
    failures: set[str] = set()
    figures: Counter[str] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            figures[f"scenarios of {event.phase.value}"] += 1
            figures["cases"] += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    figures[f"answers {interaction.response.status_code}"] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.add(
                            f"{recorder.label} [{check.name}] {failure.title}: "
                            f"{failure.message[:400]}\n    {check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            failures.add(f"error: {event.info}")
        elif isinstance(event, events.FatalError):
            failures.add(f"fatal: {event.exception!r}")
    operations = sum(len(methods) for methods in schema.raw_schema["paths"].values())
    print(f"{operations} operations, {dict(figures)}, {len(failures)} failures")
    return sorted(failures)


@pytest.mark.fuzz
def test_api_keeps_to_its_openapi_description(
    app: FastAPI, db: Session, factory: sessionmaker[Session]
) -> None:
    make_user(db, "admin", "fuzzer")
    provider = admin_token(factory)
    # These headers only fetch the description (which needs a caller); the cases are signed
    # in by the provider.
    reader = {"Authorization": f"Bearer {provider().get(None, None)}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=reader)
    sign_in_with(schema, provider)
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, database="none")
    schema.config.seed = SEED
    acceptance = schema.config.checks.positive_data_acceptance
    acceptance.expected_statuses = [*acceptance.expected_statuses, *ACCEPTED_AS_REFUSALS]
    failures = run(schema)
    assert not failures, "\n".join(failures)


@pytest.mark.fuzz
def test_console_pages_never_answer_a_server_error(
    app: FastAPI, db: Session, factory: sessionmaker[Session]
) -> None:
    """The pages are no API and not in its description; their parameters, as FastAPI
    describes them, must still never get a 500. (`/logout` is left out: it ends the session
    the run works in.)"""
    make_user(db, "admin", "fuzzer")
    pages = [
        route
        for route in api_routes(app.routes)
        if not is_api_path(route.path) and route.path != "/logout"
    ]
    schema = schemathesis.openapi.from_dict(
        get_openapi(title="console", version=app.version, routes=pages)
    )
    schema.app = app
    sign_in_with(schema, admin_token(factory))
    schema.config.generation.update(max_examples=PAGE_EXAMPLES_PER_OPERATION, database="none")
    schema.config.seed = SEED
    schema.config.checks.update(included_check_names=["not_a_server_error"])
    failures = run(schema)
    assert not failures, "\n".join(failures)


def integers_in(
    schema: dict[str, Any], where: str, components: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every integer schema inside `schema`, with where it is."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        yield from integers_in(components[name], f"{where} {name}", components)
        return
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from integers_in(option, where, components)
    for name, field in schema.get("properties", {}).items():
        yield from integers_in(field, f"{where}.{name}", components)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from integers_in(schema[key], f"{where}[]", components)


def test_every_integer_a_route_takes_has_bounds_the_database_holds(app: FastAPI) -> None:
    """Pages included: an unbounded integer reaches SQLite's driver, which fails on one past
    64 bits (a 500)."""
    every_route = get_openapi(title="all", version="0", routes=list(api_routes(app.routes)))
    components = every_route["components"]["schemas"]
    unbounded = []
    for path, operations in every_route["paths"].items():
        for method, operation in operations.items():
            places = [
                (f"{parameter['in']} {parameter['name']}", parameter["schema"])
                for parameter in operation.get("parameters", [])
            ]
            for kind, content in operation.get("requestBody", {}).get("content", {}).items():
                places.append((f"body ({kind})", content["schema"]))
            for place, schema in places:
                for where, integer in integers_in(schema, place, components):
                    low, high = integer.get("minimum"), integer.get("maximum")
                    if low is None or high is None or low < -INT64_MAX - 1 or high > INT64_MAX:
                        unbounded.append(f"{method.upper()} {path}: {where}")
    assert unbounded == []


def test_the_description_holds_the_api_with_its_shared_errors(
    client: TestClient, db: Session
) -> None:
    make_user(db, "viewer", "reader")
    secret = people.create_token(db, "docs", ["read"], username="reader").secret
    db.commit()
    description = client.get(
        "/api/v1/openapi.json", headers={"Authorization": f"Bearer {secret}"}
    ).json()
    assert "/tickets" not in description["paths"]  # a console page, not the API
    answers = description["paths"]["/api/v1/export-schedules/{schedule_id}"]["get"]["responses"]
    assert sorted(answers) == ["200", "401", "403", "404", "422", "431"]
    invalid = answers["422"]["content"]["application/json"]["schema"]
    assert invalid == {"$ref": "#/components/schemas/Invalid"}
    assert "HTTPValidationError" not in description["components"]["schemas"]
    me = description["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"apiToken": []}, {"session": []}]
    assert "security" not in description["paths"]["/health"]["get"]
    # A route's own answers: closing a closed ticket is a conflict (tickets/test_api.py).
    closing = description["paths"]["/api/v1/tickets/{key}/close"]["post"]["responses"]
    assert closing["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


# Operations that answer 404 for a name or id in their query or body (not in their path, where
# every route documents it): each request here gets one, and the description says so.
NOT_FOUND_BY_QUERY_OR_BODY: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/api/v1/backups", {"params": {"target": "nowhere"}}),
    ("get", "/api/v1/backups/drills", {"params": {"target": "nowhere"}}),
    (
        "post",
        "/api/v1/redrives/items",
        {"json": {"ids": ["R-1"], "reason": "lost", "batch": INT32_MAX}},
    ),
    (
        "post",
        "/api/v1/silences",
        {"json": {"rule": "nowhere", "ends_at": "2030-01-01T00:00:00Z", "reason": "noisy"}},
    ),
]


def with_admin_token(client: TestClient, db: Session) -> None:
    """Send `client`'s requests with an admin's API token."""
    make_user(db, "admin", "keeper")
    secret = people.create_token(db, "docs", ["admin"], username="keeper").secret
    db.commit()
    client.headers["Authorization"] = f"Bearer {secret}"


def test_an_unknown_name_in_a_query_or_body_is_a_documented_404(
    client: TestClient, db: Session
) -> None:
    with_admin_token(client, db)
    description = client.get("/api/v1/openapi.json").json()
    for method, path, request in NOT_FOUND_BY_QUERY_OR_BODY:
        response = client.request(method.upper(), path, **request)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"], (method, path)
        answer = description["paths"][path][method]["responses"].get("404")
        assert answer is not None, (method, path)
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }


def test_the_description_gives_the_metrics_as_prometheus_text(
    client: TestClient, db: Session
) -> None:
    with_admin_token(client, db)
    described = client.get("/api/v1/openapi.json").json()["paths"]["/metrics"]["get"]
    [content_type] = described["responses"]["200"]["content"]
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(content_type)
    assert content_type == "text/plain; version=0.0.4"
