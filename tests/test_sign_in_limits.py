"""Failed sign-ins are limited per address and user name, per name, and (when asked) per
address; forwarded client addresses (for sign-ins and the intake inbox) are believed only from
the proxies listed."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from dutydesk.cli import app as cli_app
from dutydesk.intake.models import InboxItem
from dutydesk.people.models import LoginFailure
from dutydesk.settings import SettingsError, get_settings
from dutydesk.web.access import SESSION_COOKIE
from dutydesk.web.app import create_app
from tests.conftest import TEST_PASSWORD, clear_caches, csrf_token, make_user
from tests.intake.conftest import make_integration
from tests.test_processes import healthy
from tests.test_worker import Processes, desk_env, free_port, wait_until

AppWith = Callable[..., FastAPI]


@pytest.fixture
def app_with(
    factory: sessionmaker[Session],
    shared_records_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> AppWith:
    """Build the app on the test's database with some `DUTYDESK_*` settings changed."""

    def build(**settings: str) -> FastAPI:
        for name, value in settings.items():
            monkeypatch.setenv(f"DUTYDESK_{name.upper()}", value)
        clear_caches()
        return create_app(get_settings(), factory, records_factory=shared_records_factory)

    return build


@contextmanager
def browser(app: FastAPI, address: str) -> Iterator[tuple[TestClient, str]]:
    """A client calling from `address`, with the CSRF token of its sign-in form."""
    with TestClient(app, follow_redirects=False, client=(address, 50000)) as client:
        yield client, csrf_token(client)


def sign_in(
    client: TestClient, token: str, username: str, password: str, **headers: str
) -> Response:
    data = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=data, headers=headers)


def test_eleventh_wrong_password_for_a_user_from_one_address_gets_429(
    app: FastAPI, db: Session
) -> None:
    make_user(db, "viewer", "vera")
    with browser(app, "198.51.100.7") as (client, token):
        statuses = [sign_in(client, token, "vera", f"guess {n}").status_code for n in range(10)]
        assert statuses == [401] * 10
        refused = sign_in(client, token, "vera", "guess 10")
        assert refused.status_code == 429
        assert "Too many failed sign-ins for this user from your address" in refused.text
        # The right password waits too: the limit is what keeps guessing slow.
        right = sign_in(client, token, "vera", TEST_PASSWORD)
        assert right.status_code == 429
        assert SESSION_COOKIE not in right.headers.get("set-cookie", "")


# Small limits below keep the number of (deliberately slow) password checks down; the
# default limits are the ones the first test and tests/test_auth.py run with.
SMALL_LIMITS = {
    "login_failures_per_minute": "2",
    "login_failures_per_name_per_minute": "4",
}


def test_the_user_name_is_counted_as_it_is_signed_in_with(app_with: AppWith, db: Session) -> None:
    app = app_with(**SMALL_LIMITS)
    make_user(db, "viewer", "vera")
    with browser(app, "198.51.100.7") as (client, token):
        assert sign_in(client, token, "Vera", "guess").status_code == 401
        assert sign_in(client, token, " VERA ", "guess").status_code == 401
        assert sign_in(client, token, "vEra", TEST_PASSWORD).status_code == 429


def test_a_flood_against_many_names_leaves_a_colleagues_right_password_working(
    app_with: AppWith, db: Session
) -> None:
    app = app_with(**SMALL_LIMITS)
    make_user(db, "viewer", "vera")
    make_user(db, "operator", "otto")
    with browser(app, "192.0.2.10") as (client, token):
        # Wrong passwords for several names (one real) from one NAT address, each name up to
        # its limit, twice as many failures as any one name may have...
        for name in ("vera", "name1", "name2", "name3"):
            for n in range(2):
                assert sign_in(client, token, name, f"guess {n}").status_code == 401
        assert sign_in(client, token, "vera", TEST_PASSWORD).status_code == 429
        # ...and a colleague behind the same address still signs in with the right password.
        assert sign_in(client, token, "otto", TEST_PASSWORD).status_code == 303
    assert len(_failure_clients(db)) == 8


