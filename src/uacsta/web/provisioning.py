"""Provisioning over HTTP (estos manual §3.5.1): files for phones and the admin page.

- ``GET /provisioning/{filename}``: what a phone fetches at boot, by the name its firmware asks
  for (``<mac>.cfg``, ``<MAC>.xml``, ``snom<model>-<MAC>.htm``, ``startup.cfg``...). HTTP Basic
  with the phone's own login (:mod:`uacsta.provisioning.credentials`): a phone gets its own
  file and nothing else, only when it is in the inventory or approved; wrong logins are
  throttled per source address; the server address comes from settings or the local address
  the request reached, never from the Host header. An empty ``provisioning.password`` turns
  the endpoint off.
- ``GET /admin/provisioning``: phones of the inventory with a download link per format, and a
  form that makes a file for any MAC and vendor.
- ``GET /admin/provisioning/download/{vendor}/{mac}``: one file as an attachment.

The files themselves come from :mod:`uacsta.provisioning.templates`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from uacsta.phones.mac import format_mac, normalize_mac
from uacsta.phones.vendors import PROFILES, detect, vendor_name
from uacsta.provisioning.credentials import (
    Login,
    check_login,
    is_approved,
    may_fetch,
    provisioning_password,
)
from uacsta.provisioning.templates import (
    FORMATS,
    VENDORS,
    PhoneParams,
    ProvisioningError,
    ProvisioningFile,
    UnknownFile,
    formats_for_vendor,
    mac_of_filename,
    password_for,
    port_for,
    resolve_filename,
)
from uacsta.switch.devices import extension_of
from uacsta.throttle import AuthThrottle
from uacsta.web.auth import csrf_token

if TYPE_CHECKING:
    from uacsta.operations import Components as Server
    from uacsta.store.db import PhoneRecord

log = logging.getLogger("uacsta.web.provisioning")

router = APIRouter(include_in_schema=False)

_REALM = "uacsta provisioning"


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def _record(server: Server, mac: str) -> PhoneRecord | None:
    inventory = getattr(server, "inventory", None)
    return inventory.get(mac) if inventory is not None else None


def vendor_of(server: Server, mac: str) -> str | None:
    """The vendor of a phone: its inventory record, else its MAC's manufacturer prefix."""
    record = _record(server, mac)
    if record is not None and record.vendor in VENDORS:
        return record.vendor
    vendor = detect(None, mac).vendor
    return vendor if vendor in VENDORS else None


def _bound_ports(server: Server) -> dict[str, int]:
    """Ports the phone listeners really use (settings may say 0 = ephemeral)."""
    phones = getattr(server, "phones", None)
    try:
        listeners = phones.ua.transport.listeners if phones is not None else []
    except AttributeError:
        return {}
    out: dict[str, int] = {}
    for listener in listeners:
        out.setdefault(listener.transport, listener.port)
    return out


_loopback_warned: set[str] = set()


def server_host(server: Server, request: Request) -> str:
    """The address phones register to: ``provisioning.server_host``, else the local address
    this request reached (the socket's, never the client-chosen Host header)."""
    configured = server.settings.provisioning.server_host
    if configured:
        host = configured
    else:
        local = request.scope.get("server")
        host = str(local[0]) if local else "localhost"
    if _is_loopback(host) and host not in _loopback_warned and len(_loopback_warned) < 16:
        _loopback_warned.add(host)  # once per address: the log cannot be flooded
        log.warning(
            "provisioning: phones are told to register to %s, a loopback address; "
            "set provisioning.server_host to the address phones reach",
            host,
        )
    return host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def phone_params(
    server: Server,
    request: Request,
    mac: str,
    *,
    number: str | None = None,
    account: int | None = None,
    model: str | None = None,
) -> PhoneParams:
    """The settings of one phone's file: server address/port/transport, MAC, its password."""
    settings = server.settings
    host = server_host(server, request)
    transport = settings.provisioning.transport
    port = port_for(transport, settings.phones.listen, _bound_ports(server))
    record = _record(server, mac)
    if number is None:
        number = ""
        if record is not None and record.lines:
            number = extension_of(record.lines[0]) or ""
    if model is None and record is not None:
        model = record.model
    return PhoneParams(
        mac=mac,
        password=password_for(mac, settings.phones.password, settings.phones.passwords),
        server_host=host,
        port=port,
        transport=transport,
        number=number,
        account=account,
        model=model,
        expires=settings.phones.registration_expires,
    )


def _file_response(file: ProvisioningFile, *, attachment: bool) -> Response:
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{file.filename}"'
    return Response(file.content, media_type=file.media_type, headers=headers)


