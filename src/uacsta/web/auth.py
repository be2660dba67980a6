"""Who may use the HTTP side: admin and web-client users (argon2 password hashes), API tokens
(stored as SHA-256 of 256-bit random tokens), signed session cookies and CSRF tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request

from uacsta.store.db import Store

log = logging.getLogger("uacsta.web.auth")

_hasher = PasswordHasher()
ADMIN = "admin"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an admin (session or API token) or a web-client user."""

    name: str
    role: str
    extension: str | None = None
    via: str = "session"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Auth:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- users ----------------------------------------------------------------------------
    def ensure_admin(self) -> str | None:
        """Create the admin on first start; returns the generated password (shown once)."""
        if self.store.get_user(ADMIN) is not None:
            return None
        password = secrets.token_urlsafe(12)
        self.store.set_user(ADMIN, hash_password(password), "admin", None)
        return password

    def set_password(
        self, name: str, password: str, *, role: str = "admin", extension: str | None = None
    ) -> None:
        self.store.set_user(name, hash_password(password), role, extension)

    def login(self, name: str, password: str) -> Principal | None:
        user = self.store.get_user(name)
        if user is None:
            _hasher.hash(password)  # same cost whether the user exists or not
            return None
        if not verify_password(user["password_hash"], password):
            return None
        return Principal(user["name"], user["role"], user.get("extension"))

    # --- API tokens ----------------------------------------------------------------------
    def create_token(self, name: str) -> tuple[str, str]:
        """A new API token; returns (id, token). Only the hash is stored."""
        token = "uac_" + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(4)
        self.store.add_token(token_id, name, token_hash(token))
        return token_id, token

    def check_token(self, token: str) -> Principal | None:
        row = self.store.find_token(token_hash(token))
        if row is None:
            return None
        return Principal(f"token:{row['name']}", "admin", via="token")

    # --- request helpers -----------------------------------------------------------------
    def principal(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.check_token(header[7:].strip())
        session: dict[str, Any] = request.session
        name = session.get("user")
        if not name:
            return None
        user = self.store.get_user(name)
        if user is None:
            return None
        return Principal(user["name"], user["role"], user.get("extension"))


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page")
