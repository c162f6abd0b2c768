"""Target passwords encrypted at rest: Fernet with a key derived from the desk's secret key.

The key is HKDF-SHA256 of `DUTYDESK_SECRET_KEY` (or the generated `secret.key`) with an info
string of its own, so it is never the key that signs CSRF tokens. Changing the secret key makes
stored passwords unreadable: re-enter them (`dutydesk dbchange targets add --replace`).
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dutydesk.settings import get_settings

_INFO = b"dutydesk db change target credentials v1"


class CredentialsUnreadable(ValueError):
    """A stored password cannot be decrypted (the secret key changed since it was stored)."""


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _current() -> Fernet:
    return _fernet(get_settings().signing_key(allow_placeholder=True))


def encrypt_password(password: str) -> str:
    """The password encrypted for the ops database ("" stays "": no password)."""
    if not password:
        return ""
    return _current().encrypt(password.encode()).decode("ascii")


def decrypt_password(stored: str) -> str:
    """The password a target's stored column holds."""
    if not stored:
        return ""
    try:
        return _current().decrypt(stored.encode("ascii")).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "the stored password cannot be decrypted: the desk's secret key changed since it "
            "was stored; enter the target's passwords again"
        ) from None
