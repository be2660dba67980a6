"""The JSON API gateway: REST under ``/api/v1`` and a WebSocket for events (``/api/v1/events``).

A third gateway beside TR/87 and CSTA-over-TCP: it only translates JSON into CSTA requests for
the switching function (:class:`uacsta.hub.SwitchHub`) and CSTA answers and events back into
JSON. Each REST request is a short-lived client of the switching function whose ``deliver``
resolves a future by invoke ID; each WebSocket is one client with its own monitors.

Who may do what: admin sessions everything; API tokens what their scopes allow (``read``:
GET requests and event WebSockets, ``control``: requests that change something at a device,
``admin``: phones, status and tokens), until their expiry; web-client users (role ``user``)
read and control only the devices of their extension, no phone or token administration.
Requests that change something with the session cookie carry the page's CSRF token in
``X-CSRF-Token``.

Errors say why (see ``docs``): ``{"error", "csta_error", "detail"}`` with 404 unknown device,
403 not this account's device, 501 service not supported by the phone, 503 phone not
connected, 504 no answer in time, 409 any other refusal by the phone, 422 bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.phones.mac import normalize_mac
from uacsta.switch.devices import Device, extension_of
from uacsta.switch.function import ToClient, event_to_client
from uacsta.web import apimodels as am
from uacsta.web.auth import SCOPES, Auth, Principal, Refusal, check_csrf
from uacsta.web.jsoncsta import error_json, event_data, to_json

if TYPE_CHECKING:
    from uacsta.hub import SwitchHub
    from uacsta.server import Server
    from uacsta.store.db import PhoneRecord

log = logging.getLogger("uacsta.web.api")

#: How long a REST request waits for the switching function (and the phone) to answer.
REQUEST_TIMEOUT = 10.0
#: Events queued for one WebSocket before it counts as a slow consumer and is closed (1013).
MAX_QUEUE = 1000
#: Devices one WebSocket may monitor.
MAX_SUBSCRIPTIONS = 500
#: WebSocket close code for an unauthenticated handshake (sent as HTTP 403 before accept).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TRY_AGAIN_LATER = 1013
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An API failure that knows its HTTP status and JSON body."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        csta_error: m.CSTAErrorCode | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.csta_error = csta_error
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "csta_error": error_json(self.csta_error) if self.csta_error else None,
            "detail": self.detail,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


#: (category, value) of a CSTAErrorCode → HTTP status; anything else is 409.
_STATUS_BY_ERROR: dict[tuple[str, str | None], int] = {
    ("operation", "invalidDeviceID"): 404,
    ("operation", "privilegeViolationSpecifiedDevice"): 403,
    ("operation", "invalidFeature"): 501,
    ("operation", "serviceNotSupported"): 501,
    ("systemResourceAvailability", "deviceOutOfService"): 503,
    ("systemResourceAvailability", "resourceOutOfService"): 504,
}


def csta_failure(service: str, device: str, error: m.CSTAErrorCode, detail: str | None) -> ApiError:
    """The API error for a negative CSTA answer, with a message saying exactly why."""
    code = error_json(error)
    status = _STATUS_BY_ERROR.get((code["category"], code["value"]), 409)
    reason = {
        404: f"unknown device {device!r}",
        403: f"this account may not use {device!r}",
        501: f"the phone of {device} does not support {service}",
        503: f"the phone of {device} is not connected",
        504: f"the phone of {device} did not answer {service} in time",
    }.get(status, f"the phone of {device} refused {service} ({code['category']}/{code['value']})")
    return ApiError(status, f"{service} failed: {reason}", csta_error=error, detail=detail)


def _validation_error(exc: RequestValidationError) -> ApiError:
    problems = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    text = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
    return ApiError(422, f"invalid request: {text}", detail=problems)


class _ApiRoute(APIRoute):
    """Renders :class:`ApiError` and validation errors as the API's error JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return _validation_error(exc).response()

        return route


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": am.ErrorBody, "description": text}
    for status, text in (
        (401, "Not authenticated"),
        (403, "Not allowed for this account"),
        (422, "Invalid input"),
    )
}
_DEVICE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": am.ErrorBody, "description": text}
    for status, text in (
        (404, "Unknown device"),
        (409, "The phone refused the request"),
        (501, "The phone does not support the service"),
        (503, "The phone is not connected"),
        (504, "The phone did not answer in time"),
    )
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": am.ErrorBody, "description": "Not found"}
}

