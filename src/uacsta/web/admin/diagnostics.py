"""The status page (estos manual §3.8) and the diagnostics page (§3.7, §3.9): the log view
with its filters, the log download, and the log settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from uacsta.operations import OperationError, Operations
from uacsta.web import logbuffer
from uacsta.web.admin.common import (
    duration,
    flag,
    flash,
    form_of,
    log,
    ops,
    render,
    require_admin,
    text,
)
from uacsta.web.auth import Principal

router = APIRouter()

LOG_LINES = (100, 200, 500, 1000, 5000)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    o = ops(request)
    status = o.status()
    errors = o.logs(level="WARNING", limit=50)
    phones = o.parts.phones
    links = len(phones.links) if phones else 0
    return render(
        request,
        "admin_status.html",
        {
            "nav": "status",
            "status": status,
            "uptime": duration(status["uptime"]),
            "started": datetime.fromtimestamp(o.parts.started_at).strftime("%Y-%m-%d %H:%M:%S"),
            "errors": list(reversed(errors)),
            "links": links,
            "total_phones": sum(status["phones"].values()),
            "auth_failures": getattr(phones, "auth_failures", 0),
            "data_dir": str(o.parts.data_dir),
        },
        principal=principal,
    )


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


def _select(o: Operations, query: dict[str, Any]) -> list[logbuffer.Entry]:
    return o.logs(
        level=query["level"],
        text=query["text"],
        only_filter=query["only_filter"],
        limit=query["lines"],
    )


@router.get("/diagnostics", response_class=HTMLResponse)
async def diagnostics_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    return _diagnostics_render(request, principal)


def _diagnostics_render(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    o = ops(request)
    query = _log_query(request)
    capture = logbuffer.current()
    entries = _select(o, query)
    s = o.settings.log
    values = form or {
        "level": s.level.upper(),
        "max_file_size": _mb(s.max_file_size),
        "delete_daily": "on" if s.delete_daily else "",
        "directory": s.directory,
        "mac_filter": ", ".join(s.mac_filter),
    }
    return render(
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
    principal = require_admin(request)
    form = await form_of(request)
    o = ops(request)
    values = {
        "level": text(form, "level").upper(),
        "max_file_size": text(form, "max_file_size"),
        "delete_daily": "on" if flag(form, "delete_daily") else "",
        "directory": text(form, "directory"),
        "mac_filter": text(form, "mac_filter"),
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
            await o.update_settings(changes)
        except OperationError as exc:
            error = str(exc)
    if error is not None:
        return _diagnostics_render(request, principal, error=error, form=values, status_code=422)
    capture = logbuffer.install(o.parts)
    capture.configure(o.settings.log)
    log.info(
        "diagnostics changed by %s: level %s, file %s",
        principal.name,
        o.settings.log.level,
        o.settings.log.directory or "(none)",
    )
    message = f"Saved. Log level {o.settings.log.level.upper()} applies now."
    if capture.file_error:
        message = capture.file_error
        flash(request, message, "error")
    else:
        flash(request, message)
    return RedirectResponse("/admin/diagnostics", status_code=303)


@router.get("/diagnostics/log.txt")
async def diagnostics_log(request: Request) -> PlainTextResponse:
    require_admin(request)
    o = ops(request)
    query = _log_query(request)
    if "lines" not in request.query_params:
        query["lines"] = None
    text = "".join(logbuffer.lines(_select(o, query)))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return PlainTextResponse(
        text,
        headers={
            "Content-Disposition": f'attachment; filename="uacsta-{stamp}.log"',
            "Cache-Control": "no-store",
        },
    )
