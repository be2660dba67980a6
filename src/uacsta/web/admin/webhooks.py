"""Webhook endpoints: list, add, enable/disable, delete, send a test, recent deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from uacsta.journal.webhooks import EVENT_TYPES, WebhookError, WebhookService, url_for_log
from uacsta.store.outbox import Delivery, Endpoint
from uacsta.web.admin.common import (
    flag,
    flash,
    form_of,
    log,
    raw,
    render,
    require_admin,
    text,
    when,
)
from uacsta.web.auth import Principal

router = APIRouter()


def _service(request: Request) -> WebhookService:
    service: WebhookService | None = getattr(request.app.state.server, "webhooks", None)
    if service is None:
        raise HTTPException(status_code=503, detail="webhooks are not running")
    return service


def _endpoint(service: WebhookService, endpoint_id: str) -> Endpoint:
    endpoint = service.endpoint(endpoint_id)
    if endpoint is None:
        raise HTTPException(status_code=404, detail=f"no webhook endpoint {endpoint_id!r}")
    return endpoint


def _clock(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


def _endpoint_row(endpoint: Endpoint, counts: dict[str, int]) -> dict[str, Any]:
    return {
        **endpoint.to_json(),
        "created": when(endpoint.created),
        "events_text": ", ".join(sorted(endpoint.events)),
        "lines_text": ", ".join(sorted(endpoint.lines)) if endpoint.lines else "all lines",
        **counts,
    }


def _delivery_row(row: Delivery) -> dict[str, Any]:
    return {
        **row.to_json(),
        "created_text": _clock(row.created),
        "next_text": _clock(row.next_attempt_at),
        "delivered_text": _clock(row.delivered_at),
    }


async def _list_render(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    service = _service(request)
    rows = [_endpoint_row(e, await service.counts(e.id)) for e in service.endpoints()]
    return render(
        request,
        "admin_webhooks.html",
        {
            "nav": "webhooks",
            "endpoints": rows,
            "event_types": EVENT_TYPES,
            "error": error,
            "form": form or {"events": []},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    return await _list_render(request, principal)


@router.post("/webhooks", response_class=HTMLResponse)
async def webhook_add(request: Request) -> Response:
    principal = require_admin(request)
    form = await form_of(request)
    service = _service(request)
    events = [v for v in form.getlist("events") if isinstance(v, str)]
    lines = [x for x in text(form, "lines").replace(",", " ").split() if x]
    url = text(form, "url")
    description = text(form, "description")
    try:
        endpoint = await service.add_endpoint(
            url=url,
            events=events,
            lines=lines or None,
            secret=raw(form, "secret").strip() or None,
            description=description,
        )
    except WebhookError as exc:
        entered = {
            "url": url,
            "events": events,
            "lines": " ".join(lines),
            "description": description,
        }
        return await _list_render(request, principal, error=str(exc), form=entered, status_code=422)
    log.info(
        "webhook endpoint %s (%s) created by %s",
        endpoint.id,
        url_for_log(endpoint.url),
        principal.name,
    )
    flash(request, f"Webhook endpoint {endpoint.id} added. Copy its secret below.")
    return RedirectResponse(f"/admin/webhooks/{endpoint.id}", status_code=303)


@router.get("/webhooks/{endpoint_id}", response_class=HTMLResponse)
async def webhook_page(request: Request, endpoint_id: str) -> HTMLResponse:
    principal = require_admin(request)
    service = _service(request)
    endpoint = _endpoint(service, endpoint_id)
    deliveries = await service.recent(endpoint.id, 50)
    return render(
        request,
        "admin_webhook.html",
        {
            "nav": "webhooks",
            "endpoint": _endpoint_row(endpoint, await service.counts(endpoint.id)),
            # The signing secret, for the administrator only (never logged).
            "secret": endpoint.secret,
            "deliveries": [_delivery_row(d) for d in deliveries],
        },
        principal=principal,
    )


@router.post("/webhooks/{endpoint_id}/enabled")
async def webhook_enabled(request: Request, endpoint_id: str) -> RedirectResponse:
    principal = require_admin(request)
    form = await form_of(request)
    service = _service(request)
    _endpoint(service, endpoint_id)
    enabled = flag(form, "enabled")
    await service.update_endpoint(endpoint_id, enabled=enabled)
    log.info(
        "webhook endpoint %s %s by %s",
        endpoint_id,
        "enabled" if enabled else "disabled",
        principal.name,
    )
    flash(request, f"Webhook endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}.")
    return RedirectResponse(f"/admin/webhooks/{endpoint_id}", status_code=303)


@router.post("/webhooks/{endpoint_id}/test")
async def webhook_test(request: Request, endpoint_id: str) -> RedirectResponse:
    require_admin(request)
    await form_of(request)
    service = _service(request)
    _endpoint(service, endpoint_id)
    delivery = service.send_test(endpoint_id)
    flash(request, f"Test event queued (delivery {delivery}); it appears below once sent.")
    return RedirectResponse(f"/admin/webhooks/{endpoint_id}", status_code=303)


@router.post("/webhooks/{endpoint_id}/delete")
async def webhook_delete(request: Request, endpoint_id: str) -> RedirectResponse:
    principal = require_admin(request)
    await form_of(request)
    service = _service(request)
    if not await service.delete_endpoint(endpoint_id):
        raise HTTPException(status_code=404, detail=f"no webhook endpoint {endpoint_id!r}")
    log.info("webhook endpoint %s deleted by %s", endpoint_id, principal.name)
    flash(request, f"Webhook endpoint {endpoint_id} deleted.")
    return RedirectResponse("/admin/webhooks", status_code=303)