router = APIRouter(prefix="/api/v1", route_class=_ApiRoute, responses=_ERRORS)


# --- who is asking ----------------------------------------------------------------------------


def _principal_of(conn: HTTPConnection, *, query_token: bool = False) -> Principal | Refusal | None:
    auth: Auth = conn.app.state.auth
    if query_token and "authorization" not in conn.headers:
        token = conn.query_params.get("token")
        if token:
            return auth.authenticate_token(token)
    # Auth.authenticate reads only headers and the session, which every HTTPConnection has.
    return auth.authenticate(cast(Request, conn))


def _need_scope(principal: Principal, scope: str, what: str) -> None:
    if not principal.may(scope):
        have = ", ".join(sorted(principal.scopes)) or "none"
        raise HTTPException(403, f"{what} needs the {scope!r} scope; this API token has: {have}")


def current_principal(request: Request) -> Principal:
    principal = _principal_of(request)
    if isinstance(principal, Refusal):
        raise HTTPException(
            401, f"{principal.reason}: create a new one", headers={"WWW-Authenticate": "Bearer"}
        )
    if principal is None:
        raise HTTPException(
            401,
            "authentication required: send 'Authorization: Bearer <API token>' or log in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method in _SAFE_METHODS:
        _need_scope(principal, "read", "reading")
    else:
        _need_scope(principal, "control", f"{request.method} {request.url.path}")
        if principal.via == "session":
            # Cookie-authenticated changes need the page's CSRF token (header X-CSRF-Token).
            check_csrf(request, request.headers.get("x-csrf-token"))
    return principal


def admin_principal(request: Request) -> Principal:
    principal = _principal_of(request)
    if isinstance(principal, Refusal) or principal is None:
        return current_principal(request)  # raises the 401 saying why
    if not principal.is_admin:
        raise HTTPException(403, "this needs an administrator or an API token")
    _need_scope(principal, "admin", f"{request.method} {request.url.path}")
    if principal.via == "session" and request.method not in _SAFE_METHODS:
        check_csrf(request, request.headers.get("x-csrf-token"))
    return principal


User = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]


def _server(conn: HTTPConnection) -> Server:
    return cast("Server", conn.app.state.server)


def _own_devices(server: Server, principal: Principal) -> list[Device]:
    """The devices of a web-client user: the lines that resolve to their extension."""
    if principal.is_admin:
        return server.hub.switch.devices.devices()
    if not principal.extension:
        return []
    registry = server.hub.switch.devices
    ext = extension_of(principal.extension)
    exact = registry.resolve(principal.extension)
    return [d for d in registry.devices() if d == exact or (ext and d.extension == ext)]


def _allowed_devices(server: Server, principal: Principal) -> list[str]:
    """``allowed_devices`` for the switching function (empty: every device)."""
    if principal.is_admin:
        return []
    # Never empty for a user: an empty list would mean "everything" to the switch.
    return [principal.extension or "", *(d.device_id for d in _own_devices(server, principal))]


def _device(server: Server, principal: Principal, text: str) -> Device:
    """The device a request names, or the 404/403 saying why not."""
    device = server.hub.switch.devices.resolve(text)
    if not principal.is_admin and (device is None or device not in _own_devices(server, principal)):
        own = principal.extension and extension_of(text) == extension_of(principal.extension)
        if not (device is None and own):
            raise ApiError(
                403,
                f"this account may only use extension {principal.extension or '(none)'}, "
                f"not {text!r}",
            )
    if device is None:
        fits = sorted(d.device_id for d in server.hub.switch.devices.resolve_all(text))
        if fits:
            raise ApiError(
                404, f"{text!r} is ambiguous: it names {', '.join(fits)}; use the full sip: URI"
            )
        raise ApiError(404, f"unknown device {text!r}: no phone has this line")
    return device


# --- requests to the switching function -------------------------------------------------------


