"""CSRF protection by signed double submit: a random cookie and a form token derived from it.

The token is an HMAC of the cookie under the desk's secret key, so a page on another site can
neither read the cookie nor forge the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

CSRF_COOKIE = "dutydesk_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def _sign(key: str, nonce: str) -> str:
    return hmac.new(key.encode(), f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh random value for the CSRF cookie."""
    return secrets.token_urlsafe(24)


def csrf_token_for(request: Request) -> str | None:
    """The token a form must send, for the cookie this request carried (None without one)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    return _sign(request.app.state.secret_key, nonce) if nonce else None


def form_token(request: Request) -> str:
    """The token to put in a page's forms (for the cookie being set, if it is new)."""
    nonce = getattr(request.state, "csrf_nonce", None) or request.cookies.get(CSRF_COOKIE)
    if not nonce:
        nonce = new_nonce()
        request.state.csrf_nonce = nonce
    return _sign(request.app.state.secret_key, nonce)
