"""Who may use the HTTP side: admin and web-client users (argon2 password hashes), API tokens
(stored as SHA-256 of 256-bit random tokens, with scopes and an optional expiry), server-side
web sessions behind the signed cookie, CSRF tokens.

A session cookie carries only a random session ID; the database keeps its SHA-256 with the
user and the expiry, so logout, a password change and a user's deletion end it on the server
(issue 15 item 12), not only in the browser that holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request

from uacsta.ratelog import RateLimitedLog
from uacsta.store.db import Store
from uacsta.throttle import AuthThrottle

log = logging.getLogger("uacsta.web.auth")

_hasher = PasswordHasher()
ADMIN = "admin"

#: What an API token may do: ``read`` (GET and event WebSockets on devices), ``control``
#: (calls, DND, forwarding: requests that change something on a phone), ``admin`` (phones,
#: status, tokens). Sessions of admins have all three, web-client users read and control.
SCOPES = ("read", "control", "admin")
ALL_SCOPES = frozenset(SCOPES)
USER_SCOPES = frozenset({"read", "control"})
#: Default lifetime of a web session and how many one user keeps (config: http.*).
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS_PER_USER = 20


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash(password: str) -> None:
    """The cost of a password check for a name that has no account (no timing oracle)."""
    _hasher.hash(password)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_expiry(text: str) -> datetime:
    """An expiry from an ISO 8601 date or date-time (UTC when no offset is given).

    A bare date means the token ends at the start of that day, UTC.
    """
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an admin (session or API token) or a web-client user."""

    name: str
    role: str
    extension: str | None = None
    via: str = "session"
    scopes: frozenset[str] = ALL_SCOPES

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class Refusal:
    """Credentials that were presented but do not hold (an expired API token): the reason."""

    reason: str


