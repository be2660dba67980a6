"""The admin login and logout.

Only admins log in here: any other account answers exactly like a wrong password (issue 15
item 10). Logins go through the web's one :class:`uacsta.web.auth.LoginGuard`
(``http.admin_login_*``): failures logged rate-limited with the source address and throttled
per address and user name, per address, per user name for addresses it never logged in from;
a blocked login answers 429.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from uacsta.web.admin.common import auth, form_of, log, raw, render, safe_next, text
from uacsta.web.auth import LoginGuard, blocked_message, client_address, login_guard

router = APIRouter()


def _guard(request: Request) -> LoginGuard:
    return login_guard(request, "admin", "admin login", log)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/admin/") -> HTMLResponse:
    principal = auth(request).principal(request)
    return render(
        request,
        "login.html",
        {"next": safe_next(next), "error": None, "name": "admin", "current": principal},
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    source = client_address(request)
    form = await form_of(request)
    name = text(form, "name")[:128]
    password = raw(form, "password")[:1024]
    target = safe_next(text(form, "next", "/admin/"))
    guard = _guard(request)
    wait = guard.blocked(source, name)
    if wait > 0:
        return render(
            request,
            "login.html",
            {"next": target, "error": blocked_message(wait), "name": name},
            status_code=429,
        )
    principal = await guard.attempt(source, name, lambda: auth(request).login(name, password))
    if principal is None or not principal.is_admin:
        # Any other account (a web-client user) answers exactly like a wrong password: the
        # admin login must not confirm a password that is right for the web client.
        guard.failed(source, name)
        return render(
            request,
            "login.html",
            {"next": target, "error": "Wrong user name or password.", "name": name},
            status_code=401,
        )
    guard.succeeded(source, name)
    await asyncio.to_thread(auth(request).start_session, request, principal)
    log.info("admin %r logged in from %s", principal.name, source)
    return RedirectResponse(target, status_code=303)


@router.get("/logout")
async def logout_get(request: Request) -> RedirectResponse:
    await asyncio.to_thread(auth(request).end_session, request)
    return RedirectResponse("/admin/login", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    await form_of(request)
    await asyncio.to_thread(auth(request).end_session, request)
    return RedirectResponse("/admin/login", status_code=303)