class _RequestClient:
    """One REST request as a client of the switching function: answers resolve futures."""

    def __init__(self) -> None:
        self.futures: dict[int, asyncio.Future[ToClient]] = {}
        self._invokes = itertools.count(1)

    def expect(self) -> tuple[int, asyncio.Future[ToClient]]:
        invoke = next(self._invokes)
        future = asyncio.get_running_loop().create_future()
        self.futures[invoke] = future
        return invoke, future

    def deliver(self, action: ToClient) -> None:
        if not isinstance(action.invoke, int):
            return  # unsolicited (no monitors on a REST client): nothing to do
        future = self.futures.pop(action.invoke, None)
        if future is not None and not future.done():
            future.set_result(action)

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))


async def ask(
    server: Server, principal: Principal, device: Device, request: m.CstaRequest
) -> m.CstaMessage:
    """Send one CSTA request through the switching function; the positive answer or ApiError."""
    hub = server.hub
    client = _RequestClient()
    hub.client_attach(client, allowed_devices=_allowed_devices(server, principal))
    service = type(request).__name__
    try:
        invoke, future = client.expect()
        hub.client_request(client, invoke, request)
        try:
            action = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError:
            raise ApiError(
                504,
                f"{service} failed: no answer from the phone of {device.device_id} "
                f"within {REQUEST_TIMEOUT:g} s",
            ) from None
    finally:
        hub.client_detach(client)
    message = action.message
    if isinstance(message, m.CSTAErrorCode):
        raise csta_failure(service, device.device_id, message, action.detail)
    return message


def _result(message: m.CstaMessage) -> am.ActionResult:
    name = type(message).__name__.removesuffix("Response")
    data = to_json(message)
    return am.ActionResult(service=name, data=data)


def _call_ref(connection: ConnectionID | None) -> am.CallRef:
    if connection is None:
        return am.CallRef(call_id=None, device_id=None)
    return am.CallRef(call_id=connection.call_id, device_id=connection.device_id)


# --- path parameters --------------------------------------------------------------------------

DevicePath = Annotated[
    am.Text, Path(description="Any alias: '100', 'tel:100', 'sip:100@domain' (URL-encoded)")
]


async def _device_dependency(request: Request, device: DevicePath, who: User) -> Device:
    return _device(_server(request), who, device)


#: The device of the path, checked (404/403) before the body is validated.
Dev = Annotated[Device, Depends(_device_dependency)]
CallPath = Annotated[am.Text, Path(description="call_id of a call at the device")]
MacPath = Annotated[str, Path(max_length=64, description="MAC in any notation")]


def _mac(text: str) -> str:
    mac = normalize_mac(text)
    if mac is None:
        raise ApiError(422, f"{text!r} is not a MAC address (12 hex digits)")
    return mac


# --- status -----------------------------------------------------------------------------------


@router.get("/status", summary="Server status", tags=["status"])
async def get_status(request: Request, _who: Admin) -> dict[str, Any]:
    return _server(request).status()


# --- phones -----------------------------------------------------------------------------------


def _phone_json(record: PhoneRecord, server: Server | None = None) -> am.Phone:
    conflicts = [
        am.LineConflict(device=c.device_id, claimant=c.claimant, owner=c.owner)
        for c in (server.hub.switch.devices.conflicts() if server is not None else ())
        if record.mac in (c.claimant, c.owner)
    ]
    return am.Phone(**asdict(record), online=record.state == "ready", line_conflicts=conflicts)


def _record(server: Server, mac_text: str) -> PhoneRecord:
    mac = _mac(mac_text)
    record = server.inventory.get(mac) if server.inventory else None
    if record is None:
        raise ApiError(404, f"no phone with MAC {mac} in the inventory")
    return record


@router.get("/phones", tags=["phones"], summary="The phone inventory")
async def list_phones(request: Request, _who: Admin) -> list[am.Phone]:
    server = _server(request)
    inventory = server.inventory
    return [_phone_json(r, server) for r in (inventory.all() if inventory else [])]


@router.get("/phones/{mac}", tags=["phones"], responses=_NOT_FOUND)
async def get_phone(request: Request, mac: MacPath, _who: Admin) -> am.Phone:
    server = _server(request)
    return _phone_json(_record(server, mac), server)


