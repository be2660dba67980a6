"""The web admin (estos manual §3.2-3.9): phones, settings, status, diagnostics, users, tokens.

Server-rendered pages under ``/admin/``; every page needs a session of a user with role
"admin" (others are sent to the login page), every POST carries the session's CSRF token.
Failed logins are logged (rate-limited) with the source address and throttled by the shared
:class:`uacsta.throttle.AuthThrottle` (``http.admin_login_*``): per address and user name, per
address, per user name for addresses it never logged in from; attempts whose password hash is
still running count as failures meanwhile, and a blocked login answers 429. Only admins log in
here: any other account answers exactly like a wrong password (issue 15 item 10).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.datastructures import FormData

from uacsta.config import ConfigError
from uacsta.phones.inventory import STATES
from uacsta.phones.mac import format_mac, normalize_mac
from uacsta.ratelog import RateLimitedLog
from uacsta.throttle import AuthThrottle
from uacsta.web import logbuffer
from uacsta.web.auth import (
    SCOPES,
    Auth,
    Principal,
    check_csrf,
    client_address,
    csrf_token,
    parse_expiry,
)

if TYPE_CHECKING:
    from uacsta.server import Server
    from uacsta.store.db import PhoneRecord

log = logging.getLogger("uacsta.web.admin")

router = APIRouter(prefix="/admin", include_in_schema=False)

MIN_PASSWORD = 8
LOG_LINES = (100, 200, 500, 1000, 5000)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

#: What a change of these settings needs that update_settings does not do at runtime.
NEEDS_RESTART = ("clients.sip_listen", "clients.csta_listen", "http.listen")


# ---------------------------------------------------------------------------- helpers
class _Redirect(HTTPException):
    def __init__(self, location: str) -> None:
        super().__init__(status_code=303, detail="see " + location, headers={"Location": location})


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    # Records from before the first admin request are only captured if the server installed
    # the capture at start-up; this keeps the pages working when it did not.
    if logbuffer.installed_for(server) is None:
        logbuffer.install(server)
    return server


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def _client_ip(request: Request) -> str:
    return client_address(request)


def _require_admin(request: Request) -> Principal:
    principal = _auth(request).principal(request)
    if principal is None or not principal.is_admin or principal.via != "session":
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise _Redirect("/admin/login?next=" + quote(target, safe=""))
    return principal


async def _form(request: Request) -> FormData:
    form = await request.form()
    submitted = form.get("csrf")
    check_csrf(request, submitted if isinstance(submitted, str) else None)
    return form


def _text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def _raw(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], [kind, message]][-5:]


def _render(
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


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def _phone_row(record: PhoneRecord) -> dict[str, Any]:
    return {
        "mac": record.mac,
        "mac_display": format_mac(record.mac),
        "vendor": record.vendor,
        "model": record.model or "",
        "firmware": record.firmware or "",
        "type": " ".join(x for x in (record.vendor, record.model) if x),
        "identity": record.identity or "",
        "ip": record.ip or "",
        "address": (
            f"{record.ip}:{record.port}" if record.ip and record.port else (record.ip or "")
        ),
        "transport": (record.transport or "").upper(),
        "last_login": _when(record.last_login),
        "last_login_raw": record.last_login or "",
        "first_seen": _when(record.first_seen),
        "state": record.state,
        "reason": record.state_reason or "",
        "enabled": record.enabled,
        "simulated": record.simulated,
        "lines": list(record.lines),
        "user_agent": record.user_agent or "",
    }


def _record(server: Server, mac: str) -> PhoneRecord:
    normalized = normalize_mac(mac)
    assert server.inventory is not None
    record = server.inventory.get(normalized) if normalized else None
    if record is None:
        raise HTTPException(status_code=404, detail=f"no phone {mac} in the inventory")
    return record


def _trace(server: Server, mac: str) -> list[dict[str, Any]]:
    if server.phones is None:
        return []
    buffer = server.phones.traces.get(mac)  # .get: traces is a defaultdict
    if buffer is None:
        return []
    return [
        {
            "time": t,
            "clock": datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3],
            "dir": direction,
            "kind": kind,
            "text": text,
        }
        for t, direction, kind, text in list(buffer.entries)
    ]


def _safe_next(target: str) -> str:
    if target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin/"


# ---------------------------------------------------------------------------- login
def _throttle(request: Request) -> AuthThrottle:
    """The admin login's throttle, with the current ``http.admin_login_*`` settings."""
    state = request.app.state
    throttle: AuthThrottle | None = getattr(state, "admin_login_throttle", None)
    if throttle is None:
        throttle = state.admin_login_throttle = AuthThrottle()
    h = state.server.settings.http
    throttle.configure(
        max_failures=h.admin_login_max_failures,
        block_time=h.admin_login_block_time,
        max_source_failures=h.admin_login_max_source_failures,
        max_account_failures=h.admin_login_max_account_failures,
    )
    return throttle


