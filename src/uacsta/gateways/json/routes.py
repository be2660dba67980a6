"""The JSON CSTA gateway's REST routes: devices and their calls and features under /api/v1.

A third gateway beside TR/87 and CSTA-over-TCP: it only translates JSON into CSTA requests for
the switching function (:class:`uacsta.hub.SwitchHub`) and CSTA answers back into JSON. Each
request is a short-lived client (:func:`uacsta.gateways.json.client.ask`); which devices a
principal may use comes from the operations layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.gateways.json.client import ask
from uacsta.gateways.json.shapes import to_json
from uacsta.switch.devices import Device
from uacsta.web import apimodels as am
from uacsta.web.apicommon import (
    ApiError,
    User,
    api_router,
    device_json,
    error_responses,
    operations_of,
)

__all__ = ["router"]

_DEVICE_ERRORS = error_responses(
    (404, "Unknown device"),
    (409, "The phone refused the request"),
    (501, "The phone does not support the service"),
    (503, "The phone is not connected"),
    (504, "The phone did not answer in time"),
)

router = api_router()


async def _ask(request: Request, who: User, dev: Device, csta: m.CstaRequest) -> m.CstaMessage:
    """``csta`` through the switching function, as a client allowed what ``who`` may use."""
    ops = operations_of(request)
    return await ask(ops.parts.hub, ops.allowed_devices(who), dev, csta)


def _result(message: m.CstaMessage) -> am.ActionResult:
    name = type(message).__name__.removesuffix("Response")
    data = to_json(message)
    return am.ActionResult(service=name, data=data)


def _call_ref(connection: ConnectionID | None) -> am.CallRef:
    if connection is None:
        return am.CallRef(call_id=None, device_id=None)
    return am.CallRef(call_id=connection.call_id, device_id=connection.device_id)


DevicePath = Annotated[
    am.Text, Path(description="Any alias: '100', 'tel:100', 'sip:100@domain' (URL-encoded)")
]


async def _device_dependency(request: Request, device: DevicePath, who: User) -> Device:
    return operations_of(request).device(who, device)


#: The device of the path, checked (404/403) before the body is validated.
Dev = Annotated[Device, Depends(_device_dependency)]
CallPath = Annotated[am.Text, Path(description="call_id of a call at the device")]


@router.get("/devices", tags=["devices"], summary="The devices (lines) this account may use")
async def list_devices(request: Request, who: User) -> list[am.Device]:
    return [device_json(request, d) for d in operations_of(request).own_devices(who)]


@router.get("/devices/{device}/snapshot", tags=["devices"], responses=_DEVICE_ERRORS)
async def device_snapshot(request: Request, dev: Dev, who: User) -> am.Snapshot:
    """The calls at the device now (CSTA SnapshotDevice)."""
    answer = await _ask(request, who, dev, m.SnapshotDevice(snapshot_object=dev.device_id))
    calls = []
    if isinstance(answer, m.SnapshotDeviceResponse):
        for info in answer.snapshot_data:
            ref = _call_ref(info.connection_identifier)
            state = to_json(info.local_connection_state or info.simple_call_state)
            calls.append(am.CallState(call_id=ref.call_id, device_id=ref.device_id, state=state))
    return am.Snapshot(calls=calls)


@router.get(
    "/devices/{device}/calls", tags=["calls"], responses=error_responses((404, "Unknown device"))
)
async def current_calls(request: Request, dev: Dev, who: User) -> list[am.CurrentCall]:
    """The calls at the device now, as the server tracks them from the phone's events (no
    request to the phone, so also for phones without SnapshotDevice)."""
    tracker = operations_of(request).parts.hub.switch.calls
    if tracker is None:
        raise ApiError(503, "the server does not track calls")
    return [
        am.CurrentCall(
            call_id=v.call_id,
            line=v.line,
            direction=v.direction.value if v.direction is not None else None,
            state=str(to_json(v.state)),
            remote_number=v.remote_number,
            remote_name=v.remote_name,
            started=v.started,
            answered=v.answered,
            held=v.held,
            internal=v.internal,
            related=list(v.related),
        )
        for v in tracker.calls(dev.device_id)
    ]


def _connection(dev: Device, call_id: str) -> ConnectionID:
    return ConnectionID(call_id=call_id, device_id=dev.device_id)


@router.get("/devices/{device}/calls/{call_id}", tags=["calls"], responses=_DEVICE_ERRORS)
async def call_snapshot(
    request: Request, dev: Dev, call_id: CallPath, who: User
) -> am.CallSnapshot:
    """The devices on a call (CSTA SnapshotCall; not every phone supports it)."""
    answer = await _ask(
        request, who, dev, m.SnapshotCall(snapshot_object=_connection(dev, call_id))
    )
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
    answer = await _ask(
        request, who, dev, m.MakeCall(calling_device=dev.device_id, called_directory_number=body.to)
    )
    return _call_ref(answer.calling_device if isinstance(answer, m.MakeCallResponse) else None)


def _call_action(path: str, summary: str, build: Callable[[ConnectionID], m.CstaRequest]) -> None:
    async def action(request: Request, dev: Dev, call_id: CallPath, who: User) -> am.ActionResult:
        return _result(await _ask(request, who, dev, build(_connection(dev, call_id))))

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
        return _result(await _ask(request, who, dev, build(_connection(dev, call_id), body.to)))

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
    request_ = m.ConsultationCall(existing_call=_connection(dev, call_id), consulted_device=body.to)
    answer = await _ask(request, who, dev, request_)
    return _call_ref(
        answer.initiated_call if isinstance(answer, m.ConsultationCallResponse) else None
    )


@router.post("/devices/{device}/calls/{call_id}/digits", tags=["calls"], responses=_DEVICE_ERRORS)
async def send_digits(
    request: Request, dev: Dev, call_id: CallPath, body: am.Digits, who: User
) -> am.ActionResult:
    """Send DTMF on the call (CSTA GenerateDigits)."""
    request_ = m.GenerateDigits(
        connection_to_send_digits=_connection(dev, call_id), characters_to_send=body.digits
    )
    return _result(await _ask(request, who, dev, request_))


@router.post("/devices/{device}/transfer", tags=["calls"], responses=_DEVICE_ERRORS)
async def transfer(request: Request, dev: Dev, body: am.TwoCalls, who: User) -> am.ActionResult:
    """Connect the held call with the active one and leave (CSTA TransferCall)."""
    request_ = m.TransferCall(
        held_call=_connection(dev, body.held_call), active_call=_connection(dev, body.active_call)
    )
    return _result(await _ask(request, who, dev, request_))


@router.post("/devices/{device}/conference", tags=["calls"], responses=_DEVICE_ERRORS)
async def conference(request: Request, dev: Dev, body: am.TwoCalls, who: User) -> am.ActionResult:
    """Join the held and the active call (CSTA ConferenceCall)."""
    request_ = m.ConferenceCall(
        held_call=_connection(dev, body.held_call), active_call=_connection(dev, body.active_call)
    )
    return _result(await _ask(request, who, dev, request_))


# --- features ---------------------------------------------------------------------------------


@router.get("/devices/{device}/dnd", tags=["features"], responses=_DEVICE_ERRORS)
async def get_dnd(request: Request, dev: Dev, who: User) -> am.Dnd:
    answer = await _ask(request, who, dev, m.GetDoNotDisturb(device=dev.device_id))
    on = isinstance(answer, m.GetDoNotDisturbResponse) and bool(answer.do_not_disturb_on)
    return am.Dnd(on=on)


@router.put("/devices/{device}/dnd", tags=["features"], responses=_DEVICE_ERRORS)
async def put_dnd(request: Request, dev: Dev, body: am.Dnd, who: User) -> am.Dnd:
    await _ask(
        request, who, dev, m.SetDoNotDisturb(device=dev.device_id, do_not_disturb_on=body.on)
    )
    return am.Dnd(on=body.on)


@router.get("/devices/{device}/forwarding", tags=["features"], responses=_DEVICE_ERRORS)
async def get_forwarding(request: Request, dev: Dev, who: User) -> am.ForwardingList:
    answer = await _ask(request, who, dev, m.GetForwarding(device=dev.device_id))
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
    request_ = m.SetForwarding(
        device=dev.device_id,
        activate_forward=body.on,
        forwarding_type=body.type,
        forward_dn=body.to,
    )
    await _ask(request, who, dev, request_)
    return am.ForwardingEntry(type=body.type.value, on=body.on, to=body.to)


@router.get("/devices/{device}/message-waiting", tags=["features"], responses=_DEVICE_ERRORS)
async def get_message_waiting(request: Request, dev: Dev, who: User) -> dict[str, bool]:
    """The message-waiting indicator (CSTA GetMessageWaitingIndicator)."""
    answer = await _ask(request, who, dev, m.GetMessageWaitingIndicator(device=dev.device_id))
    on = isinstance(answer, m.GetMessageWaitingIndicatorResponse) and bool(
        answer.message_waiting_on
    )
    return {"on": on}


@router.get("/devices/{device}/features", tags=["features"], responses=_DEVICE_ERRORS)
async def device_features(request: Request, dev: Dev, _who: User) -> dict[str, Any]:
    """What the device's phone supports, per CSTA service, and why a service is refused."""
    phones = operations_of(request).parts.phones
    link = phones.links.get(dev.phone) if phones else None
    if link is None:
        raise ApiError(503, f"the phone of {dev.device_id} is not connected")
    return {
        "device": dev.device_id,
        "phone": dev.phone,
        "vendor": link.profile.name,
        "firmware": link.firmware,
        "services": link.features(),
    }
