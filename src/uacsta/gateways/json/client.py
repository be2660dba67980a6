"""A REST request as a short-lived client of the switching function.

Each request attaches a :class:`RequestClient` to the hub, sends one CSTA request and waits
for the answer by invoke ID; CSTA error codes become the API's error with the HTTP status
that says why.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from uacsta.csta import messages as m
from uacsta.gateways.json.shapes import error_json
from uacsta.switch.callrecord import CallNotice
from uacsta.switch.function import ToClient, event_to_client
from uacsta.web.apicommon import ApiError

if TYPE_CHECKING:
    from uacsta.hub import SwitchHub
    from uacsta.switch.devices import Device

__all__ = ["REQUEST_TIMEOUT", "RequestClient", "ask", "csta_failure"]

#: How long a REST request waits for the switching function (and the phone) to answer.
REQUEST_TIMEOUT = 10.0

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
    return ApiError(status, f"{service} failed: {reason}", csta_error=code, detail=detail)


class RequestClient:
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

    def deliver_notice(self, notice: CallNotice) -> None:
        """A request-only client monitors nothing."""

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))


async def ask(
    hub: SwitchHub, allowed: list[str], device: Device, request: m.CstaRequest
) -> m.CstaMessage:
    """Send one CSTA request through the switching function, as a client allowed ``allowed``
    devices (empty: all); the positive answer or :class:`ApiError`."""
    client = RequestClient()
    hub.client_attach(client, allowed_devices=allowed)
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