@router.patch("/phones/{mac}", tags=["phones"], responses=_NOT_FOUND, summary="Enable or disable")
async def patch_phone(request: Request, mac: MacPath, body: am.PhonePatch, _who: Admin) -> am.Phone:
    server = _server(request)
    record = _record(server, mac)
    assert server.phones is not None
    await server.phones.set_enabled(record.mac, body.enabled)
    return _phone_json(record)


@router.delete("/phones/{mac}", tags=["phones"], responses=_NOT_FOUND, status_code=204)
async def delete_phone(request: Request, mac: MacPath, _who: Admin) -> Response:
    server = _server(request)
    record = _record(server, mac)
    assert server.phones is not None
    await server.phones.delete(record.mac)
    return Response(status_code=204)


def _device_json(server: Server, device: Device) -> am.Device:
    phone = server.hub.switch.phones.get(device.phone)
    return am.Device(
        device=device.device_id,
        phone=device.phone,
        extension=device.extension,
        ready=bool(phone and phone.ready),
    )


@router.get("/phones/{mac}/lines", tags=["phones"], responses=_NOT_FOUND)
async def phone_lines(request: Request, mac: MacPath, _who: Admin) -> list[am.Device]:
    """The phone's lines: live from the switching function, else as last reported."""
    server = _server(request)
    record = _record(server, mac)
    live = server.hub.switch.devices.by_phone(record.mac)
    if live:
        return [_device_json(server, d) for d in live]
    return [
        am.Device(device=line, phone=record.mac, extension=extension_of(line), ready=False)
        for line in record.lines
    ]


@router.post("/phones/{mac}/lines/assign", tags=["phones"], responses=_NOT_FOUND)
async def assign_line(
    request: Request, mac: MacPath, body: am.LineAssign, who: Admin
) -> list[am.Device]:
    """An operator's decision in a line conflict: the line belongs to this phone. It moves
    now when the phone reports it, else when it does; other phones' reports are refused."""
    server = _server(request)
    record = _record(server, mac)
    server.hub.assign_line(body.device, record.mac)
    log.warning("line %s assigned to phone %s by %s", body.device, record.mac, who.name)
    return [_device_json(server, d) for d in server.hub.switch.devices.by_phone(record.mac)]


