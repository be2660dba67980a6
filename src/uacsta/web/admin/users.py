"""Web-client users, the admin's own password, and API tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from uacsta.store.db import Store
from uacsta.web.admin.common import (
    MIN_PASSWORD,
    auth,
    flash,
    form_of,
    log,
    ops,
    raw,
    render,
    require_admin,
    text,
    when,
)
from uacsta.web.auth import SCOPES, Principal, client_address, parse_expiry

router = APIRouter()


def _store(request: Request) -> Store:
    store = ops(request).parts.store
    assert store is not None
    return store


async def _users_render(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    store = _store(request)
    users = await asyncio.to_thread(store.list_users)
    return render(
        request,
        "admin_users.html",
        {
            "nav": "users",
            "users": [
                {**u, "created": when(u.get("created"))} for u in users if u["role"] == "user"
            ],
            "admins": [u for u in users if u["role"] == "admin"],
            "error": error,
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    return await _users_render(request, principal)


@router.post("/users", response_class=HTMLResponse)
async def user_save(request: Request) -> Response:
    principal = require_admin(request)
    form = await form_of(request)
    store = _store(request)
    extension = text(form, "extension")
    password = raw(form, "password")
    error = None
    if not extension or len(extension) > 64 or any(c.isspace() for c in extension):
        error = "The extension must be a number or name without spaces (at most 64 characters)."
    elif len(password) < MIN_PASSWORD:
        error = f"The password needs at least {MIN_PASSWORD} characters."
    else:
        existing = await asyncio.to_thread(store.get_user, extension)
        if existing is not None and existing["role"] != "user":
            error = f"{extension!r} is an admin account."
    if error is not None:
        return await _users_render(request, principal, error=error, status_code=422)
    await asyncio.to_thread(
        auth(request).set_password, extension, password, role="user", extension=extension
    )
    log.info("web-client user %r set by %s", extension, principal.name)
    flash(request, f"Web-client user {extension} saved.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{name}/delete")
async def user_delete(request: Request, name: str) -> RedirectResponse:
    principal = require_admin(request)
    await form_of(request)
    store = _store(request)
    user = await asyncio.to_thread(store.get_user, name)
    if user is None or user["role"] != "user":
        raise HTTPException(status_code=404, detail=f"no web-client user {name!r}")
    await asyncio.to_thread(store.delete_user, name)
    log.info("web-client user %r deleted by %s", name, principal.name)
    flash(request, f"Web-client user {name} deleted.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/password", response_class=HTMLResponse)
async def admin_password(request: Request) -> Response:
    principal = require_admin(request)
    form = await form_of(request)
    guard = auth(request)
    current = raw(form, "current")
    new = raw(form, "new")
    error = None
    if await asyncio.to_thread(guard.login, principal.name, current) is None:
        error = "The current password is wrong."
    elif len(new) < MIN_PASSWORD:
        error = f"The new password needs at least {MIN_PASSWORD} characters."
    elif new != raw(form, "confirm"):
        error = "The new passwords do not match."
    if error is not None:
        return await _users_render(request, principal, error=error, status_code=422)
    await asyncio.to_thread(guard.set_password, principal.name, new, role="admin")
    # Every session of this admin ended with the old password; this browser starts anew.
    await asyncio.to_thread(guard.start_session, request, principal)
    log.info("admin password of %r changed from %s", principal.name, client_address(request))
    flash(request, "Your admin password was changed.")
    return RedirectResponse("/admin/users", status_code=303)


async def _tokens_render(
    request: Request,
    principal: Principal,
    *,
    new_token: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    store = _store(request)
    tokens = await asyncio.to_thread(store.list_tokens)
    return render(
        request,
        "admin_tokens.html",
        {
            "nav": "tokens",
            "tokens": [
                {
                    **t,
                    "created": when(t.get("created")),
                    "scopes": " ".join(t["scopes"] if t["scopes"] is not None else SCOPES),
                    "expires": when(t.get("expires")) or "never",
                    "expired": bool(t.get("expires"))
                    and t["expires"] <= datetime.now(UTC).isoformat(timespec="seconds"),
                }
                for t in tokens
            ],
            "scopes": SCOPES,
            "new_token": new_token,
            "error": error,
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/tokens", response_class=HTMLResponse)
async def tokens_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    return await _tokens_render(request, principal)


@router.post("/tokens", response_class=HTMLResponse)
async def token_create(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    form = await form_of(request)
    name = text(form, "name")
    scopes = {v for v in form.getlist("scopes") if isinstance(v, str)}
    expires_text = text(form, "expires")
    error = None
    expires = None
    if not name or len(name) > 128:
        error = "Give the token a name (at most 128 characters)."
    elif not scopes or not scopes <= set(SCOPES):
        error = f"Choose the token's scopes among {', '.join(SCOPES)}."
    elif expires_text:
        try:
            expires = parse_expiry(expires_text)
        except ValueError:
            error = "The expiry must be a date (YYYY-MM-DD) or empty for a token that never ends."
        else:
            if expires <= datetime.now(UTC):
                error = "The expiry must lie in the future."
    if error is not None:
        return await _tokens_render(request, principal, error=error, status_code=422)
    token_id, token = await asyncio.to_thread(
        auth(request).create_token, name, scopes=scopes, expires=expires
    )
    log.info(
        "API token %s (%r, scopes %s, expires %s) created by %s",
        token_id,
        name,
        " ".join(sorted(scopes)),
        expires.isoformat() if expires else "never",
        principal.name,
    )
    # Shown in this response only; only its hash is stored.
    return await _tokens_render(
        request,
        principal,
        new_token={
            "id": token_id,
            "name": name,
            "token": token,
            "scopes": " ".join(s for s in SCOPES if s in scopes),
            "expires": when(expires.isoformat()) if expires else "never",
        },
    )


@router.post("/tokens/{token_id}/delete")
async def token_delete(request: Request, token_id: str) -> RedirectResponse:
    principal = require_admin(request)
    await form_of(request)
    store = _store(request)
    if not await asyncio.to_thread(store.delete_token, token_id):
        raise HTTPException(status_code=404, detail=f"no API token {token_id!r}")
    log.info("API token %s deleted by %s", token_id, principal.name)
    flash(request, f"API token {token_id} deleted.")
    return RedirectResponse("/admin/tokens", status_code=303)