def test_the_per_name_limit_holds_across_addresses(app_with: AppWith, db: Session) -> None:
    app = app_with(**SMALL_LIMITS)
    make_user(db, "viewer", "vera")
    make_user(db, "operator", "otto")
    # Two addresses, each under its own limit for the name, reach the name's limit together.
    for address in ("203.0.113.1", "203.0.113.2"):
        with browser(app, address) as (client, token):
            for n in range(2):
                assert sign_in(client, token, "vera", f"guess {n}").status_code == 401
    with browser(app, "203.0.113.3") as (client, token):
        refused = sign_in(client, token, "vera", TEST_PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed sign-ins for this user; wait a minute." in refused.text
        # Other names from that address are not held back by vera's failures.
        assert sign_in(client, token, "otto", TEST_PASSWORD).status_code == 303


def test_one_address_alone_cannot_lock_a_name_out_for_everyone(
    app_with: AppWith, db: Session
) -> None:
    app = app_with(**SMALL_LIMITS)
    make_user(db, "viewer", "vera")
    with browser(app, "203.0.113.66") as (attacker, token):
        statuses = [sign_in(attacker, token, "vera", f"guess {n}").status_code for n in range(8)]
        # Refused tries are not failures: the attacker's count for the name stops at 2, under
        # the name's limit of 4.
        assert statuses == [401] * 2 + [429] * 6
    with browser(app, "192.0.2.20") as (owner, token):
        assert sign_in(owner, token, "vera", TEST_PASSWORD).status_code == 303


def test_a_per_address_limit_refuses_every_name_from_that_address_at_its_threshold(
    app_with: AppWith, db: Session
) -> None:
    app = app_with(login_failures_per_address_per_minute="3")
    make_user(db, "viewer", "vera")
    with browser(app, "192.0.2.30") as (client, token):
        statuses = [sign_in(client, token, f"name{n}", "guess").status_code for n in range(3)]
        assert statuses == [401] * 3
        refused = sign_in(client, token, "vera", TEST_PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed sign-ins from your address; wait a minute." in refused.text
    with browser(app, "192.0.2.31") as (client, token):
        assert sign_in(client, token, "vera", TEST_PASSWORD).status_code == 303


def test_failures_under_the_per_address_limit_refuse_no_other_name(
    app_with: AppWith, db: Session
) -> None:
    app = app_with(login_failures_per_address_per_minute="3")
    make_user(db, "viewer", "vera")
    with browser(app, "192.0.2.30") as (client, token):
        for n in range(2):
            assert sign_in(client, token, f"name{n}", "guess").status_code == 401
        assert sign_in(client, token, "vera", TEST_PASSWORD).status_code == 303


# --- forwarded client addresses --------------------------------------------------------------


def _failure_clients(db: Session) -> list[str]:
    db.expire_all()
    return list(db.scalars(select(LoginFailure.client)))


def test_forwarded_address_from_a_loopback_client_is_not_believed_by_default(
    app: FastAPI, db: Session
) -> None:
    with browser(app, "127.0.0.1") as (client, token):
        response = sign_in(client, token, "vera", "guess", **{"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 401
    assert _failure_clients(db) == ["127.0.0.1"]


def test_forwarded_address_is_believed_from_a_listed_proxy(app_with: AppWith, db: Session) -> None:
    app = app_with(forwarded_allow_ips="127.0.0.1")
    with browser(app, "127.0.0.1") as (client, token):
        sign_in(client, token, "vera", "guess", **{"X-Forwarded-For": "203.0.113.9"})
    with browser(app, "10.1.2.3") as (client, token):
        sign_in(client, token, "vera", "guess", **{"X-Forwarded-For": "203.0.113.10"})
    # The unlisted caller's header is ignored.
    assert sorted(_failure_clients(db)) == ["10.1.2.3", "203.0.113.9"]


def test_forwarded_proto_from_a_listed_network_makes_cookies_secure(
    app_with: AppWith, db: Session
) -> None:
    app = app_with(forwarded_allow_ips="10.0.0.0/8")
    make_user(db, "viewer", "vera")
    with browser(app, "10.9.8.7") as (client, token):
        response = sign_in(client, token, "vera", TEST_PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_any_proxy_is_believed_with_a_star(app_with: AppWith, db: Session) -> None:
    app = app_with(forwarded_allow_ips="*")
    with browser(app, "198.51.100.200") as (client, token):
        sign_in(client, token, "vera", "guess", **{"X-Forwarded-For": "203.0.113.9"})
    assert _failure_clients(db) == ["203.0.113.9"]


@pytest.mark.parametrize("value", ["proxy.example", "10.0.0.1,*", "300.1.1.1"])
def test_a_proxy_list_that_is_not_addresses_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_FORWARDED_ALLOW_IPS", value)
    clear_caches()
    with pytest.raises(SettingsError, match="DUTYDESK_FORWARDED_ALLOW_IPS"):
        get_settings()


@pytest.mark.timeout(120)
def test_the_web_process_by_default_counts_a_loopback_sign_in_under_loopback(
    processes: Processes, home: Path
) -> None:
    # uvicorn itself would believe 127.0.0.1; the desk's own default believes nobody.
    env = desk_env(home, DUTYDESK_LOG_LEVEL="WARNING")
    # `dutydesk db upgrade` in this process (the autouse DUTYDESK_HOME is `home`): quicker.
    upgraded = CliRunner().invoke(cli_app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    port = free_port()
    processes.start("web", ["web", "--port", str(port)], env)
    base_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(base_url), 60, "GET /health to answer 200")

    with httpx.Client(base_url=base_url) as client:
        form = client.get("/login").text
        match = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert match
        data = {"username": "vera", "password": "guess", "csrf_token": match.group(1)}
        answer = client.post("/login", data=data, headers={"X-Forwarded-For": "203.0.113.9"})
    assert answer.status_code == 401

    with sqlite3.connect(home / "dutydesk.sqlite") as connection:
        clients = [row[0] for row in connection.execute("SELECT client FROM login_failures")]
    assert clients == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("allowed", "recorded"),
    [("", "127.0.0.1"), ("127.0.0.1", "203.0.113.9")],
    ids=["default", "loopback-listed"],
)
def test_the_intake_inbox_records_a_forwarded_address_only_from_a_listed_proxy(
    allowed: str, recorded: str, app_with: AppWith, db: Session
) -> None:
    app = app_with(forwarded_allow_ips=allowed)
    made = make_integration(db, "generic")
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        answer = client.post(
            made.path or "", json={"title": "Disk full"}, headers={"X-Forwarded-For": "203.0.113.9"}
        )
    assert answer.status_code == 202, answer.text
    db.expire_all()
    item = db.scalar(select(InboxItem).order_by(InboxItem.id.desc()).limit(1))
    assert item is not None and item.client == recorded