@router.get("/phones/{mac}/trace", tags=["phones"], responses=_NOT_FOUND)
async def phone_trace(
    request: Request,
    mac: MacPath,
    _who: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[am.TraceEntry]:
    """The last SIP and CSTA messages exchanged with the phone, oldest first."""
    server = _server(request)
    record = _record(server, mac)
    buffer = server.phones.traces.get(record.mac) if server.phones else None
    entries = list(buffer.entries)[-limit:] if buffer is not None else []
    return [
        am.TraceEntry.model_validate({"time": t, "direction": d, "kind": k, "text": x})
        for t, d, k, x in entries
    ]


# --- devices ----------------------------------------------------------------------------------


@router.get("/devices", tags=["devices"], summary="The devices (lines) this account may use")
async def list_devices(request: Request, who: User) -> list[am.Device]:
    server = _server(request)
    return [_device_json(server, d) for d in _own_devices(server, who)]


@router.get("/devices/{device}/snapshot", tags=["devices"], responses=_DEVICE_ERRORS)
async def device_snapshot(request: Request, dev: Dev, who: User) -> am.Snapshot:
    """The calls at the device now (CSTA SnapshotDevice)."""
    server = _server(request)
    answer = await ask(server, who, dev, m.SnapshotDevice(snapshot_object=dev.device_id))
    calls = []
    if isinstance(answer, m.SnapshotDeviceResponse):
        for info in answer.snapshot_data:
            ref = _call_ref(info.connection_identifier)
            state = to_json(info.local_connection_state or info.simple_call_state)
            calls.append(am.CallState(call_id=ref.call_id, device_id=ref.device_id, state=state))
    return am.Snapshot(calls=calls)


def _connection(dev: Device, call_id: str) -> ConnectionID:
    return ConnectionID(call_id=call_id, device_id=dev.device_id)


@router.get("/devices/{device}/calls/{call_id}", tags=["calls"], responses=_DEVICE_ERRORS)
async def call_snapshot(
    request: Request, dev: Dev, call_id: CallPath, who: User
) -> am.CallSnapshot:
    """The devices on a call (CSTA SnapshotCall; not every phone supports it)."""
    server = _server(request)
    answer = await ask(server, who, dev, m.SnapshotCall(snapshot_object=_connection(dev, call_id)))
    devices = []
    if isinstance(answer, m.SnapshotCallResponse):
        for info in answer.snapshot_data:
            ref = _call_ref(info.call_identifier)
            devices.append(
                am.Participant(
                    device=to_json(info.device_on_call),
                    call_id=ref.call_id,
                    device_id=ref.device_id,
                    state=to_json(info.local_connection_state),
                )
            )
    return am.CallSnapshot(devices=devices)


@router.post("/devices/{device}/calls", tags=["calls"], status_code=201, responses=_DEVICE_ERRORS)
async def make_call(request: Request, dev: Dev, body: am.Destination, who: User) -> am.CallRef:
    """Call ``to`` from the device (CSTA MakeCall); returns the device's new call."""
    server = _server(request)
    answer = await ask(
        server, who, dev, m.MakeCall(calling_device=dev.device_id, called_directory_number=body.to)
    )
    return _call_ref(answer.calling_device if isinstance(answer, m.MakeCallResponse) else None)


def _call_action(path: str, summary: str, build: Callable[[ConnectionID], m.CstaRequest]) -> None:
    async def action(request: Request, dev: Dev, call_id: CallPath, who: User) -> am.ActionResult:
        server = _server(request)
        return _result(await ask(server, who, dev, build(_connection(dev, call_id))))

    action.__name__ = path.replace("-", "_") + "_call"
    router.post(
        f"/devices/{{device}}/calls/{{call_id}}/{path}",
        tags=["calls"],
        summary=summary,
        responses=_DEVICE_ERRORS,
    )(action)


_call_action("answer", "Answer an alerting call", lambda c: m.AnswerCall(call_to_be_answered=c))
_call_action(
    "clear",
    "Hang up (clear the connection)",
    lambda c: m.ClearConnection(connection_to_be_cleared=c),
)
_call_action("hold", "Put the call on hold", lambda c: m.HoldCall(call_to_be_held=c))
_call_action("retrieve", "Take the call off hold", lambda c: m.RetrieveCall(call_to_be_retrieved=c))


def _call_action_to(
    path: str,
    summary: str,
    build: Callable[[ConnectionID, str], m.CstaRequest],
) -> None:
    async def action(
        request: Request, dev: Dev, call_id: CallPath, body: am.Destination, who: User
    ) -> am.ActionResult:
        server = _server(request)
        return _result(await ask(server, who, dev, build(_connection(dev, call_id), body.to)))

    action.__name__ = path.replace("-", "_") + "_call"
    router.post(
        f"/devices/{{device}}/calls/{{call_id}}/{path}",
        tags=["calls"],
        summary=summary,
        responses=_DEVICE_ERRORS,
    )(action)


_call_action_to(
    "deflect",
    "Divert an alerting call to another number",
    lambda c, to: m.DeflectCall(call_to_be_diverted=c, new_destination=to),
)
_call_action_to(
    "single-step-transfer",
    "Blind transfer",
    lambda c, to: m.SingleStepTransferCall(active_call=c, transferred_to=to),
)


@router.post(
    "/devices/{device}/calls/{call_id}/consult",
    tags=["calls"],
    status_code=201,
    responses=_DEVICE_ERRORS,
)
async def consult_call(
    request: Request, dev: Dev, call_id: CallPath, body: am.Destination, who: User
) -> am.CallRef:
    """Hold the call and call ``to`` (CSTA ConsultationCall); returns the new call."""
    server = _server(request)
    request_ = m.ConsultationCall(existing_call=_connection(dev, call_id), consulted_device=body.to)
    answer = await ask(server, who, dev, request_)
    return _call_ref(
        answer.initiated_call if isinstance(answer, m.ConsultationCallResponse) else None
    )


@router.post("/devices/{device}/calls/{call_id}/digits", tags=["calls"], responses=_DEVICE_ERRORS)
async def send_digits(
    request: Request, dev: Dev, call_id: CallPath, body: am.Digits, who: User
) -> am.ActionResult:
    """Send DTMF on the call (CSTA GenerateDigits)."""
    server = _server(request)
    request_ = m.GenerateDigits(
        connection_to_send_digits=_connection(dev, call_id), characters_to_send=body.digits
    )
    return _result(await ask(server, who, dev, request_))


@router.post("/devices/{device}/transfer", tags=["calls"], responses=_DEVICE_ERRORS)
async def transfer(request: Request, dev: Dev, body: am.TwoCalls, who: User) -> am.ActionResult:
    """Connect the held call with the active one and leave (CSTA TransferCall)."""
    server = _server(request)
    request_ = m.TransferCall(
        held_call=_connection(dev, body.held_call), active_call=_connection(dev, body.active_call)
    )
    return _result(await ask(server, who, dev, request_))


@router.post("/devices/{device}/conference", tags=["calls"], responses=_DEVICE_ERRORS)
async def conference(request: Request, dev: Dev, body: am.TwoCalls, who: User) -> am.ActionResult:
    """Join the held and the active call (CSTA ConferenceCall)."""
    server = _server(request)
    request_ = m.ConferenceCall(
        held_call=_connection(dev, body.held_call), active_call=_connection(dev, body.active_call)
    )
    return _result(await ask(server, who, dev, request_))


# --- features ---------------------------------------------------------------------------------


@router.get("/devices/{device}/dnd", tags=["features"], responses=_DEVICE_ERRORS)
async def get_dnd(request: Request, dev: Dev, who: User) -> am.Dnd:
    server = _server(request)
    answer = await ask(server, who, dev, m.GetDoNotDisturb(device=dev.device_id))
    on = isinstance(answer, m.GetDoNotDisturbResponse) and bool(answer.do_not_disturb_on)
    return am.Dnd(on=on)


@router.put("/devices/{device}/dnd", tags=["features"], responses=_DEVICE_ERRORS)
async def put_dnd(request: Request, dev: Dev, body: am.Dnd, who: User) -> am.Dnd:
    server = _server(request)
    await ask(server, who, dev, m.SetDoNotDisturb(device=dev.device_id, do_not_disturb_on=body.on))
    return am.Dnd(on=body.on)


@router.get("/devices/{device}/forwarding", tags=["features"], responses=_DEVICE_ERRORS)
async def get_forwarding(request: Request, dev: Dev, who: User) -> am.ForwardingList:
    server = _server(request)
    answer = await ask(server, who, dev, m.GetForwarding(device=dev.device_id))
    items = answer.forwarding_list if isinstance(answer, m.GetForwardingResponse) else ()
    return am.ForwardingList(
        forwarding=[
            am.ForwardingEntry(
                type=to_json(i.forwarding_type), on=i.forward_status, to=i.forward_dn
            )
            for i in items
        ]
    )


@router.put("/devices/{device}/forwarding", tags=["features"], responses=_DEVICE_ERRORS)
async def put_forwarding(
    request: Request, dev: Dev, body: am.ForwardingSet, who: User
) -> am.ForwardingEntry:
    server = _server(request)
    request_ = m.SetForwarding(
        device=dev.device_id,
        activate_forward=body.on,
        forwarding_type=body.type,
        forward_dn=body.to,
    )
    await ask(server, who, dev, request_)
    return am.ForwardingEntry(type=body.type.value, on=body.on, to=body.to)


@router.get("/devices/{device}/message-waiting", tags=["features"], responses=_DEVICE_ERRORS)
async def get_message_waiting(request: Request, dev: Dev, who: User) -> dict[str, bool]:
    """The message-waiting indicator (CSTA GetMessageWaitingIndicator)."""
    answer = await ask(
        _server(request), who, dev, m.GetMessageWaitingIndicator(device=dev.device_id)
    )
    on = isinstance(answer, m.GetMessageWaitingIndicatorResponse) and bool(
        answer.message_waiting_on
    )
    return {"on": on}


@router.get("/devices/{device}/features", tags=["features"], responses=_DEVICE_ERRORS)
async def device_features(request: Request, dev: Dev, _who: User) -> dict[str, Any]:
    """What the device's phone supports, per CSTA service, and why a service is refused."""
    server = _server(request)
    link = server.phones.links.get(dev.phone) if server.phones else None
    if link is None:
        raise ApiError(503, f"the phone of {dev.device_id} is not connected")
    return {
        "device": dev.device_id,
        "phone": dev.phone,
        "vendor": link.profile.name,
        "firmware": link.firmware,
        "services": link.features(),
    }


# --- tokens -----------------------------------------------------------------------------------


def _auth(request: Request) -> Auth:
    return cast(Auth, request.app.state.auth)


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
        _auth(request).create_token, body.name, scopes=scopes, expires=expires
    )
    log.info("API token %s (%s, scopes %s) created", token_id, body.name, " ".join(sorted(scopes)))
    return am.TokenCreated(
        id=token_id, name=body.name, token=token, scopes=sorted(scopes), expires=expires
    )


