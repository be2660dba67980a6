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


#: Settings key → (form field name, the field's label on the page): an error names the label
#: and is shown at the field.
FIELDS: dict[str, tuple[str, str]] = {
    "phones.listen": ("listen", "Listen addresses"),
    "phones.password": ("password", "Phone password"),
    "phones.passwords": ("phone_mac", "MAC address"),
    "clients.sip_listen": ("sip_listen", "TR/87 (SIP) listen addresses"),
    "clients.csta_listen": ("csta_listen", "CSTA XML (TCP) listen addresses"),
    "clients.session_duration": ("session_duration", "Session duration"),
    "clients.max_session_duration": ("max_session_duration", "Maximum session duration"),
    "clients.accounts": ("new_account_name", "New account name"),
    "phones.registration_expires": ("registration_expires", "SIP expiration time"),
    "phones.keepalive_interval": ("keepalive_interval", "Keep-alive interval"),
    "phones.session_expires": ("session_expires", "Session expires"),
    "phones.csta_timeout": ("csta_timeout", "CSTA timeout"),
    "phones.relink_backoff": ("relink_backoff", "Re-link back-off"),
    "phones.max_parallel_setups": ("max_parallel_setups", "Parallel link set-ups"),
    "phones.max_auth_failures": ("max_auth_failures", "Failed authentications before blocking"),
    "phones.block_time": ("block_time", "Block time"),
    "tls.certificate": ("certificate", "Certificate (chain) file"),
    "tls.private_key": ("private_key", "Private key file"),
    "provisioning.user": ("user", "HTTP user"),
    "provisioning.password": ("password", "HTTP password"),
    "provisioning.server_host": ("server_host", "Server address for phones"),
    "provisioning.transport": ("transport", "Transport"),
}


def field_error(key: str, message: str) -> tuple[str | None, str]:
    """The form field a refused settings key belongs to, and the message in the page's words:
    the field's label first, the key in brackets for the settings file."""
    found = FIELDS.get(key)
    if found is None and key.startswith("phones.passwords."):
        found = ("phone_password", "Password for this phone")
    if found is None and key.startswith("clients.accounts["):
        found = ("new_account_password", "Password") if key.endswith("password") else None
    if found is None:
        return None, message
    name, label = found
    head, sep, rest = message.partition(":")
    detail = rest.strip() if sep and head.strip() == key else message
    return name, f"{label}: {detail} ({key})"


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
    field_errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
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
            "field_errors": field_errors or {},
            "typed": typed or {},
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
        name, message = field_error(getattr(exc, "field", "") or "", str(exc))
        # What the operator typed stays in the form (not the passwords), the error at its field.
        typed = {
            k: v
            for k, v in form.multi_items()
            if isinstance(v, str) and k not in ("csrf", "section") and "password" not in k
        }
        return _settingsrender(
            request,
            principal,
            errors={} if name else {section: message},
            field_errors={f"{section}.{name}": message} if name else {},
            typed={"__section": section, **typed},
            status_code=422,
        )
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
