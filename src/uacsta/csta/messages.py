"""Typed ECMA-323 messages: requests, positive responses, events, CSTAErrorCode.

Owns the message model of uacsta (ECMA-269 services, XML names from ECMA-323 §§10-22): one
frozen dataclass per document root, named as the standard names the root element, fields the
snake_case of the child element names (``monitorCrossRefID`` -> ``monitor_cross_ref_id``).
The XML mapping lives in :mod:`uacsta.csta.codec`; this module only declares the shapes.

Decoding is tolerant (ARCHITECTURE convention 5): every field is optional and ``None`` (or an
empty tuple) when its element is absent, so a phone that leaves out a mandatory element still
yields a message; checking what a service needs is the consumer's job. A value that is present
but unreadable as its type (``<doNotDisturbOn>maybe</doNotDisturbOn>``) makes the whole document
a :class:`~uacsta.csta.errors.CstaDecodeError`. Every message keeps its ``<extensions>``
(private data) as raw XML bytes so a relay never loses vendor data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from uacsta.csta.errorcodes import ErrorCategory, coerce_error_value
from uacsta.csta.types import (
    REDIRECTION_DEVICE,
    AppearanceType,
    AutoOriginate,
    ConnectionID,
    ConnectionListItem,
    DeviceCategory,
    DeviceEntry,
    DeviceIdentifier,
    DigitMode,
    EventCause,
    ForwardDefault,
    ForwardingType,
    ForwardListItem,
    LocalConnectionState,
    MonitorType,
    ParticipationType,
    PassThroughEnum,
    ProgressDescription,
    ProgressLocation,
    ReqDeviceCategory,
    SnapshotCallResponseInfo,
    SnapshotDeviceResponseInfo,
    SystemStatusValue,
    xml_meta,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CstaMessage:
    """Base of every CSTA document.

    ``extensions`` is the whole ``<extensions>`` element as UTF-8 XML, with CSTA-namespace
    elements unqualified (so it can be re-emitted in any edition) and vendor namespaces kept.
    """

    XML_ALIASES: ClassVar[tuple[str, ...]] = ()
    #: False for uacsta's own notices that the codec writes as another (standard) message.
    ON_THE_WIRE: ClassVar[bool] = True

    extensions: bytes | None = None

    @classmethod
    def xml_name(cls) -> str:
        """The root element name (the class name, as in ECMA-323)."""
        return cls.__name__


@dataclass(frozen=True, kw_only=True, slots=True)
class CstaRequest(CstaMessage):
    """A service request (from the application, or from the switching function for SF services)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CstaResponse(CstaMessage):
    """A positive response, or :class:`CSTAErrorCode` for a negative one."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CstaEvent(CstaMessage):
    """An unsolicited event, tied to a monitor by ``monitor_cross_ref_id``."""

    monitor_cross_ref_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownMessage(CstaMessage):
    """A document whose root is not modelled; kept verbatim so it can be relayed or logged."""

    name: str
    xml: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class CSTAErrorCode(CstaResponse):
    """Negative response: ``<CSTAErrorCode><category>value</category></CSTAErrorCode>``.

    ``value`` is the category's enum member when known (old spellings map to the ECMA-285
    value), else the string the peer sent, or ``None`` for ``<unspecified/>``. snom sends the
    value as an empty element (``<operation><invalidDeviceID/></operation>``).
    """

    category: ErrorCategory | str = ErrorCategory.UNSPECIFIED
    value: PassThroughEnum | str | None = None

    @classmethod
    def of(cls, category: str, value: str | None = None) -> CSTAErrorCode:
        cat = ErrorCategory.coerce(category)
        return cls(category=cat, value=None if value is None else coerce_error_value(cat, value))

    @classmethod
    def operation(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.OPERATION, value)

    @classmethod
    def security(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.SECURITY, value)

    @classmethod
    def state_incompatibility(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.STATE_INCOMPATIBILITY, value)

    @classmethod
    def system_resource_availability(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.SYSTEM_RESOURCE_AVAILABILITY, value)

    @classmethod
    def subscribed_resource_availability(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.SUBSCRIBED_RESOURCE_AVAILABILITY, value)

    @classmethod
    def performance_management(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.PERFORMANCE_MANAGEMENT, value)

    @classmethod
    def private_data(cls, value: str = "generic") -> CSTAErrorCode:
        return cls.of(ErrorCategory.PRIVATE_DATA, value)

    @classmethod
    def unspecified(cls) -> CSTAErrorCode:
        return cls(category=ErrorCategory.UNSPECIFIED, value=None)

    @classmethod
    def timeout(cls) -> CSTAErrorCode:
        """What uacsta answers when a phone never responds in time.

        ECMA-285 has no timeout value: the phone is a resource that did not serve the request,
        so ``systemResourceAvailability/resourceOutOfService``.
        """
        return cls.of(ErrorCategory.SYSTEM_RESOURCE_AVAILABILITY, "resourceOutOfService")

    @classmethod
    def out_of_service(cls) -> CSTAErrorCode:
        """What uacsta answers when the phone behind a device has no working link."""
        return cls.of(ErrorCategory.SYSTEM_RESOURCE_AVAILABILITY, "deviceOutOfService")

    @property
    def is_timeout(self) -> bool:
        return self.category == ErrorCategory.SYSTEM_RESOURCE_AVAILABILITY and (
            self.value == "resourceOutOfService"
        )

    @property
    def is_out_of_service(self) -> bool:
        return self.category == ErrorCategory.SYSTEM_RESOURCE_AVAILABILITY and (
            self.value == "deviceOutOfService"
        )

    @property
    def is_unspecified(self) -> bool:
        return self.category == ErrorCategory.UNSPECIFIED


# --- Capability exchange services (ECMA-269 §13) -----------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class GetCSTAFeatures(CstaRequest):
    """Asks which services and events the switching function supports."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GetCSTAFeaturesResponse(CstaResponse):
    """Supported services/events as flat name sets (``"makeCall" in r.supported_services``).

    Names are the lowerCamel message names (``singleStepTransferCall``, ``networkReached``).
    On the wire each is an element of its ECMA-285 category list, under the flag name of the
    ASN.1 (``<callControlServList><singleStepTransfer/>``, ``<callControlEvtsList>
    <netwReached/>``), lists and flags in ASN.1 order; names the standard has no flag for are
    left out. Decoding also reads the older ``<makeCall>true</makeCall>`` leaves at any depth.
    """

    supported_services: frozenset[str] = field(
        default=frozenset(), metadata=xml_meta(required=True)
    )
    supported_events: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class GetLogicalDeviceInformation(CstaRequest):
    """Asks for the logical capabilities of one device."""

    device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetLogicalDeviceInformationResponse(CstaResponse):
    """Positive answer to GetLogicalDeviceInformation."""

    device_category: DeviceCategory | str | None = None
    has_physical_element: bool | None = None
    visible_acd_related_devices: bool | None = field(
        default=None, metadata=xml_meta("visibleACDRelatedDevices", path=("acdModels",))
    )
    non_visible_acd_related_devices: bool | None = field(
        default=None, metadata=xml_meta("nonVisibleACDRelatedDevices", path=("acdModels",))
    )
    appearance_addressable: bool | None = None
    appearance_type: AppearanceType | str | None = None
    max_active_calls: int | None = None
    max_held_calls: int | None = None
    max_fwd_settings: int | None = None
    max_devices_in_conf: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetPhysicalDeviceInformation(CstaRequest):
    """Asks for the physical device behind a device ID."""

    device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetPhysicalDeviceInformationResponse(CstaResponse):
    """Positive answer to GetPhysicalDeviceInformation."""

    device_category: DeviceCategory | str | None = None
    has_logical_element: bool | None = None
    device_model_name: str | None = field(default=None, metadata=xml_meta(aliases=("deviceModel",)))