@router.get("/tokens", tags=["tokens"])
async def list_tokens(request: Request, _who: Admin) -> list[am.TokenInfo]:
    rows = await asyncio.to_thread(_auth(request).store.list_tokens)
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


@router.delete("/tokens/{token_id}", tags=["tokens"], status_code=204, responses=_NOT_FOUND)
async def delete_token(
    request: Request, token_id: Annotated[str, Path(max_length=64)], _who: Admin
) -> Response:
    if not await asyncio.to_thread(_auth(request).store.delete_token, token_id):
        raise ApiError(404, f"no API token {token_id!r}")
    log.info("API token %s deleted", token_id)
    return Response(status_code=204)


# --- events (WebSocket) -------------------------------------------------------------------------

_OVERFLOW: dict[str, Any] = {"type": "__overflow__"}


class EventSocket:
    """One WebSocket as a client of the switching function: its monitors and its event queue.

    ``deliver`` runs inside the hub's fan-out, so it never blocks: messages go to a bounded
    queue that a sender task drains. A consumer too slow to keep up is closed with 1013.
    """

    def __init__(
        self, websocket: WebSocket, hub: SwitchHub, allowed: Iterable[str], max_queue: int
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.allowed = list(allowed)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queue)
        self.overflowed = False
        self.by_xref: dict[str, str] = {}
        self.subscribed: dict[str, str | None] = {}  # device text → xref (None: starting)
        self._pending: dict[int, tuple[str, str]] = {}
        self._invokes = itertools.count(1)

    def __repr__(self) -> str:
        return f"<API events {id(self):x}>"

    # --- from the switching function ----------------------------------------------------
    def deliver(self, action: ToClient) -> None:
        message = action.message
        if isinstance(action.invoke, int):
            kind, device = self._pending.pop(action.invoke, ("", ""))
            if kind == "subscribe":
                self._push(self._subscribed(device, message, action.detail))
            elif kind == "unsubscribe":
                ok = not isinstance(message, m.CSTAErrorCode)
                self._push({"type": "unsubscribed", "device": device, "ok": ok, "error": None})
            return
        if not isinstance(message, m.CstaEvent):
            return
        subscribed = self.by_xref.get(message.monitor_cross_ref_id or "")
        if subscribed is None:
            return
        if isinstance(message, m.MonitorEndedEvent):
            self.by_xref.pop(message.monitor_cross_ref_id or "", None)
            self.subscribed.pop(subscribed, None)
        self._push(
            {
                "type": "event",
                "device": subscribed,
                "event": type(message).__name__,
                "data": event_data(message),
            }
        )

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))

    def _subscribed(
        self, device: str, message: m.CstaMessage, detail: str | None
    ) -> dict[str, Any]:
        if isinstance(message, m.MonitorStartResponse) and message.monitor_cross_ref_id:
            self.by_xref[message.monitor_cross_ref_id] = device
            self.subscribed[device] = message.monitor_cross_ref_id
            return {"type": "subscribed", "device": device, "ok": True, "error": None}
        self.subscribed.pop(device, None)
        if isinstance(message, m.CSTAErrorCode):
            failure = csta_failure("MonitorStart", device, message, detail)
        else:
            failure = ApiError(409, f"MonitorStart on {device!r}: unexpected answer")
        return {"type": "subscribed", "device": device, "ok": False, **failure.body()}

    def _push(self, item: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("%r: event queue full (%d), closing", self, self.queue.maxsize)
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_OVERFLOW)

    # --- from the WebSocket -------------------------------------------------------------
    def handle_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            self._push({"type": "error", "error": "not JSON"})
            return
        if not isinstance(data, dict) or not set(data) & {"subscribe", "unsubscribe"}:
            self._push(
                {
                    "type": "error",
                    "error": 'expected {"subscribe": [...]} or {"unsubscribe": [...]}',
                }
            )
            return
        for key in ("subscribe", "unsubscribe"):
            devices = data.get(key, [])
            if not isinstance(devices, list) or not all(
                isinstance(d, str) and 0 < len(d) <= am.MAX_TEXT for d in devices
            ):
                self._push({"type": "error", "error": f"{key!r} must be a list of device names"})
                return
        for device in data.get("unsubscribe", []):
            self.unsubscribe(device)
        for device in data.get("subscribe", []):
            self.subscribe(device)

    def subscribe(self, device: str) -> None:
        try:
            am.xml_safe(device)
        except ValueError as exc:
            self._push(
                {"type": "subscribed", "device": device, "ok": False, "error": f"bad name: {exc}"}
            )
            return
        if device in self.subscribed:
            self._push({"type": "subscribed", "device": device, "ok": True, "error": None})
            return
        if len(self.subscribed) >= MAX_SUBSCRIPTIONS:
            error = f"at most {MAX_SUBSCRIPTIONS} devices per WebSocket"
            self._push({"type": "subscribed", "device": device, "ok": False, "error": error})
            return
        self.subscribed[device] = None
        invoke = next(self._invokes)
        self._pending[invoke] = ("subscribe", device)
        self.hub.client_request(self, invoke, m.MonitorStart(monitor_object=device))

    def unsubscribe(self, device: str) -> None:
        xref = self.subscribed.pop(device, None)
        if xref is None:
            self._push(
                {"type": "unsubscribed", "device": device, "ok": False, "error": "not subscribed"}
            )
            return
        self.by_xref.pop(xref, None)  # no events after unsubscribe, even before the answer
        invoke = next(self._invokes)
        self._pending[invoke] = ("unsubscribe", device)
        self.hub.client_request(self, invoke, m.MonitorStop(monitor_cross_ref_id=xref))

    # --- the connection -----------------------------------------------------------------
    async def run(self) -> None:
        self.hub.client_attach(self, allowed_devices=self.allowed)
        tasks = {
            asyncio.create_task(self._receive_loop(), name="api-events-receive"),
            asyncio.create_task(self._send_loop(), name="api-events-send"),
        }
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    log.info("%r closed: %r", self, exc)
        finally:
            for task in tasks:
                task.cancel()
            self.hub.client_detach(self)

    async def _receive_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if text is not None:
                self.handle_text(text)

    async def _send_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is _OVERFLOW:
                with contextlib.suppress(Exception):
                    await self.websocket.close(
                        CLOSE_TRY_AGAIN_LATER, "too slow: the event queue overflowed"
                    )
                return
            await self.websocket.send_text(json.dumps(item, separators=(",", ":")))


def _same_origin(websocket: WebSocket) -> bool:
    """Cookie-authenticated WebSockets only from our own pages (no cross-site hijacking)."""
    origin = websocket.headers.get("origin")
    if not origin:
        return True  # not a browser
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


@router.websocket("/events")
async def events(websocket: WebSocket) -> None:
    """Events of subscribed devices. Send ``{"subscribe": ["100"]}``; receive
    ``{"type": "subscribed", ...}`` then ``{"type": "event", "device", "event", "data"}``."""
    principal = _principal_of(websocket, query_token=True)
    if isinstance(principal, Refusal):
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="API token expired")
        return
    if principal is not None and principal.via == "session" and not _same_origin(websocket):
        principal = None
    if principal is None:
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="authentication required")
        return
    if not principal.may("read"):
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="the token lacks 'read' scope")
        return
    server = _server(websocket)
    await websocket.accept()
    sock = EventSocket(websocket, server.hub, _allowed_devices(server, principal), MAX_QUEUE)
    await sock.run()
