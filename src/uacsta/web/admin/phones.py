"""The phone pages: the inventory, one phone with its lines, monitors and trace, and what an
operator does to a phone (enable, disable, delete, assign a line in a conflict)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from uacsta.operations import Operations, trace_entry
from uacsta.phones.inventory import STATES
from uacsta.phones.mac import format_mac
from uacsta.phones.vendors import vendor_name
from uacsta.store.db import PhoneRecord
from uacsta.switch.calls import CallView
from uacsta.switch.devices import extension_of
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


#: The phone states in the operator's words (the pill shows the state, this says what it means).
STATE_TEXT = {
    "offline": "not registered",
    "registered": "registered, no CSTA link yet",
    "linking": "setting up the CSTA link",
    "ready": "registered and under control",
    "failed": "the CSTA link failed",
    "disabled": "disabled: not controlled or monitored",
}

#: A call's connection state in plain words.
CALL_STATE_TEXT = {
    "alerting": "Ringing",
    "connected": "Connected",
    "hold": "On hold",
    "held": "On hold",
    "initiated": "Dialling",
    "queued": "Queued",
    "fail": "Failed",
    "null": "Ended",
}


def _phone_row(record: PhoneRecord) -> dict[str, Any]:
    vendor = vendor_name(record.vendor)
    return {
        "mac": record.mac,
        "mac_display": format_mac(record.mac),
        "vendor": vendor,
        "model": record.model or "",
        "firmware": record.firmware or "",
        "type": " ".join(x for x in (vendor, record.model) if x),
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
        "extensions": [extension_of(line) or line for line in record.lines],
        "state_text": STATE_TEXT.get(record.state, ""),
        "user_agent": record.user_agent or "",
    }


def _call_row(view: CallView, now: float) -> dict[str, Any]:
    state = str(getattr(view.state, "value", view.state))
    since = view.answered or view.started
    seconds = max(0, int(now - since))
    return {
        "line": view.line,
        "extension": extension_of(view.line) or view.line,
        "direction": view.direction.value if view.direction is not None else "",
        "state": state,
        "state_text": CALL_STATE_TEXT.get(state, state),
        "remote": view.remote_name or view.remote_number or "unknown",
        "remote_number": view.remote_number or "",
        "since": f"{seconds // 60}:{seconds % 60:02d}",
        "internal": view.internal,
    }


def _current_calls(operations: Operations, lines: list[str]) -> list[dict[str, Any]] | None:
    """The calls up now on the phone's lines, from the call tracker (None: not tracked)."""
    tracker = operations.parts.hub.switch.calls
    if tracker is None:
        return None
    now = time.time()
    return [_call_row(v, now) for line in lines for v in tracker.calls(line)]


def _trace(operations: Operations, mac: str) -> list[dict[str, Any]]:
    return [trace_entry(*entry) for entry in operations.trace_details(mac)]


def trace_text(record: PhoneRecord, entries: list[dict[str, Any]]) -> str:
    """The trace as a text file: one block per message, the full text where kept."""
    out = [f"uacsta message trace of {format_mac(record.mac)} ({vendor_name(record.vendor)})", ""]
    for e in entries:
        arrow = "uacsta -> phone" if e["dir"] == "out" else "phone -> uacsta"
        stamp = datetime.fromtimestamp(e["time"]).isoformat(timespec="milliseconds")
        out.append(f"=== {stamp} {arrow} {e['kind'].upper()} {e['text']}")
        detail = e.get("detail")
        kept = detail.replace("\r\n", "\n").rstrip() if detail else "(full text no longer kept)"
        out.append(kept)
        out.append("")
    return "\n".join(out)


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
    if enabled:
        said = (
            f"Phone {format_mac(record.mac)} enabled: it is put into operation"
            " (controlled and monitored) when it registers."
        )
    else:
        said = (
            f"Phone {format_mac(record.mac)} disabled: its CSTA link was closed,"
            " its lines are no longer controlled or monitored."
        )
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(
            {
                "mac": record.mac,
                "enabled": record.enabled,
                "state": record.state,
                "state_text": STATE_TEXT.get(record.state, ""),
                "reason": record.state_reason or "",
                "counts": o.phone_counts(),
                "message": said,
            }
        )
    flash(request, said)
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
            "calls": _current_calls(o, list(record.lines)),
            "monitors": sf.monitors.points_of_phone(record.mac),
            "conflicts": o.conflicts(record.mac),
            "link": link,
            "link_state": getattr(getattr(link, "state", None), "name", None),
            "trace": _trace(o, record.mac),
        },
        principal=principal,
    )


@router.get("/phones/{mac}/trace.txt")
async def phone_trace_text(request: Request, mac: str) -> PlainTextResponse:
    """The message trace as a text file to attach to a support request."""
    require_admin(request)
    o = ops(request)
    record = phone(o, mac)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return PlainTextResponse(
        trace_text(record, _trace(o, record.mac)),
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="trace-{record.mac}-{stamp}.txt"',
        },
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
            "state_text": STATE_TEXT.get(record.state, ""),
            "reason": record.state_reason or "",
            "calls": _current_calls(o, list(record.lines)),
            "entries": _trace(o, record.mac),
        },
        headers={"Cache-Control": "no-store"},
    )
