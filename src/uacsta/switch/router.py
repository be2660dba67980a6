"""Which device a CSTA request addresses, and how to rewrite it into the phone's own terms.

Clients may name a line by any alias (:mod:`uacsta.switch.devices`); the phone only knows its
own device IDs. For every request relayed to phones, this table names the field that carries
the subject device (a device ID or a connection ID), so routing is a dict lookup per request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID

FieldKind = Literal["device", "connection"]

#: request class → fields naming the subject device, first present one routes the request.
SUBJECT_FIELDS: dict[type[m.CstaRequest], tuple[tuple[str, FieldKind], ...]] = {
    m.MakeCall: (("calling_device", "device"),),
    m.AnswerCall: (("call_to_be_answered", "connection"),),
    m.ClearConnection: (("connection_to_be_cleared", "connection"),),
    m.ClearCall: (("call_to_be_cleared", "connection"),),
    m.HoldCall: (("call_to_be_held", "connection"),),
    m.RetrieveCall: (("call_to_be_retrieved", "connection"),),
    m.AlternateCall: (("active_call", "connection"), ("held_call", "connection")),
    m.ConferenceCall: (("active_call", "connection"), ("held_call", "connection")),
    m.TransferCall: (("active_call", "connection"), ("held_call", "connection")),
    m.ReconnectCall: (("active_call", "connection"), ("held_call", "connection")),
    m.ConsultationCall: (("existing_call", "connection"),),
    m.DeflectCall: (("call_to_be_diverted", "connection"),),
    m.DialDigits: (("dialling_connection", "connection"),),
    m.DirectedPickupCall: (("requesting_device", "device"),),
    m.SingleStepConferenceCall: (("active_call", "connection"),),
    m.SingleStepTransferCall: (("active_call", "connection"),),
    m.GenerateDigits: (("connection_to_send_digits", "connection"),),
    m.SnapshotDevice: (("snapshot_object", "device"),),
    m.SnapshotCall: (("snapshot_object", "connection"),),
    m.GetDoNotDisturb: (("device", "device"),),
    m.SetDoNotDisturb: (("device", "device"),),
    m.GetForwarding: (("device", "device"),),
    m.SetForwarding: (("device", "device"),),
    m.GetMessageWaitingIndicator: (("device", "device"),),
    m.SetMessageWaitingIndicator: (("device", "device"),),
    m.GetLogicalDeviceInformation: (("device", "device"),),
    m.GetPhysicalDeviceInformation: (("device", "device"),),
}


def subject_of(request: m.CstaRequest) -> str | None:
    """The device text the request addresses, or None when it names none."""
    for name, kind in SUBJECT_FIELDS.get(type(request), ()):
        value = getattr(request, name)
        if value is None:
            continue
        if kind == "device":
            return str(value)
        if isinstance(value, ConnectionID) and value.device_id:
            return value.device_id
    return None


def rewrite_subject(request: m.CstaRequest, device_id: str) -> m.CstaRequest:
    """The request with every subject field naming the line as the phone does."""
    changes: dict[str, object] = {}
    for name, kind in SUBJECT_FIELDS.get(type(request), ()):
        value = getattr(request, name)
        if value is None:
            continue
        if kind == "device":
            changes[name] = device_id
        elif isinstance(value, ConnectionID) and value.device_id:
            changes[name] = replace(value, device_id=device_id)
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]


def service_name(request: m.CstaMessage) -> str:
    return type(request).__name__
