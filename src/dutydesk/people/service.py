"""Users, passwords, console sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from dutydesk.db import utcnow
from dutydesk.people.models import ApiToken, LoginFailure, Role, Scope, User, WebSession
from dutydesk.web.words import is_time_zone

_hasher = PasswordHasher()
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
TOKEN_PREFIX = "ddt_"  # noqa: S105 - a public marker, not a secret
# Checked against when a username is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class PeopleError(ValueError):
    """A request about users or tokens that cannot be done; the message says why."""


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def generate_password() -> str:
    """A random password people can type."""
    return secrets.token_urlsafe(15)


def sha256(secret: str) -> str:
    """Hex SHA-256 of a high-entropy secret (session and API tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_role(value: str) -> Role:
    """The role named `value`, or an error listing the roles."""
    try:
        return Role(value)
    except ValueError:
        raise PeopleError(
            f"unknown role {value!r}; choose one of {', '.join(r.value for r in Role)}"
        ) from None


def parse_scopes(values: list[str]) -> list[str]:
    """Validated, de-duplicated scope names (comma-separated values allowed)."""
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        raise PeopleError(f"give at least one scope: {', '.join(s.value for s in Scope)}")
    unknown = [name for name in names if name not in Scope.__members__]
    if unknown:
        raise PeopleError(
            f"unknown scope {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(s.value for s in Scope)}"
        )
    return sorted(set(names), key=[s.value for s in Scope].index)


def parse_time_zone(value: str) -> str:
    """The IANA time zone named `value` (`Europe/Berlin`, `UTC`), or an error naming the field."""
    name = value.strip()
    if not is_time_zone(name):
        raise PeopleError(
            f"time_zone {value[:64]!r} is not a time zone this desk knows; "
            "give an IANA name such as Europe/Berlin, America/New_York or UTC"
        )
    return name


def set_time_zone(user: User, value: str) -> User:
    """Show (and read) the console's moments for `user` in the time zone named `value`."""
    user.time_zone = parse_time_zone(value)
    return user


def find_user(session: Session, username: str) -> User | None:
    """The user with this username, if any."""
    return session.scalar(select(User).where(User.username == username))


def active_user(session: Session, username: str) -> User:
    """The active user named `username`, or an error naming them."""
    user = find_user(session, username.strip())
    if user is None or not user.active:
        raise PeopleError(f"no active user named {username!r}")
    return user


def add_user(
    session: Session,
    username: str,
    role: str,
    *,
    email: str | None,
    password: str,
    time_zone: str = "UTC",
) -> User:
    """Create a user; the username must be new and well-formed, the time zone an IANA name."""
    if not USERNAME_PATTERN.match(username):
        raise PeopleError(
            "username must be 2-64 characters of lower-case letters, digits, '.', '_' or '-'"
        )
    if len(password) < 8:
        raise PeopleError("password must be at least 8 characters")
    if email is not None and "@" not in email:
        raise PeopleError(f"e-mail address {email!r} has no '@'")
    if find_user(session, username):
        raise PeopleError(f"user {username!r} already exists")
    user = User(
        username=username,
        role=parse_role(role).value,
        email=email,
        password_hash=hash_password(password),
        time_zone=parse_time_zone(time_zone),
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user whose password matches, else None (in constant-ish time)."""
    user = find_user(session, username)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# Longest user name and client address a failed sign-in is kept under (the columns' size).
_KEY_LENGTH = 64


@dataclass(frozen=True)
class SignInLimits:
    """How many failed sign-ins in a minute are allowed before further tries are refused."""

    per_address_and_name: int
    per_name: int
    per_address: int = 0  # 0: the address as a whole is not limited


def sign_in_refusal(
    session: Session,
    client: str,
    username: str,
    limits: SignInLimits,
    *,
    now: dt.datetime | None = None,
) -> str | None:
    """Why a sign-in as `username` from `client` is refused for now, or None to try it.

    Failures of the last minute are counted for this name from this address, for this name
    from every address, and (when limited) from this address whatever the names; another
    user's failures from the same address do not count against this one.
    """
    since = (now or utcnow()) - dt.timedelta(minutes=1)
    client, name = client[:_KEY_LENGTH], _failure_name(username)

    def failures(*where: ColumnElement[bool]) -> int:
        count = session.scalar(select(func.count()).where(LoginFailure.at >= since, *where))
        return int(count or 0)

    by_client, by_name = LoginFailure.client == client, LoginFailure.username == name
    if failures(by_client, by_name) >= limits.per_address_and_name:
        return "Too many failed sign-ins for this user from your address; wait a minute."
    if failures(by_name) >= limits.per_name:
        return "Too many failed sign-ins for this user; wait a minute."
    if limits.per_address and failures(by_client) >= limits.per_address:
        return "Too many failed sign-ins from your address; wait a minute."
    return None


def record_failure(session: Session, client: str, username: str) -> None:
    """Remember a failed login and forget ones older than an hour."""
    session.add(LoginFailure(client=client[:_KEY_LENGTH], username=_failure_name(username)))
    session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - dt.timedelta(hours=1)))


def _failure_name(username: str) -> str:
    # As `authenticate` is asked: "Vera " and "vera" are one user to guess at.
    return username.strip().lower()[:_KEY_LENGTH]


def start_session(session: Session, user: User, *, hours: int, client: str | None) -> str:
    """Open a console session for `user`; returns the cookie secret (only its hash is kept)."""
    secret = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=sha256(secret),
            user_id=user.id,
            expires_at=utcnow() + dt.timedelta(hours=hours),
            client=client,
        )
    )
    session.execute(delete(WebSession).where(WebSession.expires_at < utcnow()))
    return secret


def user_for_session(session: Session, secret: str) -> User | None:
    """The active user of an unexpired console session."""
    found = session.scalar(
        select(WebSession).where(
            WebSession.token_hash == sha256(secret), WebSession.expires_at > utcnow()
        )
    )
    if found is None or not found.user.active:
        return None
    return found.user


def end_session(session: Session, secret: str) -> None:
    """Sign out: forget the console session."""
    session.execute(delete(WebSession).where(WebSession.token_hash == sha256(secret)))


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: the row and the secret, shown once."""

    token: ApiToken
    secret: str


def create_token(
    session: Session, name: str, scopes: list[str], *, username: str | None = None
) -> NewToken:
    """Make an API token; only its hash is stored."""
    if not name.strip():
        raise PeopleError("token name must not be empty")
    user = None
    if username:
        user = find_user(session, username)
        if user is None:
            raise PeopleError(f"no user named {username!r}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name.strip(),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=sha256(secret),
        scopes=parse_scopes(scopes),
        user_id=user.id if user else None,
    )
    session.add(token)
    session.flush()
    return NewToken(token=token, secret=secret)


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, newest first."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    """Revoke a token so it no longer authenticates."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise PeopleError(f"no token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def token_for_secret(session: Session, secret: str) -> ApiToken | None:
    """The live token with this secret, noting when it was last used."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(secret)))
    if token is None or token.revoked_at is not None:
        return None
    if token.user is not None and not token.user.active:
        return None
    now = utcnow()
    # Written at most once a minute so a busy token does not turn every read into a write.
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        token.last_used_at = now
    return token


def get_user(session: Session, user_id: int) -> User:
    """The user with this id, or an error naming it."""
    user = session.get(User, user_id)
    if user is None:
        raise PeopleError(f"no user with id {user_id}")
    return user


def update_user(
    session: Session, user: User, *, role: str, active: bool, time_zone: str | None = None
) -> User:
    """Change a user's role, whether they may sign in and (given) their time zone; the last
    admin stays an admin."""
    new_role = parse_role(role)
    zone = parse_time_zone(time_zone) if time_zone is not None else user.time_zone
    losing_admin = user.role == Role.admin.value and (new_role is not Role.admin or not active)
    if losing_admin:
        admins = session.scalar(
            select(func.count()).where(User.role == Role.admin.value, User.active.is_(True))
        )
        if int(admins or 0) <= 1:
            raise PeopleError("the desk needs at least one active admin")
    user.role = new_role.value
    user.active = active
    user.time_zone = zone
    if not active:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    return user