# --- phones -----------------------------------------------------------------------------------
def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _throttle(request: Request, server: Server) -> AuthThrottle:
    """Wrong logins per source address (never per phone: a stranger cannot lock a phone out)."""
    state = request.app.state
    throttle: AuthThrottle | None = getattr(state, "provisioning_throttle", None)
    if throttle is None:
        throttle = state.provisioning_throttle = AuthThrottle()
    settings = server.settings.provisioning
    throttle.configure(max_failures=settings.max_auth_failures, block_time=settings.block_time)
    return throttle


def _refused(throttle: AuthThrottle, source: str, filename: str, why: str, status: int) -> Response:
    """Count a wrong login; a WARNING only when it starts a block, else DEBUG (no flood)."""
    blocked = throttle.failure(source, None, time.monotonic())
    if blocked:
        log.warning(
            "provisioning: %s blocked for %.0f s after repeated wrong logins (last: %s, %s)",
            source,
            blocked,
            filename,
            why,
        )
        return _too_many(blocked)
    log.debug("provisioning: %s refused %s: %s", source, filename, why)
    if status == 401:
        return PlainTextResponse(
            "provisioning needs the phone's own login: HTTP Basic, its MAC as user name",
            401,
            headers={"WWW-Authenticate": f'Basic realm="{_REALM}", charset="UTF-8"'},
        )
    return PlainTextResponse("this login may not fetch that file", status)


def _too_many(seconds: float) -> Response:
    return PlainTextResponse(
        "too many wrong provisioning logins from this address",
        429,
        headers={"Retry-After": str(max(1, math.ceil(seconds)))},
    )


@router.get("/provisioning/{filename}")
async def phone_file(request: Request, filename: str) -> Response:
    server = _server(request)
    settings = server.settings.provisioning
    if not settings.password:
        return PlainTextResponse(
            "provisioning is off: set provisioning.password to serve phone files", 404
        )
    source = request.client.host if request.client else "?"
    throttle = _throttle(request, server)
    remaining = throttle.blocked_for(source, None, time.monotonic())
    if remaining > 0:
        return _too_many(remaining)
    credentials = _basic(request)
    login: Login | None = None
    if credentials is not None:
        login = check_login(
            *credentials,
            secret=settings.password,
            shared_user=settings.user,
            allow_shared=settings.allow_shared_login,
        )
    if login is None:
        why = "no credentials" if credentials is None else "wrong credentials"
        if credentials is None:  # a phone's first try before it sends its login: no failure
            return PlainTextResponse(
                "provisioning needs the phone's own login: HTTP Basic, its MAC as user name",
                401,
                headers={"WWW-Authenticate": f'Basic realm="{_REALM}", charset="UTF-8"'},
            )
        return _refused(throttle, source, filename, why, 401)
    overrides = server.settings.phones.passwords
    mac = mac_of_filename(filename)
    names_a_phone = filename == "startup.cfg" or mac is not None
    if names_a_phone and not may_fetch(login, mac, overrides):
        return _refused(throttle, source, filename, f"login {login.mac or 'shared'}", 403)
    if mac is not None and not is_approved(
        mac,
        known=_record(server, mac) is not None,
        approved=settings.approved_macs,
        auto_approve_unknown=settings.auto_approve_unknown,
    ):
        log.info("provisioning: %s asked for %s, a phone not approved", source, filename)
        return PlainTextResponse(
            f"{filename}: phone {format_mac(mac)} is not in the inventory or "
            "provisioning.approved_macs",
            404,
        )
    try:
        wanted = resolve_filename(filename, lambda m: vendor_of(server, m))
    except UnknownFile as exc:
        return PlainTextResponse(str(exc), 404)
    if wanted.mac != mac:  # pragma: no cover - mac_of_filename and resolve_filename agree
        return PlainTextResponse("this login may not fetch that file", 403)
    try:
        params = phone_params(server, request, wanted.mac or "000000000000", model=wanted.model)
        if wanted.mac is None:  # startup.cfg: common settings, the common password
            params = replace(params, password=server.settings.phones.password)
        file = FORMATS[wanted.format].generate(params)
    except ProvisioningError as exc:
        log.warning("provisioning: cannot make %s: %s", filename, exc)
        return PlainTextResponse(f"cannot make {filename}: {exc}", 503)
    log.info(
        "provisioning: served %s (%s) to %s",
        filename,
        wanted.format,
        source,
        extra={"mac": wanted.mac},
    )
    return _file_response(file, attachment=False)


# --- admin ------------------------------------------------------------------------------------
def _admin_or_redirect(request: Request) -> RedirectResponse | None:
    principal = request.app.state.auth.principal(request)
    if principal is None or not principal.is_admin:
        target = quote(request.url.path, safe="")
        return RedirectResponse(f"/admin/login?next={target}", status_code=303)
    return None


def _format_for(vendor: str) -> str | None:
    if vendor in FORMATS:
        return vendor
    formats = formats_for_vendor(vendor)
    return formats[0].key if formats else None


