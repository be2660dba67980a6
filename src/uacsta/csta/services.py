"""One registry of the CSTA services and events uacsta models, keyed by message class.

Every fact about a service lives here once: its request and response classes, who answers it
(the switching function itself, the phone it is relayed to, or the client the switching
function sends it to), the fields naming the device it addresses (routing), and the ECMA-269
service group GetCSTAFeaturesResponse lists it under. The switching function, the router and
the vendor profiles look services up here instead of keeping string lists of their own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from uacsta.csta import messages as m

FieldKind = Literal["device", "connection"]
#: Fields naming the subject device of a request; the first present one routes it.
SubjectFields = tuple[tuple[str, FieldKind], ...]


class AnsweredBy(enum.Enum):
    """Who answers a service's request."""

    #: The switching function, from its own state (never relayed).
    SWITCH = "switch"
    #: The phone owning the subject device: the switching function relays it.
    PHONE = "phone"
    #: A client: the switching function sends it (the client answers, if at all).
    CLIENT = "client"


class ServiceGroup(enum.Enum):
    """ECMA-269 service groups, by the GetCSTAFeaturesResponse list naming them."""

    CAPABILITY_EXCHANGE = "capExchangeServList"
    SYSTEM_STATUS = "systemStatServList"
    MONITORING = "monitoringServList"
    SNAPSHOT = "snapshotServList"
    CALL_CONTROL = "callControlServList"
    CALL_ASSOCIATED = "callAssociatedServList"
    PHYSICAL_DEVICE = "physDevServList"
    LOGICAL_DEVICE = "logicalServList"


@dataclass(frozen=True, kw_only=True, slots=True)
class Service:
    request: type[m.CstaRequest]
    response: type[m.CstaResponse] | None
    group: ServiceGroup
    answered_by: AnsweredBy
    subject: SubjectFields = ()
    #: A phone may be asked for it, so a vendor profile offers or refuses it.
    phone_may_offer: bool = True

    @property
    def name(self) -> str:
        """The request's root element name (``MakeCall``)."""
        return self.request.xml_name()

    @property
    def feature_name(self) -> str:
        """The name GetCSTAFeaturesResponse carries (``makeCall``)."""
        return _camel(self.name)


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    event: type[m.CstaEvent]
    #: The switching function relays it from phones to monitoring clients.
    relayed: bool

    @property
    def name(self) -> str:
        """The event's name without ``Event`` (``Delivered``), as features list it."""
        return self.event.__name__.removesuffix("Event")

    @property
    def feature_name(self) -> str:
        return _camel(self.name)


def _camel(name: str) -> str:
    return name[0].lower() + name[1:]


_G = ServiceGroup
_SW, _PH, _CL = AnsweredBy.SWITCH, AnsweredBy.PHONE, AnsweredBy.CLIENT
_TWO_CALLS: SubjectFields = (("active_call", "connection"), ("held_call", "connection"))


def _relayed(
    request: type[m.CstaRequest], group: ServiceGroup, *subject: tuple[str, FieldKind]
) -> Service:
    return Service(
        request=request,
        response=m.response_class_for(request),
        group=group,
        answered_by=_PH,
        subject=subject,
    )


def _own(
    request: type[m.CstaRequest],
    group: ServiceGroup,
    answered_by: AnsweredBy = _SW,
    *,
    phone_may_offer: bool = True,
) -> Service:
    return Service(
        request=request,
        response=m.response_class_for(request),
        group=group,
        answered_by=answered_by,
        phone_may_offer=phone_may_offer and answered_by is not _CL,
    )