def _auth_log(request: Request) -> RateLimitedLog:
    """Rate-limited lines for what a stranger can trigger (failed and refused logins); one
    per application, so each server counts its own."""
    state = request.app.state
    found: RateLimitedLog | None = getattr(state, "admin_auth_log", None)
    if found is None:
        found = state.admin_auth_log = RateLimitedLog(log)
    return found


def _blocked_message(wait: float) -> str:
    if wait < 60:
        amount, unit = max(1, int(wait + 0.5)), "second"
    else:
        amount, unit = int(wait + 59) // 60, "minute"
    return f"Too many failed logins. Try again in {amount} {unit}{'s' if amount != 1 else ''}."


@router.get("", include_in_schema=False)
async def admin_root() -> RedirectResponse:
    return RedirectResponse("/admin/", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/admin/") -> HTMLResponse:
    principal = _auth(request).principal(request)
    return _render(
        request,
        "login.html",
        {"next": _safe_next(next), "error": None, "name": "admin", "current": principal},
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    source = _client_ip(request)
    form = await _form(request)
    name = _text(form, "name")[:128]
    password = _raw(form, "password")[:1024]
    target = _safe_next(_text(form, "next", "/admin/"))
    throttle = _throttle(request)
    wait = throttle.blocked_for(source, name, time.monotonic())
    if wait > 0:
        _auth_log(request).warning(
            ("blocked", source), "admin login from %s refused: too many failures", source
        )
        return _render(
            request,
            "login.html",
            {"next": target, "error": _blocked_message(wait), "name": name},
            status_code=429,
        )
    throttle.begin(source, name)  # concurrent guesses wait for this one's outcome
    try:
        principal = await asyncio.to_thread(_auth(request).login, name, password)
    finally:
        throttle.end(source, name)
    if principal is None or not principal.is_admin:
        # Any other account (a web-client user) answers exactly like a wrong password: the
        # admin login must not confirm a password that is right for the web client.
        blocked = throttle.failure(source, name, time.monotonic())
        _auth_log(request).warning(
            ("failed", source), "admin login failed for user %r from %s", name, source
        )
        if blocked:
            _auth_log(request).warning(
                ("blocking", source),
                "blocking %s for %.0f s after repeated admin login failures",
                throttle.describe_block(source, name),
                blocked,
            )
        return _render(
            request,
            "login.html",
            {"next": target, "error": "Wrong user name or password.", "name": name},
            status_code=401,
        )
    throttle.success(source, name, time.monotonic())
    await asyncio.to_thread(_auth(request).start_session, request, principal)
    log.info("admin %r logged in from %s", principal.name, source)
    return RedirectResponse(target, status_code=303)


@router.get("/logout")
async def logout_get(request: Request) -> RedirectResponse:
    await asyncio.to_thread(_auth(request).end_session, request)
    return RedirectResponse("/admin/login", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    await _form(request)
    await asyncio.to_thread(_auth(request).end_session, request)
    return RedirectResponse("/admin/login", status_code=303)


# ---------------------------------------------------------------------------- phones
@router.get("/", response_class=HTMLResponse)
async def phones_page(request: Request) -> HTMLResponse:
    principal = _require_admin(request)
    server = _server(request)
    assert server.inventory is not None
    rows = [_phone_row(r) for r in server.inventory.all()]
    conflicts = server.hub.switch.devices.conflicts()
    for row in rows:  # a line this phone reports but another phone keeps, or the reverse
        row["conflicts"] = sum(row["mac"] in (c.claimant, c.owner) for c in conflicts)
    counts = server.inventory.counts()
    return _render(
        request,
        "admin_phones.html",
        {
            "nav": "phones",
            "phones": rows,
            "counts": counts,
            "states": STATES,
            "total": len(rows),
            "auto_activate": server.settings.phones.auto_activate,
        },
        principal=principal,
    )


@router.post("/phones/{mac}/enabled")
async def phone_enabled(request: Request, mac: str) -> Response:
    principal = _require_admin(request)
    form = await _form(request)
    server = _server(request)
    record = _record(server, mac)
    enabled = _text(form, "enabled").lower() in ("1", "true", "on", "yes")
    assert server.phones is not None
    await server.phones.set_enabled(record.mac, enabled)
    log.info("phone %s %s by %s", record.mac, "enabled" if enabled else "disabled", principal.name)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(
            {
                "mac": record.mac,
                "enabled": record.enabled,
                "state": record.state,
                "reason": record.state_reason or "",
                "counts": server.inventory.counts() if server.inventory else {},
            }
        )
    _flash(request, f"Phone {format_mac(record.mac)} {'enabled' if enabled else 'disabled'}.")
    return RedirectResponse(_safe_next(_text(form, "next", "/admin/")), status_code=303)


@router.post("/phones/{mac}/delete")
async def phone_delete(request: Request, mac: str) -> RedirectResponse:
    principal = _require_admin(request)
    await _form(request)
    server = _server(request)
    record = _record(server, mac)
    assert server.phones is not None
    await server.phones.delete(record.mac)
    log.info("phone %s deleted from the inventory by %s", record.mac, principal.name)
    _flash(request, f"Phone {format_mac(record.mac)} deleted from the inventory.")
    return RedirectResponse("/admin/", status_code=303)


@router.post("/phones/{mac}/lines/assign")
async def phone_line_assign(request: Request, mac: str) -> RedirectResponse:
    """The operator's decision in a line conflict: the line belongs to this phone."""
    principal = _require_admin(request)
    form = await _form(request)
    server = _server(request)
    record = _record(server, mac)
    device = _text(form, "device")
    if device:
        server.hub.assign_line(device, record.mac)
        log.warning("line %s assigned to phone %s by %s", device, record.mac, principal.name)
        _flash(request, f"Line {device} assigned to {format_mac(record.mac)}.")
    return RedirectResponse(f"/admin/phones/{record.mac}", status_code=303)


@router.get("/phones/{mac}", response_class=HTMLResponse)
async def phone_page(request: Request, mac: str) -> HTMLResponse:
    principal = _require_admin(request)
    server = _server(request)
    record = _record(server, mac)
    sf = server.hub.switch
    devices = sf.devices.by_phone(record.mac)
    points = sf.monitors.points_of_phone(record.mac)
    link = server.phones.links.get(record.mac) if server.phones else None
    return _render(
        request,
        "admin_phone.html",
        {
            "nav": "phones",
            "phone": _phone_row(record),
            "devices": devices,
            "monitors": points,
            "conflicts": [c for c in sf.devices.conflicts() if record.mac in (c.claimant, c.owner)],
            "link": link,
            "link_state": getattr(getattr(link, "state", None), "name", None),
            "trace": _trace(server, record.mac),
        },
        principal=principal,
    )


@router.get("/phones/{mac}/trace.json")
async def phone_trace(request: Request, mac: str) -> JSONResponse:
    _require_admin(request)
    server = _server(request)
    record = _record(server, mac)
    return JSONResponse(
        {
            "mac": record.mac,
            "state": record.state,
            "reason": record.state_reason or "",
            "entries": _trace(server, record.mac),
        },
        headers={"Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------------------- settings
def _lines(text: str) -> list[str]:
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def _bool(form: FormData, name: str) -> bool:
    return _text(form, name).lower() in ("1", "on", "true", "yes")


def _settings_changes(section: str, form: FormData, server: Server) -> dict[str, Any]:
    s = server.settings
    if section == "phones":
        phones: dict[str, Any] = {"listen": _lines(_raw(form, "listen"))}
        if _raw(form, "password"):
            phones["password"] = _raw(form, "password")
        overrides: dict[str, str] = {}
        new_mac = _text(form, "phone_mac")
        new_password = _raw(form, "phone_password")
        if new_mac or new_password:
            mac = normalize_mac(new_mac)
            if mac is None:
                raise ConfigError(f"phones.passwords: {new_mac!r} is not a MAC address")
            if not new_password:
                raise ConfigError(f"phones.passwords.{mac}: the password must not be empty")
            overrides[mac] = new_password
        if overrides:
            phones["passwords"] = overrides
        return {"phones": phones}
    if section == "clients":
        accounts: list[dict[str, Any]] = []
        existing = {a.name: a for a in s.clients.accounts}
        count = int(_text(form, "account_count", "0") or 0)
        for i in range(count):
            name = _text(form, f"account_{i}_name")
            if not name or _bool(form, f"account_{i}_remove"):
                continue
            password = _raw(form, f"account_{i}_password")
            if not password:
                previous = existing.get(_text(form, f"account_{i}_original"))
                if previous is None:
                    raise ConfigError(f"clients.accounts[{name}].password: must not be empty")
                password = previous.password
            devices = _lines(_raw(form, f"account_{i}_devices"))
            accounts.append({"name": name, "password": password, "devices": devices})
        new_name = _text(form, "new_account_name")
        if new_name:
            if new_name in {a["name"] for a in accounts}:
                raise ConfigError(f"clients.accounts: an account {new_name!r} exists already")
            new_password = _raw(form, "new_account_password")
            if not new_password:
                raise ConfigError(f"clients.accounts[{new_name}].password: must not be empty")
            accounts.append(
                {
                    "name": new_name,
                    "password": new_password,
                    "devices": _lines(_raw(form, "new_account_devices")),
                }
            )
        return {
            "clients": {
                "sip_listen": _lines(_raw(form, "sip_listen")),
                "csta_listen": _lines(_raw(form, "csta_listen")),
                "require_authentication": _bool(form, "require_authentication"),
                "session_duration": _text(form, "session_duration"),
                "max_session_duration": _text(form, "max_session_duration"),
                "accounts": accounts,
            }
        }
    if section == "advanced":
        return {
            "phones": {
                "auto_activate": _bool(form, "auto_activate"),
                "registration_expires": _text(form, "registration_expires"),
                "keepalive_interval": _text(form, "keepalive_interval"),
                "session_expires": _text(form, "session_expires"),
                "csta_timeout": _text(form, "csta_timeout"),
                "relink_backoff": _text(form, "relink_backoff"),
                "max_parallel_setups": _text(form, "max_parallel_setups"),
                "max_auth_failures": _text(form, "max_auth_failures"),
                "block_time": _text(form, "block_time"),
            }
        }
    if section == "tls":
        return {
            "tls": {
                "certificate": _text(form, "certificate"),
                "private_key": _text(form, "private_key"),
            }
        }
    if section == "provisioning":
        provisioning: dict[str, Any] = {
            "user": _text(form, "user"),
            "server_host": _text(form, "server_host"),
            "transport": _text(form, "transport"),
        }
        if _bool(form, "clear_password"):
            provisioning["password"] = ""
        elif _raw(form, "password"):
            provisioning["password"] = _raw(form, "password")
        return {"provisioning": provisioning}
    raise HTTPException(status_code=400, detail=f"unknown settings section {section!r}")


def _changed_keys(before: Any, after: Any, prefix: str = "") -> list[str]:
    import dataclasses

    if dataclasses.is_dataclass(before) and not isinstance(before, type):
        out: list[str] = []
        for f in dataclasses.fields(before):
            key = f"{prefix}.{f.name}" if prefix else f.name
            out += _changed_keys(getattr(before, f.name), getattr(after, f.name), key)
        return out
    return [prefix] if before != after else []


SECRET_KEYS = ("password", "passwords", "accounts")


def _describe(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "nothing"


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> HTMLResponse:
    principal = _require_admin(request)
    return _settings_render(request, principal)


def _settings_render(
    request: Request,
    principal: Principal,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    server = _server(request)
    s = server.settings
    return _render(
        request,
        "admin_settings.html",
        {
            "nav": "settings",
            "s": s,
            "errors": errors or {},
            "per_phone": sorted(
                (normalize_mac(k) or k for k in s.phones.passwords), key=lambda m: m
            ),
            "format_mac": format_mac,
            "listening": server.listening,
        },
        principal=principal,
        status_code=status_code,
    )


@router.post("/settings", response_class=HTMLResponse)
async def settings_save(request: Request) -> Response:
    principal = _require_admin(request)
    form = await _form(request)
    server = _server(request)
    section = _text(form, "section")
    before = server.settings
    try:
        changes = _settings_changes(section, form, server)
        restarted = await server.update_settings(changes)
    except ConfigError as exc:
        log.info("settings change refused (%s): %s", section, exc)
        return _settings_render(request, principal, errors={section: str(exc)}, status_code=422)
    keys = _changed_keys(before, server.settings)
    log.info("settings changed by %s: %s", principal.name, _describe(keys))
    message = f"Saved. Changed: {_describe(keys)}."
    if restarted:
        message += f" Restarted: {', '.join(restarted)}."
    pending = [k for k in keys if k in NEEDS_RESTART]
    if pending:
        message += f" Restart the server to apply {', '.join(pending)}."
    _flash(request, message)
    return RedirectResponse(f"/admin/settings#{section}", status_code=303)


# ---------------------------------------------------------------------------- status
@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request) -> HTMLResponse:
    principal = _require_admin(request)
    server = _server(request)
    status = server.status()
    capture = logbuffer.current()
    errors = capture.select(min_level=logging.WARNING, limit=50) if capture else []
    links = len(server.phones.links) if server.phones else 0
    return _render(
        request,
        "admin_status.html",
        {
            "nav": "status",
            "status": status,
            "uptime": _duration(status["uptime"]),
            "started": datetime.fromtimestamp(server.started_at).strftime("%Y-%m-%d %H:%M:%S"),
            "errors": list(reversed(errors)),
            "links": links,
            "total_phones": sum(status["phones"].values()),
            "auth_failures": getattr(server.phones, "auth_failures", 0),
            "data_dir": str(server.data_dir),
        },
        principal=principal,
    )


# ---------------------------------------------------------------------------- diagnostics
def _log_query(request: Request) -> dict[str, Any]:
    q = request.query_params
    level = q.get("level", "DEBUG").upper()
    if level not in LEVELS:
        level = "DEBUG"
    try:
        limit = max(1, min(int(q.get("lines", "200")), 5000))
    except ValueError:
        limit = 200
    return {
        "level": level,
        "text": q.get("q", "")[:200],
        "lines": limit,
        "only_filter": q.get("mac", "") == "1",
    }


def _select(server: Server, query: dict[str, Any]) -> list[logbuffer.Entry]:
    capture = logbuffer.current()
    if capture is None:
        return []
    return capture.select(
        min_level=getattr(logging, query["level"]),
        text=query["text"],
        macs=server.settings.log.mac_filter if query["only_filter"] else (),
        limit=query["lines"],
    )


@router.get("/diagnostics", response_class=HTMLResponse)
async def diagnostics_page(request: Request) -> HTMLResponse:
    principal = _require_admin(request)
    return _diagnostics_render(request, principal)


def _diagnostics_render(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    server = _server(request)
    query = _log_query(request)
    capture = logbuffer.current()
    entries = _select(server, query)
    s = server.settings.log
    values = form or {
        "level": s.level.upper(),
        "max_file_size": _mb(s.max_file_size),
        "delete_daily": "on" if s.delete_daily else "",
        "directory": s.directory,
        "mac_filter": ", ".join(s.mac_filter),
    }
    return _render(
        request,
        "admin_diagnostics.html",
        {
            "nav": "diagnostics",
            "values": values,
            "levels": LEVELS,
            "line_choices": LOG_LINES,
            "query": query,
            "entries": entries,
            "error": error,
            "file_error": capture.file_error if capture else None,
            "files": [str(p) for p in capture.file_paths()] if capture else [],
            "download": "/admin/diagnostics/log.txt?" + str(request.url.query),
        },
        principal=principal,
        status_code=status_code,
    )


def _mb(size: int) -> str:
    value = size / (1024 * 1024)
    return f"{value:g}"


@router.post("/diagnostics", response_class=HTMLResponse)
async def diagnostics_save(request: Request) -> Response:
    principal = _require_admin(request)
    form = await _form(request)
    server = _server(request)
    values = {
        "level": _text(form, "level").upper(),
        "max_file_size": _text(form, "max_file_size"),
        "delete_daily": "on" if _bool(form, "delete_daily") else "",
        "directory": _text(form, "directory"),
        "mac_filter": _text(form, "mac_filter"),
    }
    macs, bad = logbuffer.parse_mac_filter(values["mac_filter"])
    error = None
    try:
        size_mb = float(values["max_file_size"] or "0")
    except ValueError:
        size_mb = -1
    if bad:
        error = f"log.mac_filter: not a MAC address: {', '.join(bad)}"
    elif not 0.01 <= size_mb <= 10240:
        error = "log.max_file_size: a size in MB between 0.01 and 10240"
    if error is None:
        changes = {
            "log": {
                "level": values["level"],
                "max_file_size": int(size_mb * 1024 * 1024),
                "delete_daily": bool(values["delete_daily"]),
                "directory": values["directory"],
                "mac_filter": macs,
            }
        }
        try:
            await server.update_settings(changes)
        except ConfigError as exc:
            error = str(exc)
    if error is not None:
        return _diagnostics_render(request, principal, error=error, form=values, status_code=422)
    capture = logbuffer.install(server)
    capture.configure(server.settings.log)
    log.info(
        "diagnostics changed by %s: level %s, file %s",
        principal.name,
        server.settings.log.level,
        server.settings.log.directory or "(none)",
    )
    message = f"Saved. Log level {server.settings.log.level.upper()} applies now."
    if capture.file_error:
        message = capture.file_error
        _flash(request, message, "error")
    else:
        _flash(request, message)
    return RedirectResponse("/admin/diagnostics", status_code=303)


@router.get("/diagnostics/log.txt")
async def diagnostics_log(request: Request) -> PlainTextResponse:
    _require_admin(request)
    server = _server(request)
    query = _log_query(request)
    if "lines" not in request.query_params:
        query["lines"] = None
    text = "".join(logbuffer.lines(_select(server, query)))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return PlainTextResponse(
        text,
        headers={
            "Content-Disposition": f'attachment; filename="uacsta-{stamp}.log"',
            "Cache-Control": "no-store",
        },
    )


# ---------------------------------------------------------------------------- users
async def _users_render(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    server = _server(request)
    assert server.store is not None
    users = await asyncio.to_thread(server.store.list_users)
    return _render(
        request,
        "admin_users.html",
        {
            "nav": "users",
            "users": [
                {**u, "created": _when(u.get("created"))} for u in users if u["role"] == "user"
            ],
            "admins": [u for u in users if u["role"] == "admin"],
            "error": error,
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request) -> HTMLResponse:
    principal = _require_admin(request)
    return await _users_render(request, principal)


@router.post("/users", response_class=HTMLResponse)
async def user_save(request: Request) -> Response:
    principal = _require_admin(request)
    form = await _form(request)
    server = _server(request)
    assert server.store is not None
    extension = _text(form, "extension")
    password = _raw(form, "password")
    error = None
    if not extension or len(extension) > 64 or any(c.isspace() for c in extension):
        error = "The extension must be a number or name without spaces (at most 64 characters)."
    elif len(password) < MIN_PASSWORD:
        error = f"The password needs at least {MIN_PASSWORD} characters."
    else:
        existing = await asyncio.to_thread(server.store.get_user, extension)
        if existing is not None and existing["role"] != "user":
            error = f"{extension!r} is an admin account."
    if error is not None:
        return await _users_render(request, principal, error=error, status_code=422)
    await asyncio.to_thread(
        _auth(request).set_password, extension, password, role="user", extension=extension
    )
    log.info("web-client user %r set by %s", extension, principal.name)
    _flash(request, f"Web-client user {extension} saved.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{name}/delete")
async def user_delete(request: Request, name: str) -> RedirectResponse:
    principal = _require_admin(request)
    await _form(request)
    server = _server(request)
    assert server.store is not None
    user = await asyncio.to_thread(server.store.get_user, name)
    if user is None or user["role"] != "user":
        raise HTTPException(status_code=404, detail=f"no web-client user {name!r}")
    await asyncio.to_thread(server.store.delete_user, name)
    log.info("web-client user %r deleted by %s", name, principal.name)
    _flash(request, f"Web-client user {name} deleted.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/password", response_class=HTMLResponse)
async def admin_password(request: Request) -> Response:
    principal = _require_admin(request)
    form = await _form(request)
    auth = _auth(request)
    current = _raw(form, "current")
    new = _raw(form, "new")
    error = None
    if await asyncio.to_thread(auth.login, principal.name, current) is None:
        error = "The current password is wrong."
    elif len(new) < MIN_PASSWORD:
        error = f"The new password needs at least {MIN_PASSWORD} characters."
    elif new != _raw(form, "confirm"):
        error = "The new passwords do not match."
    if error is not None:
        return await _users_render(request, principal, error=error, status_code=422)
    await asyncio.to_thread(auth.set_password, principal.name, new, role="admin")
    # Every session of this admin ended with the old password; this browser starts anew.
    await asyncio.to_thread(auth.start_session, request, principal)
    log.info("admin password of %r changed from %s", principal.name, _client_ip(request))
    _flash(request, "Your admin password was changed.")
    return RedirectResponse("/admin/users", status_code=303)


# ---------------------------------------------------------------------------- tokens
async def _tokens_render(
    request: Request,
    principal: Principal,
    *,
    new_token: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    server = _server(request)
    assert server.store is not None
    tokens = await asyncio.to_thread(server.store.list_tokens)
    return _render(
        request,
        "admin_tokens.html",
        {
            "nav": "tokens",
            "tokens": [
                {
                    **t,
                    "created": _when(t.get("created")),
                    "scopes": " ".join(t["scopes"] if t["scopes"] is not None else SCOPES),
                    "expires": _when(t.get("expires")) or "never",
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
    principal = _require_admin(request)
    return await _tokens_render(request, principal)


@router.post("/tokens", response_class=HTMLResponse)
async def token_create(request: Request) -> HTMLResponse:
    principal = _require_admin(request)
    form = await _form(request)
    name = _text(form, "name")
    scopes = {v for v in form.getlist("scopes") if isinstance(v, str)}
    expires_text = _text(form, "expires")
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
        _auth(request).create_token, name, scopes=scopes, expires=expires
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
            "expires": _when(expires.isoformat()) if expires else "never",
        },
    )


@router.post("/tokens/{token_id}/delete")
async def token_delete(request: Request, token_id: str) -> RedirectResponse:
    principal = _require_admin(request)
    await _form(request)
    server = _server(request)
    assert server.store is not None
    if not await asyncio.to_thread(server.store.delete_token, token_id):
        raise HTTPException(status_code=404, detail=f"no API token {token_id!r}")
    log.info("API token %s deleted by %s", token_id, principal.name)
    _flash(request, f"API token {token_id} deleted.")
    return RedirectResponse("/admin/tokens", status_code=303)
