"""The web client for phone users (``/client/``): their line, calls, DND and forwarding.

Like the 3CX web client of the uaCSTA guides: log in with extension and password, see the
line's status, set DND and call forwarding, make calls and work them (answer, hang up, hold,
retrieve, transfer, conference). The page is plain JavaScript over the JSON API
(``/api/v1``) and its event WebSocket; the session cookie authenticates both, and the API
keeps a user to the devices of their extension.

Users are created by the admin with role ``user`` and an ``extension``. Logins go through
the web's one :class:`uacsta.web.auth.LoginGuard` (``http.client_login_*`` settings): failures
logged rate-limited and throttled per address and extension, per address, per extension for
addresses it never logged in from; a blocked login answers 429.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from uacsta.web.auth import (
    LoginGuard,
    Principal,
    blocked_message,
    check_csrf,
    client_address,
    csrf_token,
    login_guard,
)

if TYPE_CHECKING:
    from uacsta.web.auth import Auth

log = logging.getLogger("uacsta.web.webclient")

router = APIRouter(prefix="/client", include_in_schema=False)

_MAX_FIELD = 128


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def client_user(request: Request) -> Principal | None:
    """The logged-in web-client user (role ``user`` with an extension), else None."""
    principal = _auth(request).principal(request)
    if principal is None or principal.role != "user" or not principal.extension:
        return None
    return principal


def _guard(request: Request) -> LoginGuard:
    return login_guard(request, "client", "web client login", log)


def _find_user(auth: Auth, extension: str) -> str | None:
    """The user name for an extension: a user named like it, else the one user that has it."""
    store = auth.store
    user = store.get_user(extension)
    if user is not None and user.get("role") == "user":
        return str(user["name"])
    matches = [
        u["name"]
        for u in store.list_users()
        if u.get("role") == "user" and (u.get("extension") or "") == extension
    ]
    return str(matches[0]) if len(matches) == 1 else None


def _login_page(
    request: Request, *, error: str | None = None, extension: str = "", status: int = 200
) -> HTMLResponse:
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "client_login.html",
        {"csrf": csrf_token(request), "error": error, "extension": extension},
        status_code=status,
    )
    return response


@router.get("")
async def client_root() -> RedirectResponse:
    return RedirectResponse("/client/", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    if client_user(request) is not None:
        return RedirectResponse("/client/", status_code=303)
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or "") or None)
    extension = str(form.get("extension") or "").strip()[:_MAX_FIELD]
    password = str(form.get("password") or "")[:_MAX_FIELD]
    source = client_address(request)
    guard = _guard(request)
    wait = guard.blocked(source, extension)
    if wait > 0:
        return _login_page(request, error=blocked_message(wait), extension=extension, status=429)
    auth = _auth(request)
    principal = None
    if extension and password:

        def attempt() -> Principal | None:
            name = _find_user(auth, extension)
            if name is None:
                auth.login("\x00no such user", password)  # same cost as a wrong password
                return None
            return auth.login(name, password)

        principal = await guard.attempt(source, extension, attempt)
    if principal is None or principal.role != "user" or not principal.extension:
        guard.failed(source, extension)
        return _login_page(
            request, error="Wrong extension or password.", extension=extension, status=401
        )
    guard.succeeded(source, extension)
    # A fresh server-side session (and CSRF token) per login.
    await asyncio.to_thread(auth.start_session, request, principal)
    log.info(
        "web client user %r (extension %s) logged in from %s",
        principal.name,
        principal.extension,
        source,
    )
    return RedirectResponse("/client/", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or "") or None)
    await asyncio.to_thread(_auth(request).end_session, request)  # revoked on the server
    return RedirectResponse("/client/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
async def client_page(request: Request) -> Response:
    principal = client_user(request)
    if principal is None:
        return RedirectResponse("/client/login", status_code=303)
    context: dict[str, Any] = {
        "csrf": csrf_token(request),
        "user": principal.name,
        "extension": principal.extension,
    }
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "client.html", context
    )
    response.headers["Cache-Control"] = "no-store"
    return response
