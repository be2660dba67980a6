"""The management API under ``/api/v1``: server status, the phone inventory, API tokens.

Administrators and ``admin``-scoped API tokens only. Every route calls the operations layer
(:class:`uacsta.operations.Operations`), whose refusals the route class turns into the API's
error JSON (:func:`uacsta.web.apicommon.api_error`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path, Query, Request, Response

from uacsta.switch.devices import extension_of
from uacsta.web import apimodels as am
from uacsta.web.apicommon import (
    NOT_FOUND,
    Admin,
    ApiError,
    api_router,
    auth_of,
    device_json,
    operations_of,
)
from uacsta.web.auth import SCOPES

if TYPE_CHECKING:
    from uacsta.operations import Operations
    from uacsta.store.db import PhoneRecord

__all__ = ["router"]

log = logging.getLogger("uacsta.web.api")

router = api_router()

MacPath = Annotated[str, Path(max_length=64, description="MAC in any notation")]


@router.get("/status", summary="Server status", tags=["status"])
async def get_status(request: Request, _who: Admin) -> dict[str, Any]:
    return operations_of(request).status()


# --- phones -----------------------------------------------------------------------------------


def _phone_json(record: PhoneRecord, ops: Operations | None = None) -> am.Phone:
    conflicts = [
        am.LineConflict(device=c.device_id, claimant=c.claimant, owner=c.owner)
        for c in (ops.conflicts(record.mac) if ops is not None else ())
    ]
    return am.Phone(**asdict(record), online=record.state == "ready", line_conflicts=conflicts)


@router.get("/phones", tags=["phones"], summary="The phone inventory")
async def list_phones(request: Request, _who: Admin) -> list[am.Phone]:
    ops = operations_of(request)
    return [_phone_json(r, ops) for r in ops.phones()]


@router.get("/phones/{mac}", tags=["phones"], responses=NOT_FOUND)
async def get_phone(request: Request, mac: MacPath, _who: Admin) -> am.Phone:
    ops = operations_of(request)
    return _phone_json(ops.phone(mac), ops)


@router.patch("/phones/{mac}", tags=["phones"], responses=NOT_FOUND, summary="Enable or disable")
async def patch_phone(request: Request, mac: MacPath, body: am.PhonePatch, _who: Admin) -> am.Phone:
    return _phone_json(await operations_of(request).set_enabled(mac, body.enabled))


@router.delete("/phones/{mac}", tags=["phones"], responses=NOT_FOUND, status_code=204)
async def delete_phone(request: Request, mac: MacPath, _who: Admin) -> Response:
    await operations_of(request).delete_phone(mac)
    return Response(status_code=204)


@router.get("/phones/{mac}/lines", tags=["phones"], responses=NOT_FOUND)
async def phone_lines(request: Request, mac: MacPath, _who: Admin) -> list[am.Device]:
    """The phone's lines: live from the switching function, else as last reported."""
    ops = operations_of(request)
    record = ops.phone(mac)
    live = ops.phone_devices(record.mac)
    if live:
        return [device_json(request, d) for d in live]
    return [
        am.Device(device=line, phone=record.mac, extension=extension_of(line), ready=False)
        for line in record.lines
    ]


@router.post("/phones/{mac}/lines/assign", tags=["phones"], responses=NOT_FOUND)
async def assign_line(
    request: Request, mac: MacPath, body: am.LineAssign, who: Admin
) -> list[am.Device]:
    """An operator's decision in a line conflict: the line belongs to this phone. It moves
    now when the phone reports it, else when it does; other phones' reports are refused."""
    ops = operations_of(request)
    record = ops.assign_line(mac, body.device, by=who.name)
    return [device_json(request, d) for d in ops.phone_devices(record.mac)]


@router.get("/phones/{mac}/trace", tags=["phones"], responses=NOT_FOUND)
async def phone_trace(
    request: Request,
    mac: MacPath,
    _who: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[am.TraceEntry]:
    """The last SIP and CSTA messages exchanged with the phone, oldest first."""
    return [
        am.TraceEntry.model_validate({"time": t, "direction": d, "kind": k, "text": x})
        for t, d, k, x in operations_of(request).trace(mac, limit)
    ]


# --- tokens -----------------------------------------------------------------------------------


@router.post("/tokens", tags=["tokens"], status_code=201)
async def create_token(request: Request, body: am.TokenCreate, _who: Admin) -> am.TokenCreated:
    """A new API token with the given scopes (default all) and expiry (default none); the
    token is shown only in this answer."""
    expires = body.expires
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            raise ApiError(422, "invalid request: expires must lie in the future")
    scopes = set(body.scopes)
    token_id, token = await asyncio.to_thread(
        auth_of(request).create_token, body.name, scopes=scopes, expires=expires
    )
    log.info("API token %s (%s, scopes %s) created", token_id, body.name, " ".join(sorted(scopes)))
    return am.TokenCreated(
        id=token_id, name=body.name, token=token, scopes=sorted(scopes), expires=expires
    )


@router.get("/tokens", tags=["tokens"])
async def list_tokens(request: Request, _who: Admin) -> list[am.TokenInfo]:
    rows = await asyncio.to_thread(auth_of(request).store.list_tokens)
    return [
        am.TokenInfo(
            id=r["id"],
            name=r["name"],
            created=r.get("created"),
            scopes=sorted(r["scopes"] if r["scopes"] is not None else SCOPES),
            expires=r.get("expires"),
        )
        for r in rows
    ]


@router.delete("/tokens/{token_id}", tags=["tokens"], status_code=204, responses=NOT_FOUND)
async def delete_token(
    request: Request, token_id: Annotated[str, Path(max_length=64)], _who: Admin
) -> Response:
    if not await asyncio.to_thread(auth_of(request).store.delete_token, token_id):
        raise ApiError(404, f"no API token {token_id!r}")
    log.info("API token %s deleted", token_id)
    return Response(status_code=204)
