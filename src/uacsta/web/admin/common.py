"""What every admin page shares: the guard (an admin's session), forms with their CSRF
token, flashes, rendering with the page headers, and the mapping of operation errors."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from uacsta.operations import OperationError, Operations
from uacsta.store.db import PhoneRecord
from uacsta.web import logbuffer
from uacsta.web.auth import Auth, Principal, check_csrf, csrf_token

log = logging.getLogger("uacsta.web.admin")

MIN_PASSWORD = 8


class Redirect(HTTPException):
    def __init__(self, location: str) -> None:
        super().__init__(status_code=303, detail="see " + location, headers={"Location": location})


def ops(request: Request) -> Operations:
    found: Operations = request.app.state.ops
    # Records from before the first admin request are only captured if the server installed
    # the capture at start-up; this keeps the pages working when it did not.
    if logbuffer.installed_for(found.parts) is None:
        logbuffer.install(found.parts)
    return found


def auth(request: Request) -> Auth:
    found: Auth = request.app.state.auth
    return found


def require_admin(request: Request) -> Principal:
    principal = auth(request).principal(request)
    if principal is None or not principal.is_admin or principal.via != "session":
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise Redirect("/admin/login?next=" + quote(target, safe=""))
    return principal


def phone(operations: Operations, mac: str) -> PhoneRecord:
    """The phone a page's URL names, else 404."""
    try:
        return operations.phone(mac)
    except OperationError as exc:
        raise HTTPException(status_code=404, detail=f"no phone {mac} in the inventory") from exc


async def form_of(request: Request) -> FormData:
    form = await request.form()
    submitted = form.get("csrf")
    check_csrf(request, submitted if isinstance(submitted, str) else None)
    return form


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def raw(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def flag(form: FormData, name: str) -> bool:
    return text(form, name).lower() in ("1", "on", "true", "yes")


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], [kind, message]][-5:]


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    principal: Principal | None = None,
) -> HTMLResponse:
    flashes = request.session.pop("flash", [])
    ctx = {
        "principal": principal,
        "csrf": csrf_token(request),
        "flashes": flashes,
        "nav": context.get("nav", ""),
        **context,
    }
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, name, ctx, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def when(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def safe_next(target: str) -> str:
    if target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin/"