@dataclass(frozen=True, kw_only=True, slots=True)
class GetSwitchingFunctionDevices(CstaRequest):
    """Asks the phone for its identities (answered, then a SwitchingFunctionDevices)."""

    requested_device_id: str | None = None
    requested_device_category: ReqDeviceCategory | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetSwitchingFunctionDevicesResponse(CstaResponse):
    """Positive answer to GetSwitchingFunctionDevices."""

    service_cross_ref_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchingFunctionDevices(CstaRequest):
    """The phone's list of identities (lines), possibly in segments.

    Items are written ``<deviceEntry>``; ``<device>`` (Yealink firmware) is read as well.
    """

    service_cross_ref_id: str | None = None
    segment_id: int | None = None
    last_segment: bool | None = None
    device_list: tuple[DeviceEntry, ...] = field(
        default=(),
        metadata=xml_meta(item="deviceEntry", item_aliases=("device",), required=True),
    )


# --- System services (ECMA-269 §14) ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemRegister(CstaRequest):
    """Subscribes to system status / device-list change notifications."""

    system_status: bool | None = field(default=None, metadata=xml_meta(path=("requestTypes",)))
    request_system_status: bool | None = field(
        default=None, metadata=xml_meta(path=("requestTypes",))
    )
    switching_function_caps_changed: bool | None = field(
        default=None, metadata=xml_meta(path=("requestTypes",))
    )
    switching_function_devices_changed: bool | None = field(
        default=None, metadata=xml_meta(path=("requestTypes",))
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemRegisterResponse(CstaResponse):
    """Positive answer to SystemRegister."""

    sys_stat_register_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemRegisterCancel(CstaRequest):
    """Ends a SystemRegister subscription."""

    sys_stat_register_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemRegisterCancelResponse(CstaResponse):
    """Positive answer to SystemRegisterCancel."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemRegisterAbort(CstaRequest):
    """The switching function ended a SystemRegister subscription."""

    sys_stat_register_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestSystemStatus(CstaRequest):
    """Asks for the system status; also the TR/87 INVITE body and keep-alive."""

    sys_stat_register_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestSystemStatusResponse(CstaResponse):
    """Positive answer to RequestSystemStatus."""

    system_status: SystemStatusValue | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemStatus(CstaRequest):
    """The switching function reports its status."""

    sys_stat_register_id: str | None = None
    system_status: SystemStatusValue | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemStatusResponse(CstaResponse):
    """Positive answer to SystemStatus."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SwFunctionDevicesChanged(CstaRequest):
    """The phone's identities changed; the application re-reads them.

    ECMA-269 names it SwFunctionDevicesChanged (Yealink sends that); the spelled-out
    ``SwitchingFunctionDevicesChanged`` is accepted on decode.
    """

    XML_ALIASES: ClassVar[tuple[str, ...]] = ("SwitchingFunctionDevicesChanged",)

    sys_stat_register_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SwFunctionDevicesChangedResponse(CstaResponse):
    """Positive answer to SwFunctionDevicesChanged."""


# --- Monitoring services (ECMA-269 §15) --------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class MonitorStart(CstaRequest):
    """Starts a monitor on a device (or a call)."""

    monitor_object: str | None = field(
        default=None, metadata=xml_meta("deviceObject", path=("monitorObject",))
    )
    monitor_call_object: ConnectionID | None = field(
        default=None, metadata=xml_meta("callObject", path=("monitorObject",))
    )
    requested_monitor_filter: frozenset[str] = frozenset()
    monitor_type: MonitorType | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MonitorStartResponse(CstaResponse):
    """Positive answer to MonitorStart.

    ``actual_monitor_filter`` (like MonitorStart's ``requested_monitor_filter``) holds the
    filtered events' flag names; on the wire each sits in its MonitorFilter wrapper
    (``<callControl><delivered>true</delivered></callControl>``, ``<logicalDeviceFeature>``...).
    """

    monitor_cross_ref_id: str | None = None
    actual_monitor_filter: frozenset[str] = frozenset()
    monitor_existing_calls: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MonitorStop(CstaRequest):
    """Stops a monitor; the switching function may also send it."""

    monitor_cross_ref_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MonitorStopResponse(CstaResponse):
    """Positive answer to MonitorStop."""


# --- Snapshot services (ECMA-269 §16) ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotDevice(CstaRequest):
    """Asks for the calls currently at a device (``SnapShotDevice`` is read too)."""

    XML_ALIASES: ClassVar[tuple[str, ...]] = ("SnapShotDevice",)

    snapshot_object: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotDeviceResponse(CstaResponse):
    """The calls at the device (``snapshotData``) or a cross-ref for segmented delivery."""

    service_cross_ref_id: str | None = field(
        default=None, metadata=xml_meta(path=("crossRefIDorSnapshotData",))
    )
    snapshot_data: tuple[SnapshotDeviceResponseInfo, ...] = field(
        default=(),
        metadata=xml_meta(
            path=("crossRefIDorSnapshotData",), item="snapshotDeviceResponseInfo", required=True
        ),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotCall(CstaRequest):
    """Asks for the devices on a call."""

    snapshot_object: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotCallResponse(CstaResponse):
    """Positive answer to SnapshotCall."""

    service_cross_ref_id: str | None = field(
        default=None, metadata=xml_meta(path=("crossRefIDorSnapshotData",))
    )
    snapshot_data: tuple[SnapshotCallResponseInfo, ...] = field(
        default=(),
        metadata=xml_meta(
            path=("crossRefIDorSnapshotData",), item="snapshotCallResponseInfo", required=True
        ),
    )


# --- Call control services (ECMA-269 §17) ------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AlternateCall(CstaRequest):
    """Holds the active call and retrieves the held one in one step."""

    held_call: ConnectionID | None = None
    active_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AlternateCallResponse(CstaResponse):
    """Positive answer to AlternateCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerCall(CstaRequest):
    """Answers an alerting call."""

    call_to_be_answered: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AnswerCallResponse(CstaResponse):
    """Positive answer to AnswerCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ClearCall(CstaRequest):
    """Releases every connection of a call."""

    call_to_be_cleared: ConnectionID | None = None
    reason: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClearCallResponse(CstaResponse):
    """Positive answer to ClearCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ClearConnection(CstaRequest):
    """Releases one connection (hang up)."""

    connection_to_be_cleared: ConnectionID | None = None
    reason: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClearConnectionResponse(CstaResponse):
    """Positive answer to ClearConnection."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ConferenceCall(CstaRequest):
    """Joins a held and an active call."""

    held_call: ConnectionID | None = None
    active_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConferenceCallResponse(CstaResponse):
    """Positive answer to ConferenceCall."""

    conference_call: ConnectionID | None = None
    connections: tuple[ConnectionListItem, ...] = field(
        default=(), metadata=xml_meta(item="connectionListItem")
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsultationCall(CstaRequest):
    """Holds a call and calls another device."""

    existing_call: ConnectionID | None = None
    consulted_device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsultationCallResponse(CstaResponse):
    """Positive answer to ConsultationCall."""

    initiated_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeflectCall(CstaRequest):
    """Diverts an alerting call elsewhere.

    ``newDestination`` is a DeviceID: its text. Yealink firmware reads it from a child
    ``<newDestination><device>X</device></newDestination>``; both are read, and the codec
    writes the child form for :attr:`~uacsta.csta.codec.Dialect.YEALINK`.
    """

    call_to_be_diverted: ConnectionID | None = None
    new_destination: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeflectCallResponse(CstaResponse):
    """Positive answer to DeflectCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DialDigits(CstaRequest):
    """Dials further digits on an initiated call."""

    dialling_connection: ConnectionID | None = field(
        default=None, metadata=xml_meta(aliases=("callToBeDialed",))
    )
    dialling_sequence: str | None = field(
        default=None, metadata=xml_meta(aliases=("dialingSequence",))
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class DialDigitsResponse(CstaResponse):
    """Positive answer to DialDigits."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectedPickupCall(CstaRequest):
    """Picks up a call alerting at another device."""

    call_to_be_picked_up: ConnectionID | None = None
    requesting_device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectedPickupCallResponse(CstaResponse):
    """Positive answer to DirectedPickupCall."""

    picked_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HoldCall(CstaRequest):
    """Puts a connection on hold."""

    call_to_be_held: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HoldCallResponse(CstaResponse):
    """Positive answer to HoldCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MakeCall(CstaRequest):
    """Originates a call from a device."""

    calling_device: str | None = None
    called_directory_number: str | None = None
    account_code: str | None = None
    auto_originate: AutoOriginate | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MakeCallResponse(CstaResponse):
    """The originating connection of the new call."""

    calling_device: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconnectCall(CstaRequest):
    """Clears the active call and retrieves the held one."""

    active_call: ConnectionID | None = None
    held_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconnectCallResponse(CstaResponse):
    """Positive answer to ReconnectCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RetrieveCall(CstaRequest):
    """Takes a call off hold."""

    call_to_be_retrieved: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RetrieveCallResponse(CstaResponse):
    """Positive answer to RetrieveCall."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SingleStepConferenceCall(CstaRequest):
    """Adds a device to an existing call."""

    active_call: ConnectionID | None = None
    device_to_join: str | None = None
    participation_type: ParticipationType | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SingleStepConferenceCallResponse(CstaResponse):
    """Positive answer to SingleStepConferenceCall."""

    conferenced_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SingleStepTransferCall(CstaRequest):
    """Transfers a call blindly."""

    active_call: ConnectionID | None = None
    transferred_to: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SingleStepTransferCallResponse(CstaResponse):
    """Positive answer to SingleStepTransferCall."""

    transferred_call: ConnectionID | None = None
    connections: tuple[ConnectionListItem, ...] = field(
        default=(), metadata=xml_meta(item="connectionListItem")
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferCall(CstaRequest):
    """Connects the held call with the active (consultation) call."""

    held_call: ConnectionID | None = None
    active_call: ConnectionID | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferCallResponse(CstaResponse):
    """Positive answer to TransferCall."""

    transferred_call: ConnectionID | None = None
    connections: tuple[ConnectionListItem, ...] = field(
        default=(), metadata=xml_meta(item="connectionListItem")
    )


# --- Call associated services (ECMA-269 §18) ---------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class GenerateDigits(CstaRequest):
    """Sends DTMF on a connection."""

    connection_to_send_digits: ConnectionID | None = None
    digit_mode: DigitMode | str | None = None
    characters_to_send: str | None = field(default=None, metadata=xml_meta(aliases=("charToSend",)))
    tone_duration: int | None = None
    pulse_rate: int | None = None
    pause_duration: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GenerateDigitsResponse(CstaResponse):
    """Positive answer to GenerateDigits."""


# --- Physical device services (ECMA-269 §21) ---------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class GetMessageWaitingIndicator(CstaRequest):
    """Reads the message-waiting lamp."""

    device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetMessageWaitingIndicatorResponse(CstaResponse):
    """Positive answer to GetMessageWaitingIndicator."""

    message_waiting_on: bool | None = None
    device_for_message: str | None = None
    lamp_is_present: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SetMessageWaitingIndicator(CstaRequest):
    """Sets the message-waiting lamp."""

    device: str | None = None
    message_waiting_on: bool | None = None
    device_for_message: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SetMessageWaitingIndicatorResponse(CstaResponse):
    """Positive answer to SetMessageWaitingIndicator."""


# --- Logical device services (ECMA-269 §22) ----------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class GetDoNotDisturb(CstaRequest):
    """Reads do-not-disturb."""

    device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetDoNotDisturbResponse(CstaResponse):
    """Positive answer to GetDoNotDisturb."""

    do_not_disturb_on: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SetDoNotDisturb(CstaRequest):
    """Sets do-not-disturb."""

    device: str | None = None
    do_not_disturb_on: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SetDoNotDisturbResponse(CstaResponse):
    """Positive answer to SetDoNotDisturb."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GetForwarding(CstaRequest):
    """Reads the forwarding settings."""

    device: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GetForwardingResponse(CstaResponse):
    """Positive answer to GetForwarding."""

    forwarding_list: tuple[ForwardListItem, ...] = field(
        default=(), metadata=xml_meta(item="forwardListItem", required=True)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SetForwarding(CstaRequest):
    """Switches one forwarding type on or off."""

    device: str | None = None
    forwarding_type: ForwardingType | str | None = None
    activate_forward: bool | None = None
    forward_dn: str | None = None
    ring_count: int | None = None
    ring_duration: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SetForwardingResponse(CstaResponse):
    """Positive answer to SetForwarding."""


# --- Events (ECMA-269 §17.3, §18.3, §21.3, §22.3, §15.3) ----------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CallClearedEvent(CstaEvent):
    """A whole call ended."""

    cleared_call: ConnectionID | None = None
    correlator_data: str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConferencedEvent(CstaEvent):
    """Two calls were joined."""

    primary_old_call: ConnectionID | None = None
    secondary_old_call: ConnectionID | None = None
    conferencing_device: DeviceIdentifier | None = None
    added_party: DeviceIdentifier | None = None
    conference_connections: tuple[ConnectionListItem, ...] = field(
        default=(), metadata=xml_meta(item="connectionListItem", required=True)
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionClearedEvent(CstaEvent):
    """A device left a call."""

    dropped_connection: ConnectionID | None = None
    releasing_device: DeviceIdentifier | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveredEvent(CstaEvent):
    """A call is alerting at a device."""

    connection: ConnectionID | None = None
    alerting_device: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    originating_nid_connection: ConnectionID | None = field(
        default=None, metadata=xml_meta("originatingNIDConnection")
    )
    local_connection_info: LocalConnectionState | str | None = None
    correlator_data: str | None = None
    cause: EventCause | str | None = None
    network_calling_device: DeviceIdentifier | None = None
    network_called_device: DeviceIdentifier | None = None
    associated_calling_device: DeviceIdentifier | None = None
    associated_called_device: DeviceIdentifier | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DigitsDialedEvent(CstaEvent):
    """Digits were dialled on an initiated call."""

    dialing_connection: ConnectionID | None = None
    dialing_device: DeviceIdentifier | None = None
    dialing_sequence: str | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DivertedEvent(CstaEvent):
    """A call left a device (deflection, forwarding, pickup)."""

    connection: ConnectionID | None = None
    diverting_device: DeviceIdentifier | None = None
    new_destination: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EstablishedEvent(CstaEvent):
    """A call was answered."""

    established_connection: ConnectionID | None = None
    answering_device: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    originating_nid_connection: ConnectionID | None = field(
        default=None, metadata=xml_meta("originatingNIDConnection")
    )
    local_connection_info: LocalConnectionState | str | None = None
    correlator_data: str | None = None
    cause: EventCause | str | None = None
    network_calling_device: DeviceIdentifier | None = None
    network_called_device: DeviceIdentifier | None = None
    associated_calling_device: DeviceIdentifier | None = None
    associated_called_device: DeviceIdentifier | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FailedEvent(CstaEvent):
    """A call could not be completed."""

    failed_connection: ConnectionID | None = None
    failing_device: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HeldEvent(CstaEvent):
    """A call was put on hold."""

    held_connection: ConnectionID | None = None
    holding_device: DeviceIdentifier | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkCapabilitiesChangedEvent(CstaEvent):
    """The network changed the capabilities of an outgoing call."""

    outbound_connection: ConnectionID | None = None
    network_interface_used: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    progress_location: ProgressLocation | str | None = field(
        default=None, metadata=xml_meta(path=("progressIndicator",))
    )
    progress_description: ProgressDescription | str | None = field(
        default=None, metadata=xml_meta(path=("progressIndicator",))
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkReachedEvent(CstaEvent):
    """An outgoing call left for the network."""

    outbound_connection: ConnectionID | None = None
    network_interface_used: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OfferedEvent(CstaEvent):
    """A call is offered to a device before alerting."""

    offered_connection: ConnectionID | None = None
    offered_device: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OriginatedEvent(CstaEvent):
    """A call was dialled from a device."""

    originated_connection: ConnectionID | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    originating_device: str | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class QueuedEvent(CstaEvent):
    """A call was queued."""

    queued_connection: ConnectionID | None = None
    queue: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    last_redirection_device: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=REDIRECTION_DEVICE)
    )
    number_queued: int | None = None
    calls_in_front: int | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RetrievedEvent(CstaEvent):
    """A call was taken off hold."""

    retrieved_connection: ConnectionID | None = None
    retrieving_device: DeviceIdentifier | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceInitiatedEvent(CstaEvent):
    """A device went off-hook / started a call."""

    initiated_connection: ConnectionID | None = None
    initiating_device: DeviceIdentifier | None = None
    called_device: DeviceIdentifier | None = None
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferredEvent(CstaEvent):
    """A call was transferred (``TransferedEvent``, as Yealink firmware spells it, is read too)."""

    XML_ALIASES: ClassVar[tuple[str, ...]] = ("TransferedEvent",)

    primary_old_call: ConnectionID | None = None
    secondary_old_call: ConnectionID | None = None
    transferring_device: DeviceIdentifier | None = None
    transferred_to_device: DeviceIdentifier | None = None
    transferred_connections: tuple[ConnectionListItem, ...] = field(
        default=(), metadata=xml_meta(item="connectionListItem", required=True)
    )
    local_connection_info: LocalConnectionState | str | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DigitsGeneratedEvent(CstaEvent):
    """DTMF was sent on a connection."""

    connection: ConnectionID | None = None
    digit_generated_list: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageWaitingEvent(CstaEvent):
    """The message-waiting indication changed."""

    target_device: DeviceIdentifier | None = None
    device_for_message: str | None = None
    message_waiting_on: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DoNotDisturbEvent(CstaEvent):
    """Do-not-disturb changed on the phone."""

    device: DeviceIdentifier | None = None
    do_not_disturb_on: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ForwardingEvent(CstaEvent):
    """A forwarding setting changed on the phone."""

    device: DeviceIdentifier | None = None
    forwarding_type: ForwardingType | str | None = None
    forward_status: bool | None = None
    forward_to: str | None = None
    forward_default: ForwardDefault | str | None = None
    ring_count: int | None = None
    ring_duration: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BackInServiceEvent(CstaEvent):
    """A monitored device works again (uacsta also sends it once a monitor exists)."""

    device: DeviceIdentifier | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OutOfServiceEvent(CstaEvent):
    """A monitored device stopped working."""

    device: DeviceIdentifier | None = None
    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MonitorEndedEvent(CstaEvent):
    """uacsta's notice that a monitor ended (the phone stopped it, the line went away).

    Not an ECMA-285 message (CSTA Phase II had a Monitor Ended event): in Phase III the
    switching function ends a monitor with a MonitorStop request, and that is what the codec
    writes for this notice (``monitorCrossRefID`` only). A ``MonitorEndedEvent`` root from an
    older peer is still read. Not in :data:`MESSAGE_CLASSES`, which lists the wire messages.
    """

    ON_THE_WIRE: ClassVar[bool] = False

    cause: EventCause | str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CallInformationEvent(CstaEvent):
    """Call-related information (account or authorisation code, correlator data) became
    known; OpenScape Voice sends it."""

    connection: ConnectionID | None = None
    device: DeviceIdentifier | None = None
    calling_device: DeviceIdentifier | None = None
    account_info: str | None = None
    auth_code: str | None = None
    correlator_data: str | None = None
    call_qualifying_data: str | None = None
    device_info: str | None = None


# --- Registry ----------------------------------------------------------------------------------


def _concrete_classes(on_the_wire: bool) -> dict[str, type[CstaMessage]]:
    found: dict[str, type[CstaMessage]] = {}
    stack: list[type[CstaMessage]] = [CstaRequest, CstaResponse, CstaEvent]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.ON_THE_WIRE is on_the_wire:
                found[sub.xml_name()] = sub
    return dict(sorted(found.items()))


#: Every modelled message class by its canonical root element name.
MESSAGE_CLASSES: dict[str, type[CstaMessage]] = _concrete_classes(True)
#: uacsta's notices written as a standard message (MonitorEndedEvent -> MonitorStop).
NOTICE_CLASSES: dict[str, type[CstaMessage]] = _concrete_classes(False)


def response_class_for(request_type: type[CstaRequest]) -> type[CstaResponse] | None:
    """The positive response class of a request class (``MakeCall`` -> ``MakeCallResponse``)."""
    cls = MESSAGE_CLASSES.get(request_type.xml_name() + "Response")
    if cls is not None and issubclass(cls, CstaResponse):
        return cls
    return None
