"""The web client for phone users (``/client/``): their line, calls, DND and forwarding.

Like the 3CX web client of the uaCSTA guides: log in with extension and password, see the
line's status, set DND and call forwarding, make calls and work them (answer, hang up, hold,
retrieve, transfer, conference). The page is plain JavaScript over the JSON API
(``/api/v1``) and its event WebSocket; the session cookie authenticates both, and the API
keeps a user to the devices of their extension.

Users are created by the admin with role ``user`` and an ``extension``. Failed logins are
logged and limited per source address and per extension: after ``LOGIN_MAX_FAILURES``
failures within ``LOGIN_WINDOW`` seconds the login answers 429.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from uacsta.web.auth import Principal, check_csrf, csrf_token

if TYPE_CHECKING:
    from uacsta.web.auth import Auth

log = logging.getLogger("uacsta.web.webclient")

router = APIRouter(prefix="/client", include_in_schema=False)

LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW = 300.0
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


def _source(request: Request) -> str:
    return request.client.host if request.client else "?"


def _failures(request: Request, key: str) -> deque[float]:
    table: dict[str, deque[float]] | None = getattr(
        request.app.state, "client_login_failures", None
    )
    if table is None:
        table = {}
        request.app.state.client_login_failures = table
    entries = table.setdefault(key, deque())
    cutoff = time.monotonic() - LOGIN_WINDOW
    while entries and entries[0] < cutoff:
        entries.popleft()
    if not entries and len(table) > 10_000:  # bounded: forget idle keys under a flood
        table.clear()
        entries = table.setdefault(key, deque())
    return entries


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
    source = _source(request)
    by_source = _failures(request, f"ip:{source}")
    by_extension = _failures(request, f"ext:{extension}")
    if len(by_source) >= LOGIN_MAX_FAILURES or len(by_extension) >= LOGIN_MAX_FAILURES:
        log.warning("web client login for %r from %s refused: too many failures", extension, source)
        oldest = min(e[0] for e in (by_source, by_extension) if e)
        wait = int(LOGIN_WINDOW - (time.monotonic() - oldest))
        return _login_page(
            request,
            error=f"Too many failed logins. Try again in {max(wait, 1)} seconds.",
            extension=extension,
            status=429,
        )
    auth = _auth(request)
    principal = None
    if extension and password:

        def attempt() -> Principal | None:
            name = _find_user(auth, extension)
            if name is None:
                auth.login("\x00no such user", password)  # same cost as a wrong password
                return None
            return auth.login(name, password)

        principal = await asyncio.to_thread(attempt)
    if principal is None or principal.role != "user" or not principal.extension:
        now = time.monotonic()
        by_source.append(now)
        by_extension.append(now)
        log.warning(
            "web client login failed for extension %r from %s (%d of %d)",
            extension,
            source,
            len(by_source),
            LOGIN_MAX_FAILURES,
        )
        return _login_page(
            request, error="Wrong extension or password.", extension=extension, status=401
        )
    by_source.clear()
    by_extension.clear()
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
