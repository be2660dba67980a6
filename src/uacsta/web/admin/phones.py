"""The phone pages: the inventory, one phone with its lines, monitors and trace, and what an
operator does to a phone (enable, disable, delete, assign a line in a conflict)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from uacsta.operations import Operations, trace_entry
from uacsta.phones.inventory import STATES
from uacsta.phones.mac import format_mac
from uacsta.store.db import PhoneRecord
from uacsta.web.admin.common import (
    flash,
    form_of,
    ops,
    phone,
    render,
    require_admin,
    safe_next,
    text,
    when,
)

router = APIRouter()


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
        "last_login": when(record.last_login),
        "last_login_raw": record.last_login or "",
        "first_seen": when(record.first_seen),
        "state": record.state,
        "reason": record.state_reason or "",
        "enabled": record.enabled,
        "simulated": record.simulated,
        "lines": list(record.lines),
        "user_agent": record.user_agent or "",
    }


def _trace(operations: Operations, mac: str) -> list[dict[str, Any]]:
    return [trace_entry(*entry) for entry in operations.trace(mac)]


@router.get("/", response_class=HTMLResponse)
async def phones_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    o = ops(request)
    rows = [_phone_row(r) for r in o.phones()]
    conflicts = o.conflicts()
    for row in rows:  # a line this phone reports but another phone keeps, or the reverse
        row["conflicts"] = sum(row["mac"] in (c.claimant, c.owner) for c in conflicts)
    return render(
        request,
        "admin_phones.html",
        {
            "nav": "phones",
            "phones": rows,
            "counts": o.phone_counts(),
            "states": STATES,
            "total": len(rows),
            "auto_activate": o.settings.phones.auto_activate,
        },
        principal=principal,
    )


@router.post("/phones/{mac}/enabled")
async def phone_enabled(request: Request, mac: str) -> Response:
    principal = require_admin(request)
    form = await form_of(request)
    o = ops(request)
    record = phone(o, mac)
    enabled = text(form, "enabled").lower() in ("1", "true", "on", "yes")
    await o.set_enabled(record.mac, enabled, by=principal.name)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(
            {
                "mac": record.mac,
                "enabled": record.enabled,
                "state": record.state,
                "reason": record.state_reason or "",
                "counts": o.phone_counts(),
            }
        )
    flash(request, f"Phone {format_mac(record.mac)} {'enabled' if enabled else 'disabled'}.")
    return RedirectResponse(safe_next(text(form, "next", "/admin/")), status_code=303)


@router.post("/phones/{mac}/delete")
async def phone_delete(request: Request, mac: str) -> RedirectResponse:
    principal = require_admin(request)
    await form_of(request)
    o = ops(request)
    record = phone(o, mac)
    await o.delete_phone(record.mac, by=principal.name)
    flash(request, f"Phone {format_mac(record.mac)} deleted from the inventory.")
    return RedirectResponse("/admin/", status_code=303)


@router.post("/phones/{mac}/lines/assign")
async def phone_line_assign(request: Request, mac: str) -> RedirectResponse:
    """The operator's decision in a line conflict: the line belongs to this phone."""
    principal = require_admin(request)
    form = await form_of(request)
    o = ops(request)
    record = phone(o, mac)
    device = text(form, "device")
    if device:
        o.assign_line(record.mac, device, by=principal.name)
        flash(request, f"Line {device} assigned to {format_mac(record.mac)}.")
    return RedirectResponse(f"/admin/phones/{record.mac}", status_code=303)


@router.get("/phones/{mac}", response_class=HTMLResponse)
async def phone_page(request: Request, mac: str) -> HTMLResponse:
    principal = require_admin(request)
    o = ops(request)
    record = phone(o, mac)
    sf = o.parts.hub.switch
    phones = o.parts.phones
    link = phones.links.get(record.mac) if phones else None
    return render(
        request,
        "admin_phone.html",
        {
            "nav": "phones",
            "phone": _phone_row(record),
            "devices": o.phone_devices(record.mac),
            "monitors": sf.monitors.points_of_phone(record.mac),
            "conflicts": o.conflicts(record.mac),
            "link": link,
            "link_state": getattr(getattr(link, "state", None), "name", None),
            "trace": _trace(o, record.mac),
        },
        principal=principal,
    )


@router.get("/phones/{mac}/trace.json")
async def phone_trace(request: Request, mac: str) -> JSONResponse:
    require_admin(request)
    o = ops(request)
    record = phone(o, mac)
    return JSONResponse(
        {
            "mac": record.mac,
            "state": record.state,
            "reason": record.state_reason or "",
            "entries": _trace(o, record.mac),
        },
        headers={"Cache-Control": "no-store"},
    )