_SERVICES: tuple[Service, ...] = (
    _relayed(m.MakeCall, _G.CALL_CONTROL, ("calling_device", "device")),
    _relayed(m.AnswerCall, _G.CALL_CONTROL, ("call_to_be_answered", "connection")),
    _relayed(m.ClearConnection, _G.CALL_CONTROL, ("connection_to_be_cleared", "connection")),
    _relayed(m.ClearCall, _G.CALL_CONTROL, ("call_to_be_cleared", "connection")),
    _relayed(m.HoldCall, _G.CALL_CONTROL, ("call_to_be_held", "connection")),
    _relayed(m.RetrieveCall, _G.CALL_CONTROL, ("call_to_be_retrieved", "connection")),
    _relayed(m.AlternateCall, _G.CALL_CONTROL, *_TWO_CALLS),
    _relayed(m.ConferenceCall, _G.CALL_CONTROL, *_TWO_CALLS),
    _relayed(m.TransferCall, _G.CALL_CONTROL, *_TWO_CALLS),
    _relayed(m.ConsultationCall, _G.CALL_CONTROL, ("existing_call", "connection")),
    _relayed(m.DeflectCall, _G.CALL_CONTROL, ("call_to_be_diverted", "connection")),
    _relayed(m.DialDigits, _G.CALL_CONTROL, ("dialling_connection", "connection")),
    _relayed(m.DirectedPickupCall, _G.CALL_CONTROL, ("requesting_device", "device")),
    _relayed(m.ReconnectCall, _G.CALL_CONTROL, *_TWO_CALLS),
    _relayed(m.SingleStepConferenceCall, _G.CALL_CONTROL, ("active_call", "connection")),
    _relayed(m.SingleStepTransferCall, _G.CALL_CONTROL, ("active_call", "connection")),
    _relayed(m.GenerateDigits, _G.CALL_ASSOCIATED, ("connection_to_send_digits", "connection")),
    _relayed(m.GetDoNotDisturb, _G.LOGICAL_DEVICE, ("device", "device")),
    _relayed(m.SetDoNotDisturb, _G.LOGICAL_DEVICE, ("device", "device")),
    _relayed(m.GetForwarding, _G.LOGICAL_DEVICE, ("device", "device")),
    _relayed(m.SetForwarding, _G.LOGICAL_DEVICE, ("device", "device")),
    _relayed(m.GetMessageWaitingIndicator, _G.PHYSICAL_DEVICE, ("device", "device")),
    _relayed(m.SetMessageWaitingIndicator, _G.PHYSICAL_DEVICE, ("device", "device")),
    _own(m.MonitorStart, _G.MONITORING),
    _own(m.MonitorStop, _G.MONITORING),
    _relayed(m.SnapshotDevice, _G.SNAPSHOT, ("snapshot_object", "device")),
    _relayed(m.SnapshotCall, _G.SNAPSHOT, ("snapshot_object", "connection")),
    _own(m.SystemRegister, _G.SYSTEM_STATUS),
    _own(m.SystemRegisterCancel, _G.SYSTEM_STATUS),
    _own(m.RequestSystemStatus, _G.SYSTEM_STATUS),
    _own(m.GetSwitchingFunctionDevices, _G.CAPABILITY_EXCHANGE),
    _relayed(m.GetLogicalDeviceInformation, _G.CAPABILITY_EXCHANGE, ("device", "device")),
    _relayed(m.GetPhysicalDeviceInformation, _G.CAPABILITY_EXCHANGE, ("device", "device")),
    # About uacsta itself: a phone is never asked for it.
    _own(m.GetCSTAFeatures, _G.CAPABILITY_EXCHANGE, phone_may_offer=False),
    # Sent by the switching function to clients.
    _own(m.SwitchingFunctionDevices, _G.CAPABILITY_EXCHANGE, _CL),
    _own(m.SystemStatus, _G.SYSTEM_STATUS, _CL),
    _own(m.SystemRegisterAbort, _G.SYSTEM_STATUS, _CL),
    _own(m.SwFunctionDevicesChanged, _G.SYSTEM_STATUS, _CL),
)

#: Every modelled CSTA service by its request class.
SERVICES: Mapping[type[m.CstaRequest], Service] = MappingProxyType(
    {s.request: s for s in _SERVICES}
)

_RELAYED_EVENT_CLASSES: tuple[type[m.CstaEvent], ...] = (
    m.CallClearedEvent,
    m.ConferencedEvent,
    m.ConnectionClearedEvent,
    m.DeliveredEvent,
    m.DigitsDialedEvent,
    m.DivertedEvent,
    m.EstablishedEvent,
    m.FailedEvent,
    m.HeldEvent,
    m.NetworkCapabilitiesChangedEvent,
    m.NetworkReachedEvent,
    m.OfferedEvent,
    m.OriginatedEvent,
    m.QueuedEvent,
    m.RetrievedEvent,
    m.ServiceInitiatedEvent,
    m.TransferredEvent,
    m.DigitsGeneratedEvent,
    m.MessageWaitingEvent,
    m.DoNotDisturbEvent,
    m.ForwardingEvent,
    m.BackInServiceEvent,
    m.OutOfServiceEvent,
    m.MonitorEndedEvent,
)
_EVENTS: tuple[Event, ...] = (
    *(Event(event=cls, relayed=True) for cls in _RELAYED_EVENT_CLASSES),
    Event(event=m.CallInformationEvent, relayed=False),
)

#: Every modelled CSTA event by its class.
EVENTS: Mapping[type[m.CstaEvent], Event] = MappingProxyType({e.event: e for e in _EVENTS})

# --- views derived from the registry ------------------------------------------------------------

#: request class → fields naming its subject device, for every service relayed to phones.
SUBJECT_FIELDS: Mapping[type[m.CstaRequest], SubjectFields] = MappingProxyType(
    {s.request: s.subject for s in _SERVICES if s.answered_by is AnsweredBy.PHONE}
)
#: Names of the services the switching function answers itself (never relayed).
SWITCH_SERVICES: tuple[str, ...] = tuple(
    s.name for s in _SERVICES if s.answered_by is AnsweredBy.SWITCH
)
#: Names of the services relayed to phones.
RELAYED_SERVICES: tuple[str, ...] = tuple(c.xml_name() for c in SUBJECT_FIELDS)
#: Every service a phone may be asked for (a vendor profile narrows it).
PHONE_SERVICES: tuple[str, ...] = tuple(s.name for s in _SERVICES if s.phone_may_offer)
#: Names of the events relayed from phones to monitoring clients.
RELAYED_EVENTS: tuple[str, ...] = tuple(e.name for e in _EVENTS if e.relayed)
