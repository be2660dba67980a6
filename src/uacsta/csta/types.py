"""Common ECMA-323 data types shared by many messages (ECMA-323 §9, "common types").

Owns the value types that appear inside requests, responses and events: connection
identifiers, device identifiers as events carry them, call and connection states, event
causes, forwarding types and the small nested structures used in lists. Enumerations here
pass unknown values through as plain ``str``: phones invent values, and a relay must not
drop what it does not know.

Also owns :func:`xml_meta`, the field metadata the codec reads to map a dataclass field
onto XML (element name, wrapper path, list item name).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Self

__all__ = [
    "AutoOriginate",
    "ConnectionID",
    "ConnectionListItem",
    "DeviceCategory",
    "DeviceEntry",
    "DeviceIdentifier",
    "DeviceKind",
    "EventCause",
    "ForwardListItem",
    "ForwardingType",
    "LocalConnectionState",
    "PassThroughEnum",
    "SnapshotCallResponseInfo",
    "SnapshotDeviceResponseInfo",
    "SystemStatusValue",
    "xml_meta",
]


def xml_meta(
    tag: str | None = None,
    *,
    path: tuple[str, ...] = (),
    item: str | None = None,
    aliases: tuple[str, ...] = (),
) -> dict[str, object]:
    """Field metadata for the codec.

    ``tag``: element name when it is not the camelCase of the field name; ``path``: wrapper
    elements between the parent and the element; ``item``: name of the repeated element inside
    a list element (``tuple`` fields); ``aliases``: other element names accepted on decode.
    A ``frozenset[str]`` field is a set of ``<name>true</name>`` leaves at any depth below it.
    """
    return {"xml": {"tag": tag, "path": path, "item": item, "aliases": aliases}}


class PassThroughEnum(enum.StrEnum):
    """Base of value enums: known values become members, unknown ones stay plain ``str``."""

    @classmethod
    def coerce(cls, value: str) -> Self | str:
        """The member for ``value`` if known, else ``value`` itself (never raises)."""
        try:
            return cls(value)
        except ValueError:
            return value


# --- identifiers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionID:
    """``<callID>`` + ``<deviceID>``; both opaque strings (snom sends callID ``-12``)."""

    call_id: str | None = None
    device_id: str | None = None


DeviceKind = Literal["deviceIdentifier", "notKnown", "notRequired", "restricted"]


@dataclass(frozen=True, slots=True)
class DeviceIdentifier:
    """A device as events carry it: ``<x><deviceIdentifier>v</deviceIdentifier></x>`` or
    ``<x><notKnown/></x>`` (also ``notRequired``, ``restricted``).

    Plain-text ``<x>v</x>`` (some phones) decodes as ``kind="deviceIdentifier"``.
    """

    value: str | None = None
    kind: DeviceKind = "deviceIdentifier"

    @classmethod
    def not_known(cls) -> DeviceIdentifier:
        return cls(None, "notKnown")

    @classmethod
    def restricted(cls) -> DeviceIdentifier:
        return cls(None, "restricted")

    @property
    def is_known(self) -> bool:
        return self.kind == "deviceIdentifier" and self.value is not None


# --- enumerations ----------------------------------------------------------------------------


class LocalConnectionState(PassThroughEnum):
    NULL = "null"
    INITIATED = "initiated"
    ALERTING = "alerting"
    CONNECTED = "connected"
    HOLD = "hold"
    QUEUED = "queued"
    FAIL = "fail"


class EventCause(PassThroughEnum):
    """ECMA-269 §12.2.13 event causes (the common ones; others pass through as ``str``)."""

    ACD_BUSY = "acdBusy"
    ACD_FORWARD = "acdForward"
    ALERT_TIME_EXPIRED = "alertTimeExpired"
    ALTERNATE = "alternate"
    BLOCKED = "blocked"
    BUSY = "busy"
    CALL_BACK = "callBack"
    CALL_CANCELLED = "callCancelled"
    CALL_FORWARD = "callForward"
    CALL_FORWARD_BUSY = "callForwardBusy"
    CALL_FORWARD_IMMEDIATE = "callForwardImmediate"
    CALL_FORWARD_NO_ANSWER = "callForwardNoAnswer"
    CALL_NOT_ANSWERED = "callNotAnswered"
    CALL_PICKUP = "callPickup"
    CAMP_ON = "campOn"
    CONFERENCE = "conference"
    CONSULTATION = "consultation"
    DEST_NOT_OBTAINABLE = "destNotObtainable"
    DEST_OUT_OF_ORDER = "destOutOfOrder"
    DISTRIBUTED = "distributed"
    DO_NOT_DISTURB = "doNotDisturb"
    INCOMPATIBLE_DESTINATION = "incompatibleDestination"
    INVALID_ACCOUNT_CODE = "invalidAccountCode"
    INVALID_NUMBER_FORMAT = "invalidNumberFormat"
    KEY_OPERATION = "keyOperation"
    LOCKOUT = "lockout"
    MAINTENANCE = "maintenance"
    MAKE_CALL = "makeCall"
    NETWORK_CONGESTION = "networkCongestion"
    NETWORK_NOT_OBTAINABLE = "networkNotObtainable"
    NETWORK_OUT_OF_ORDER = "networkOutOfOrder"
    NETWORK_REACHED = "networkReached"
    NETWORK_SIGNAL = "networkSignal"
    NEW_CALL = "newCall"
    NO_AVAILABLE_AGENTS = "noAvailableAgents"
    NORMAL = "normal"
    NORMAL_CLEARING = "normalClearing"
    NUMBER_CHANGED = "numberChanged"
    NUMBER_UNALLOCATED = "numberUnallocated"
    OVERFLOW = "overflow"
    PARK = "park"
    RECALL = "recall"
    REDIRECTED = "redirected"
    REORDER_TONE = "reorderTone"
    RESOURCES_NOT_AVAILABLE = "resourcesNotAvailable"
    SINGLE_STEP_CONFERENCE = "singleStepConference"
    SINGLE_STEP_TRANSFER = "singleStepTransfer"
    SWITCHING_FUNCTION_TERMINATED = "switchingFunctionTerminated"
    TIMEOUT = "timeout"
    TRANSFER = "transfer"
    TRUNKS_BUSY = "trunksBusy"


class ForwardingType(PassThroughEnum):
    FORWARD_IMMEDIATE = "forwardImmediate"
    FORWARD_BUSY = "forwardBusy"
    FORWARD_NO_ANS = "forwardNoAns"
    FORWARD_BUSY_INT = "forwardBusyInt"
    FORWARD_BUSY_EXT = "forwardBusyExt"
    FORWARD_NO_ANS_INT = "forwardNoAnsInt"
    FORWARD_NO_ANS_EXT = "forwardNoAnsExt"
    FORWARD_IMM_INT = "forwardImmInt"
    FORWARD_IMM_EXT = "forwardImmExt"
    FORWARD_DND = "forwardDND"
    FORWARD_DND_INT = "forwardDNDInt"
    FORWARD_DND_EXT = "forwardDNDExt"


class SystemStatusValue(PassThroughEnum):
    INITIALIZING = "initializing"
    ENABLED = "enabled"
    NORMAL = "normal"
    MESSAGES_LOST = "messagesLost"
    DISABLED = "disabled"
    PARTIALLY_DISABLED = "partiallyDisabled"
    OVERLOAD_IMMINENT = "overloadImminent"
    OVERLOAD_REACHED = "overloadReached"
    OVERLOAD_RELIEVED = "overloadRelieved"


class DeviceCategory(PassThroughEnum):
    ACD = "acd"
    GROUP = "group"
    NETWORK_INTERFACE = "networkInterface"
    PARK = "park"
    ROUTING_DEVICE = "routingDevice"
    STATION = "station"
    VOICE_UNIT = "voiceUnit"
    OTHER = "other"


class AutoOriginate(PassThroughEnum):
    PROMPT = "prompt"
    DO_NOT_PROMPT = "doNotPrompt"


# --- nested structures -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ForwardListItem:
    """One ``forwardListItem`` of GetForwardingResponse."""

    forwarding_type: ForwardingType | str | None = None
    forward_status: bool | None = None
    forward_dn: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceEntry:
    """One ``deviceEntry`` of SwitchingFunctionDevices (a line/identity of the phone)."""

    device_id: str | None = None
    device_category: DeviceCategory | str | None = None
    device_model: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotDeviceResponseInfo:
    """One call at the device: its connection and the device's connection state."""

    connection_identifier: ConnectionID | None = None
    local_connection_state: LocalConnectionState | str | None = field(
        default=None, metadata=xml_meta(path=("localCallState", "compoundCallState"))
    )
    simple_call_state: str | None = field(
        default=None,
        metadata=xml_meta(path=("localCallState",), aliases=("simpleCallDetailedState",)),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotCallResponseInfo:
    """One device on the call."""

    device_on_call: DeviceIdentifier | None = None
    call_identifier: ConnectionID | None = None
    local_connection_state: LocalConnectionState | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionListItem:
    """Old/new connection pair after a transfer or conference."""

    new_connection: ConnectionID | None = None
    old_connection: ConnectionID | None = None
    endpoint: DeviceIdentifier | None = None
