"""The settings page: one form per section (phones, clients, advanced, TLS, provisioning);
saving validates, persists and applies through :meth:`Operations.update_settings`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from uacsta.config import Settings
from uacsta.operations import Invalid, OperationError, changed_keys, describe
from uacsta.phones.mac import format_mac, normalize_mac
from uacsta.web.admin.common import (
    flag,
    flash,
    form_of,
    log,
    ops,
    raw,
    render,
    require_admin,
    text,
)
from uacsta.web.auth import Principal

router = APIRouter()

#: What a change of these settings needs that update_settings does not do at runtime.
NEEDS_RESTART = ("clients.sip_listen", "clients.csta_listen", "http.listen")


def _lines(value: str) -> list[str]:
    return [item.strip() for item in value.replace(",", "\n").splitlines() if item.strip()]


def _settings_changes(section: str, form: FormData, s: Settings) -> dict[str, Any]:
    """The changes a section's form asks for, in the shape of the settings file."""
    if section == "phones":
        phones: dict[str, Any] = {"listen": _lines(raw(form, "listen"))}
        if raw(form, "password"):
            phones["password"] = raw(form, "password")
        overrides: dict[str, str] = {}
        new_mac = text(form, "phone_mac")
        new_password = raw(form, "phone_password")
        if new_mac or new_password:
            mac = normalize_mac(new_mac)
            if mac is None:
                raise Invalid(
                    "phones.passwords", f"phones.passwords: {new_mac!r} is not a MAC address"
                )
            if not new_password:
                raise Invalid(
                    f"phones.passwords.{mac}",
                    f"phones.passwords.{mac}: the password must not be empty",
                )
            overrides[mac] = new_password
        if overrides:
            phones["passwords"] = overrides
        return {"phones": phones}
    if section == "clients":
        accounts: list[dict[str, Any]] = []
        existing = {a.name: a for a in s.clients.accounts}
        count = int(text(form, "account_count", "0") or 0)
        for i in range(count):
            name = text(form, f"account_{i}_name")
            if not name or flag(form, f"account_{i}_remove"):
                continue
            password = raw(form, f"account_{i}_password")
            if not password:
                previous = existing.get(text(form, f"account_{i}_original"))
                if previous is None:
                    raise Invalid(
                        f"clients.accounts[{name}].password",
                        f"clients.accounts[{name}].password: must not be empty",
                    )
                password = previous.password
            devices = _lines(raw(form, f"account_{i}_devices"))
            accounts.append({"name": name, "password": password, "devices": devices})
        new_name = text(form, "new_account_name")
        if new_name:
            if new_name in {a["name"] for a in accounts}:
                raise Invalid(
                    "clients.accounts", f"clients.accounts: an account {new_name!r} exists already"
                )
            new_password = raw(form, "new_account_password")
            if not new_password:
                raise Invalid(
                    f"clients.accounts[{new_name}].password",
                    f"clients.accounts[{new_name}].password: must not be empty",
                )
            accounts.append(
                {
                    "name": new_name,
                    "password": new_password,
                    "devices": _lines(raw(form, "new_account_devices")),
                }
            )
        return {
            "clients": {
                "sip_listen": _lines(raw(form, "sip_listen")),
                "csta_listen": _lines(raw(form, "csta_listen")),
                "require_authentication": flag(form, "require_authentication"),
                "session_duration": text(form, "session_duration"),
                "max_session_duration": text(form, "max_session_duration"),
                "accounts": accounts,
            }
        }
    if section == "advanced":
        return {
            "phones": {
                "auto_activate": flag(form, "auto_activate"),
                "registration_expires": text(form, "registration_expires"),
                "keepalive_interval": text(form, "keepalive_interval"),
                "session_expires": text(form, "session_expires"),
                "csta_timeout": text(form, "csta_timeout"),
                "relink_backoff": text(form, "relink_backoff"),
                "max_parallel_setups": text(form, "max_parallel_setups"),
                "max_auth_failures": text(form, "max_auth_failures"),
                "block_time": text(form, "block_time"),
            }
        }
    if section == "tls":
        return {
            "tls": {
                "certificate": text(form, "certificate"),
                "private_key": text(form, "private_key"),
            }
        }
    if section == "provisioning":
        provisioning: dict[str, Any] = {
            "user": text(form, "user"),
            "server_host": text(form, "server_host"),
            "transport": text(form, "transport"),
        }
        if flag(form, "clear_password"):
            provisioning["password"] = ""
        elif raw(form, "password"):
            provisioning["password"] = raw(form, "password")
        return {"provisioning": provisioning}
    raise HTTPException(status_code=400, detail=f"unknown settings section {section!r}")


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    return _settingsrender(request, principal)


def _settingsrender(
    request: Request,
    principal: Principal,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    o = ops(request)
    s = o.settings
    return render(
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
            "listening": o.parts.listening,
        },
        principal=principal,
        status_code=status_code,
    )


@router.post("/settings", response_class=HTMLResponse)
async def settings_save(request: Request) -> Response:
    principal = require_admin(request)
    form = await form_of(request)
    o = ops(request)
    section = text(form, "section")
    before = o.settings
    try:
        changes = _settings_changes(section, form, before)
        restarted = await o.update_settings(changes)
    except OperationError as exc:
        log.info("settings change refused (%s): %s", section, exc)
        return _settingsrender(request, principal, errors={section: str(exc)}, status_code=422)
    keys = changed_keys(before, o.settings)
    log.info("settings changed by %s: %s", principal.name, describe(keys))
    message = f"Saved. Changed: {describe(keys)}."
    if restarted:
        message += f" Restarted: {', '.join(restarted)}."
    pending = [k for k in keys if k in NEEDS_RESTART]
    if pending:
        message += f" Restart the server to apply {', '.join(pending)}."
    flash(request, message)
    return RedirectResponse(f"/admin/settings#{section}", status_code=303)