class Auth:
    def __init__(
        self,
        store: Store,
        *,
        session_lifetime: float = SESSION_LIFETIME,
        max_sessions_per_user: int = MAX_SESSIONS_PER_USER,
    ) -> None:
        self.store = store
        self.session_lifetime = session_lifetime
        self.max_sessions_per_user = max_sessions_per_user

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
        """Set (or reset) a password; every session of the user ends with the old one."""
        self.store.set_user(name, hash_password(password), role, extension)
        revoked = self.store.delete_user_sessions(name)
        if revoked:
            log.info("password of %r set: %d web session(s) ended", name, revoked)

    def login(self, name: str, password: str) -> Principal | None:
        user = self.store.get_user(name)
        if user is None:
            _dummy_hash(password)  # same cost whether the user exists or not
            return None
        if not verify_password(user["password_hash"], password):
            return None
        return _user_principal(user)

    # --- sessions ------------------------------------------------------------------------
    def open_session(self, name: str) -> str:
        """A new server-side session of user ``name``; returns its ID (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        expires = _iso(datetime.now(UTC) + timedelta(seconds=self.session_lifetime))
        self.store.add_session(
            token_hash(session_id), name, expires, keep=self.max_sessions_per_user
        )
        return session_id

    def start_session(self, request: Request, principal: Principal) -> None:
        """Log ``principal`` in on this browser: a fresh cookie session (new CSRF token)."""
        request.session.clear()
        request.session["sid"] = self.open_session(principal.name)

    def end_session(self, request: Request) -> None:
        """Logout: the session is revoked on the server, then the cookie is emptied."""
        session_id = request.session.get("sid")
        if isinstance(session_id, str) and session_id:
            self.store.delete_session(token_hash(session_id))
        request.session.clear()

    # --- API tokens ----------------------------------------------------------------------
    def create_token(
        self,
        name: str,
        *,
        scopes: Iterable[str] | None = None,
        expires: datetime | None = None,
    ) -> tuple[str, str]:
        """A new API token; returns (id, token). Only the hash is stored."""
        token = "uac_" + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(4)
        self.store.add_token(
            token_id,
            name,
            token_hash(token),
            scopes=sorted(set(scopes) if scopes is not None else ALL_SCOPES),
            expires=_iso(expires) if expires is not None else None,
        )
        return token_id, token

    def check_token(self, token: str) -> Principal | None:
        found = self.authenticate_token(token)
        return found if isinstance(found, Principal) else None

    def authenticate_token(self, token: str) -> Principal | Refusal | None:
        """The token's principal; a :class:`Refusal` saying why for an expired one."""
        row = self.store.find_token(token_hash(token))
        if row is None:
            return None
        if row.get("expires") and row["expires"] <= _iso(datetime.now(UTC)):
            return Refusal(f"API token {row['id']} ({row['name']}) expired at {row['expires']}")
        scopes = ALL_SCOPES if row.get("scopes") is None else frozenset(row["scopes"])
        return Principal(f"token:{row['name']}", "admin", via="token", scopes=scopes)

    # --- request helpers -----------------------------------------------------------------
    def authenticate(self, request: Request) -> Principal | Refusal | None:
        """The caller of a request: API token (Authorization: Bearer) or session cookie."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.authenticate_token(header[7:].strip())
        session: dict[str, Any] = request.session
        session_id = session.get("sid")
        if not isinstance(session_id, str) or not session_id:
            return None
        user = self.store.session_user(token_hash(session_id))
        if user is None:
            return None  # logged out, password changed, expired or user deleted
        return _user_principal(user)

    def principal(self, request: Request) -> Principal | None:
        found = self.authenticate(request)
        return found if isinstance(found, Principal) else None


def _user_principal(user: dict[str, Any]) -> Principal:
    scopes = ALL_SCOPES if user["role"] == "admin" else USER_SCOPES
    return Principal(user["name"], user["role"], user.get("extension"), scopes=scopes)


def client_address(request: Request) -> str:
    """The caller's address: the TCP peer, or what a configured proxy forwarded.

    uvicorn rewrites the peer from ``X-Forwarded-For`` only for ``http.trusted_proxies``
    (``forwarded_allow_ips``); nothing here reads forwarded headers itself.
    """
    return request.client.host if request.client else "unknown"


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


def blocked_message(wait: float) -> str:
    """What a blocked login form says: how long to wait, in seconds or minutes."""
    if wait < 60:
        amount, unit = max(1, int(wait + 0.5)), "second"
    else:
        amount, unit = int(wait + 59) // 60, "minute"
    return f"Too many failed logins. Try again in {amount} {unit}{'s' if amount != 1 else ''}."


class LoginGuard:
    """The throttle and the failure log of one web login form (admin, web client).

    Every web login goes through one of these: a blocked source/name pair is refused before
    its password is hashed, an attempt whose hash is still running counts as a failure for
    concurrent guesses (:meth:`AuthThrottle.begin`), failures and refusals are logged
    rate-limited with the source address (a stranger can trigger them), and repeated failures
    block per address and name, per address, and per name for addresses it never logged in
    from. The limits are read from the settings at each attempt, so admin changes apply at once.
    """

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.throttle = AuthThrottle()
        self.log = RateLimitedLog(logger)

    def configure(
        self,
        *,
        max_failures: int,
        block_time: float,
        max_source_failures: int,
        max_account_failures: int,
    ) -> LoginGuard:
        self.throttle.configure(
            max_failures=max_failures,
            block_time=block_time,
            max_source_failures=max_source_failures,
            max_account_failures=max_account_failures,
        )
        return self

    def blocked(self, source: str, name: str) -> float:
        """Seconds this attempt must wait (0: it may go on); a refusal is logged."""
        wait = self.throttle.blocked_for(source, name, time.monotonic())
        if wait > 0:
            self.log.warning(
                ("blocked", source),
                "%s for %r from %s refused: too many failures",
                self.what,
                name,
                source,
            )
        return wait

    async def attempt(
        self, source: str, name: str, check: Callable[[], Principal | None]
    ) -> Principal | None:
        """Run the password check (in a thread) as an attempt in flight."""
        self.throttle.begin(source, name)  # concurrent guesses wait for this one's outcome
        try:
            return await asyncio.to_thread(check)
        finally:
            self.throttle.end(source, name)

    def failed(self, source: str, name: str) -> None:
        blocked = self.throttle.failure(source, name, time.monotonic())
        self.log.warning(("failed", source), "%s failed for %r from %s", self.what, name, source)
        if blocked:
            self.log.warning(
                ("blocking", source),
                "blocking %s for %.0f s after repeated %s failures",
                self.throttle.describe_block(source, name),
                blocked,
                self.what,
            )

    def succeeded(self, source: str, name: str) -> None:
        self.throttle.success(source, name, time.monotonic())


def login_guard(request: Request, form: str, what: str, logger: logging.Logger) -> LoginGuard:
    """The application's guard for one login form (``admin``, ``client``), made at its first
    use (one per app, so each server counts its own) and set to the current
    ``http.<form>_login_*`` settings."""
    state = request.app.state
    guards: dict[str, LoginGuard] | None = getattr(state, "login_guards", None)
    if guards is None:
        guards = state.login_guards = {}
    guard = guards.get(form)
    if guard is None:
        guard = guards[form] = LoginGuard(what, logger)
    http = state.ops.settings.http
    return guard.configure(
        **{
            limit: getattr(http, f"{form}_login_{limit}")
            for limit in (
                "max_failures",
                "block_time",
                "max_source_failures",
                "max_account_failures",
            )
        }
    )
