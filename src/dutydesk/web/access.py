"""The one dependency that decides who may call each route.

Every route declares an `Access(need)`; `create_app` refuses to start if one does not. The
role and scope grants below are the role matrix, in one place.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from dutydesk.db import is_sqlite, transaction
from dutydesk.people.models import ApiToken, Role, Scope, User
from dutydesk.people.service import token_for_secret, user_for_session
from dutydesk.web.csrf import CSRF_FIELD, CSRF_HEADER, csrf_token_for
from dutydesk.web.words import UTC_NAME, show_in

SESSION_COOKIE = "dutydesk_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Need(enum.StrEnum):
    """What a route asks of its caller."""

    public = "public"  # anyone, signed in or not (login page, health, static files)
    view = "view"  # read what the desk shows
    operate = "operate"  # change operational things: tickets, jobs, exports
    approve = "approve"  # sign off change requests
    admin = "admin"  # people, tokens, settings
    intake = "intake"  # post signals in
    upload = "upload"  # add study records


ROLE_GRANTS: dict[Role, frozenset[Need]] = {
    Role.viewer: frozenset({Need.view}),
    Role.operator: frozenset({Need.view, Need.operate, Need.intake, Need.upload}),
    Role.approver: frozenset({Need.view, Need.operate, Need.intake, Need.upload, Need.approve}),
    Role.admin: frozenset(Need) - {Need.public},
}

SCOPE_GRANTS: dict[Scope, frozenset[Need]] = {
    Scope.read: frozenset({Need.view}),
    Scope.write: frozenset({Need.view, Need.operate, Need.approve}),
    Scope.intake: frozenset({Need.intake}),
    Scope.upload: frozenset({Need.upload}),
    Scope.admin: frozenset(Need) - {Need.public},
}


def token_grants(token: ApiToken) -> frozenset[Need]:
    """What a token may do: its scopes, narrowed by its user's role when it has a user.

    A token without a user never approves: a sign-off needs a person.
    """
    grants: frozenset[Need] = frozenset().union(*(SCOPE_GRANTS[Scope(s)] for s in token.scopes))
    if token.user is None:
        return grants - {Need.approve}
    return grants & ROLE_GRANTS[token.user.role_enum]


@dataclass(frozen=True)
class Person:
    """The signed-in user as the request knows them (a copy: it outlives the database session)."""

    id: int
    username: str
    role: str
    time_zone: str = "UTC"

    @classmethod
    def of(cls, user: User) -> Person:
        """A copy of the user's identity."""
        return cls(id=user.id, username=user.username, role=user.role, time_zone=user.time_zone)

    @property
    def role_enum(self) -> Role:
        """The role as an enum."""
        return Role(self.role)


@dataclass(frozen=True)
class TokenInfo:
    """The calling API token (a copy, without its hash)."""

    id: int
    name: str
    scopes: tuple[str, ...]
    user: Person | None


@dataclass
class Principal:
    """Who is calling: a signed-in user, a token, or nobody."""

    user: Person | None = None
    token: TokenInfo | None = None
    grants: frozenset[Need] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        """How the audit log names this caller."""
        if self.token is not None:
            owner = f"{self.token.user.username} " if self.token.user else ""
            return f"{owner}(token {self.token.name})".strip()
        return self.user.username if self.user else "anonymous"

    def may(self, need: Need) -> bool:
        """Whether this caller may do what `need` names."""
        return need is Need.public or need in self.grants


class LoginRequired(Exception):
    """A page was asked for without a session; answered by a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


# Writing requests one process lets into its thread pool at once (SQLite: one, it has one
# write lock). Waiting for a database lock holds a pool thread; if every thread waited, the
# request holding the lock could get none to finish and commit, and all would hang.
WRITERS_PER_PROCESS = 8


def _writes(request: Request) -> bool:
    """Whether the request may write (an unsafe method, or a token call noting its use)."""
    return request.method in UNSAFE_METHODS or bearer_secret(request) is not None


def writer_limiter(request: Request) -> anyio.Semaphore:
    """The process's queue of writing requests (made on first use)."""
    state = request.app.state
    limiter = getattr(state, "writer_limiter", None)
    if limiter is None:
        sqlite = is_sqlite(state.session_factory.kw["bind"])
        limiter = state.writer_limiter = anyio.Semaphore(1 if sqlite else WRITERS_PER_PROCESS)
    return limiter