def _optional_int(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise ProvisioningError(f"account {text!r}: a number from 1 to 99")
    return int(text)


@router.get("/admin/provisioning/download/{vendor}/{mac}")
async def admin_download(request: Request, vendor: str, mac: str) -> Response:
    if (redirect := _admin_or_redirect(request)) is not None:
        return redirect
    server = _server(request)
    key = _format_for(vendor)
    if key is None:
        return PlainTextResponse(
            f"unknown vendor or format {vendor!r}; one of {', '.join(FORMATS)}", 404
        )
    normal = normalize_mac(mac)
    if normal is None:
        return PlainTextResponse(f"{mac!r} is not a MAC address (12 hex digits)", 404)
    query = request.query_params
    try:
        params = phone_params(
            server,
            request,
            normal,
            number=query.get("number") or None,
            account=_optional_int(query.get("account")),
        )
        file = FORMATS[key].generate(params)
    except ProvisioningError as exc:
        return PlainTextResponse(f"cannot make the file: {exc}", 400)
    return _file_response(file, attachment=query.get("view") != "1")


@router.get("/admin/provisioning/generate")
async def admin_generate(request: Request) -> Response:
    """The page's form: a GET (no side effect) that redirects to the download."""
    if (redirect := _admin_or_redirect(request)) is not None:
        return redirect
    query = request.query_params
    mac = normalize_mac(query.get("mac", ""))
    key = _format_for(query.get("format", ""))
    if mac is None or key is None:
        return RedirectResponse("/admin/provisioning?error=mac", status_code=303)
    extra = urlencode(
        {
            name: value
            for name in ("number", "account", "view")
            if (value := query.get(name, "").strip())
        }
    )
    url = f"/admin/provisioning/download/{key}/{mac}" + (f"?{extra}" if extra else "")
    return RedirectResponse(url, status_code=303)


def login_url(base_url: str, secret: str, mac: str) -> str:
    """The provisioning URL with phone ``mac``'s own login (user:password@), as phones take it."""
    scheme, sep, rest = base_url.partition("://")
    return f"{scheme}{sep}{mac}:{provisioning_password(secret, mac)}@{rest}provisioning/"


def _phone_rows(server: Server, base_url: str) -> list[dict[str, Any]]:
    inventory = getattr(server, "inventory", None)
    secret = server.settings.provisioning.password
    rows = []
    for record in inventory.all() if inventory is not None else []:
        vendor = vendor_of(server, record.mac)
        rows.append(
            {
                "mac": record.mac,
                "mac_display": format_mac(record.mac),
                "vendor": vendor or record.vendor,
                "vendor_name": vendor_name(vendor or record.vendor),
                "model": record.model or "",
                "state": record.state,
                "lines": [extension_of(line) or line for line in record.lines],
                "formats": formats_for_vendor(vendor) if vendor else [],
                "login_url": login_url(base_url, secret, record.mac) if secret else "",
            }
        )
    return rows


def _layout(request: Request) -> str:
    """The admin engineer's ``base.html`` when it exists, else a small standalone layout."""
    loader = request.app.state.templates.env.loader
    try:
        loader.get_source(request.app.state.templates.env, "base.html")
    except Exception:  # jinja2.TemplateNotFound, or a loader that cannot tell
        return "provisioning_layout.html"
    return "base.html"


@router.get("/admin/provisioning")
async def admin_page(request: Request) -> Response:
    if (redirect := _admin_or_redirect(request)) is not None:
        return redirect
    server = _server(request)
    settings = server.settings
    try:
        port: int | str = port_for(
            settings.provisioning.transport, settings.phones.listen, _bound_ports(server)
        )
        port_error = ""
    except ProvisioningError as exc:
        port, port_error = "?", str(exc)
    context = {
        "layout": _layout(request),
        "title": "Provisioning",
        "nav": "provisioning",
        "principal": request.app.state.auth.principal(request),
        "csrf": csrf_token(request),
        "phones": _phone_rows(server, str(request.base_url)),
        "formats": list(FORMATS.values()),
        "vendors": [(v, PROFILES[v].name) for v in VENDORS],
        "enabled": bool(settings.provisioning.password),
        "user": settings.provisioning.user,
        "shared_login": settings.provisioning.allow_shared_login,
        "approved_macs": [
            format_mac(m) for m in settings.provisioning.approved_macs if normalize_mac(m)
        ],
        "auto_approve": settings.provisioning.auto_approve_unknown,
        "server_host": (host := server_host(server, request)),
        "server_host_loopback": _is_loopback(host),
        "server_host_configured": bool(settings.provisioning.server_host),
        "transport": settings.provisioning.transport,
        "port": port,
        "port_error": port_error,
        "base_url": f"{request.base_url}provisioning/",
        "error": request.query_params.get("error"),
    }
    response: Response = request.app.state.templates.TemplateResponse(
        request, "provisioning.html", context
    )
    return response