async def writer_turn(request: Request) -> AsyncIterator[None]:
    """Queue a writing request in the event loop, not in a pool thread, until it may start."""
    if not _writes(request):
        yield
        return
    async with writer_limiter(request):
        yield


def get_db(
    request: Request, _turn: Annotated[None, Depends(writer_turn, scope="function")]
) -> Iterator[Session]:
    """The request's database session; committed when the handler returns without error.

    A request that may write starts with SQLite's write lock: a transaction that read first
    could otherwise not write once a worker has committed meanwhile ("database is locked").
    """
    factory = request.app.state.session_factory
    with transaction(factory, immediate=_writes(request), actor="anonymous") as db:
        yield db


Db = Annotated[Session, Depends(get_db, scope="function")]


def bearer_secret(request: Request) -> str | None:
    """The token from `Authorization: Bearer ...`, if the header is there."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None


def identify(request: Request, db: Session) -> Principal:
    """Find the caller from a bearer token or the session cookie."""
    secret = bearer_secret(request)
    if secret is not None:
        token = token_for_secret(db, secret)
        if token is None:
            raise HTTPException(
                401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
        owner = Person.of(token.user) if token.user else None
        info = TokenInfo(id=token.id, name=token.name, scopes=tuple(token.scopes), user=owner)
        return Principal(user=owner, token=info, grants=token_grants(token))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        user = user_for_session(db, cookie)
        if user is not None:
            return Principal(user=Person.of(user), grants=ROLE_GRANTS[user.role_enum])
    return Principal()


def identify_quietly(request: Request) -> Principal:
    """The caller for an error page: anonymous when the credentials do not check out."""
    with request.app.state.session_factory() as session:
        try:
            return identify(request, session)
        except HTTPException:
            return Principal()


async def check_csrf(request: Request) -> None:
    """Refuse a cookie-authenticated unsafe request without the form's CSRF token."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = csrf_token_for(request)
    if not sent or expected is None or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "missing or invalid CSRF token; reload the page and try again")


class Access:
    """Route dependency: identifies the caller and refuses them unless they have `need`."""

    def __init__(self, need: Need, *, page: bool = False) -> None:
        self.need = need
        self.page = page

    def __repr__(self) -> str:
        return f"Access({self.need.value}, page={self.page})"

    async def __call__(self, request: Request, db: Db) -> Principal:
        principal = identify(request, db)
        if (
            principal.token is None
            and request.method in UNSAFE_METHODS
            and (principal.user is not None or self.need is Need.public)
        ):
            await check_csrf(request)
        db.info["actor"] = principal.name
        request.state.principal = principal
        # Moments typed into this request's forms are read in the caller's zone.
        show_in(principal.user.time_zone if principal.user else UTC_NAME)
        if principal.may(self.need):
            return principal
        if principal.user is None and principal.token is None:
            if self.page:
                raise LoginRequired(request.url.path)
            raise HTTPException(
                401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"}
            )
        raise HTTPException(403, f"this needs the {self.need.value!r} permission")


def allow(need: Need, *, page: bool = False) -> Access:
    """The access declaration of a route: `dependencies=[Depends(allow(Need.view))]`."""
    return Access(need, page=page)


# Typed shorthands routes use to declare their access and receive the caller.
class TokenInUrl(Access):
    """Access of routes whose URL carries a secret token (intake hooks, calendar feeds): open
    to anyone, no sign-in and no CSRF token; the endpoint itself checks the token (401 when it
    names nothing)."""

    def __init__(self) -> None:
        super().__init__(Need.public)

    def __repr__(self) -> str:
        return "TokenInUrl()"

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = Principal()
        request.state.principal = principal
        return principal


Anyone = Annotated[Principal, Depends(Access(Need.public))]
AnyonePage = Annotated[Principal, Depends(Access(Need.public, page=True))]
Viewer = Annotated[Principal, Depends(Access(Need.view))]
ViewerPage = Annotated[Principal, Depends(Access(Need.view, page=True))]
Operator = Annotated[Principal, Depends(Access(Need.operate))]
OperatorPage = Annotated[Principal, Depends(Access(Need.operate, page=True))]
Approver = Annotated[Principal, Depends(Access(Need.approve))]
ApproverPage = Annotated[Principal, Depends(Access(Need.approve, page=True))]
Admin = Annotated[Principal, Depends(Access(Need.admin))]
AdminPage = Annotated[Principal, Depends(Access(Need.admin, page=True))]
Intake = Annotated[Principal, Depends(Access(Need.intake))]
Upload = Annotated[Principal, Depends(Access(Need.upload))]
