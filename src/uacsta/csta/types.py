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
from typing import Final, Literal, Self

__all__ = [
    "ASSOCIATED_NID",
    "ENDPOINT_DEVICE",
    "REDIRECTION_DEVICE",
    "SUBJECT_DEVICE",
    "AppearanceType",
    "AutoOriginate",
    "ConnectionID",
    "ConnectionListItem",
    "DeviceCategory",
    "DeviceChoice",
    "DeviceEntry",
    "DeviceIdentifier",
    "DeviceKind",
    "DigitMode",
    "EventCause",
    "ForwardDefault",
    "ForwardListItem",
    "ForwardingType",
    "LocalConnectionState",
    "MonitorType",
    "ParticipationType",
    "PassThroughEnum",
    "ProgressDescription",
    "ProgressLocation",
    "ReqDeviceCategory",
    "SimpleCallState",
    "SnapshotCallResponseInfo",
    "SnapshotDeviceResponseInfo",
    "SystemStatusValue",
    "accept_aliases",
    "aliases_of",
    "xml_meta",
]


def xml_meta(
    tag: str | None = None,
    *,
    path: tuple[str, ...] = (),
    item: str | None = None,
    aliases: tuple[str, ...] = (),
    item_aliases: tuple[str, ...] = (),
    choice: DeviceChoice | None = None,
    required: bool = False,
) -> dict[str, object]:
    """Field metadata for the codec.

    ``tag``: element name when it is not the camelCase of the field name; ``path``: wrapper
    elements between the parent and the element; ``item``: name of the repeated element inside
    a list element (``tuple`` fields); ``aliases``: other element names accepted on decode;
    ``item_aliases``: other names of a list's item accepted on decode.
    ``choice``: the device-identifier CHOICE of a :class:`DeviceIdentifier` field (default
    :data:`SUBJECT_DEVICE`). ``required``: the ASN.1 component is mandatory, so an empty list
    or flag set is written as an empty element rather than left out.
    """
    return {
        "xml": {
            "tag": tag,
            "path": path,
            "item": item,
            "aliases": aliases,
            "item_aliases": item_aliases,
            "choice": choice,
            "required": required,
        }
    }


class PassThroughEnum(enum.StrEnum):
    """Base of value enums: known values become members, unknown ones stay plain ``str``.

    Spellings that deployed peers send for a standard value (``acdBusy`` for ``aCDBusy``) are
    registered with :func:`accept_aliases` and decode to the standard member.
    """

    @classmethod
    def coerce(cls, value: str) -> Self | str:
        """The member for ``value`` (or for a registered alias of it), else ``value`` itself."""
        try:
            return cls(value)
        except ValueError:
            alias = _ALIASES.get(cls, {}).get(value)
            return value if alias is None else cls(alias)


_ALIASES: dict[type[PassThroughEnum], dict[str, str]] = {}


def accept_aliases(cls: type[PassThroughEnum], aliases: dict[str, str]) -> None:
    """Let ``cls.coerce`` map each old spelling (key) to its standard value."""
    _ALIASES.setdefault(cls, {}).update(aliases)


def aliases_of(cls: type[PassThroughEnum]) -> dict[str, str]:
    """The old spellings registered for ``cls`` (old -> standard)."""
    return dict(_ALIASES.get(cls, {}))


# --- identifiers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionID:
    """``<callID>`` + ``<deviceID>``; both opaque strings (snom sends callID ``-12``)."""

    call_id: str | None = None
    device_id: str | None = None


DeviceKind = Literal["deviceIdentifier", "notKnown", "notRequired", "notSpecified", "restricted"]


@dataclass(frozen=True, slots=True)
class DeviceIdentifier:
    """A device in one of the ECMA-285 device-identifier CHOICEs that events carry.

    ``kind="deviceIdentifier"`` is the CHOICE alternative holding ``value``; the others are the
    empty alternatives (``<notKnown/>``...). Which element names a field writes is the CHOICE
    of that field (see :class:`DeviceChoice`): SubjectDeviceID, CallingDeviceID and the like
    write ``<deviceIdentifier>``, RedirectionDeviceID writes ``<numberDialed>``, a connection
    list's ``endpoint`` writes ``<deviceID>``. Plain text ``<x>v</x>`` (some phones) decodes as a
    value; an alternative the field's CHOICE lacks is written as ``notKnown``.
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


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """The XML of one device-identifier CHOICE: the value alternative's element name, the
    names it is also accepted under, and the empty alternatives the CHOICE has."""

    value_tag: str
    value_aliases: tuple[str, ...]
    empty: tuple[str, ...]


#: SubjectDeviceID, CallingDeviceID, CalledDeviceID, AssociatedCallingDeviceID,
#: AssociatedCalledDeviceID, NetworkCallingDeviceID, NetworkCalledDeviceID
#: (CSTA-device-identifiers).
SUBJECT_DEVICE: Final = DeviceChoice(
    "deviceIdentifier", ("deviceID", "numberDialed", "numberdialed"), ("notKnown", "restricted")
)
#: RedirectionDeviceID: ``numberdialed`` in the ASN.1, ``numberDialed`` in ECMA-323 XML.
REDIRECTION_DEVICE: Final = DeviceChoice(
    "numberDialed",
    ("numberdialed", "deviceIdentifier", "deviceID"),
    ("notKnown", "notRequired", "notSpecified", "restricted"),
)
#: ConnectionList ``endpoint`` (CSTA-connection-states).
ENDPOINT_DEVICE: Final = DeviceChoice("deviceID", ("deviceIdentifier",), ("notKnown", "restricted"))
#: ConnectionList ``associatedNID``.
ASSOCIATED_NID: Final = DeviceChoice("deviceID", ("deviceIdentifier",), ("notKnown",))


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
    """ECMA-285 ``EventCause`` (CSTA-event-causes), every value as the ASN.1 spells it."""

    ACD_BUSY = "aCDBusy"
    ACD_FORWARD = "aCDForward"
    ACD_SATURATED = "aCDSaturated"
    ACTIVATION = "activation"
    ACTIVE_PARTICIPATION = "activeParticipation"
    ALERT_TIME_EXPIRED = "alertTimeExpired"
    ALTERNATE = "alternate"
    AUTO_WORK = "autoWork"
    BABBLE = "babble"
    BAD_ATTRIBUTE = "badAttribute"
    BAD_GRAMMAR = "badGrammar"
    BAD_VOICE = "badVoice"
    BAD_URI = "badUri"
    BLOCKED = "blocked"
    BUSY = "busy"
    BUSY_OVERFLOW = "busyOverflow"
    CALENDAR_OVERFLOW = "calendarOverflow"
    CALL_BACK = "callBack"
    CALL_CANCELLED = "callCancelled"
    CALL_FORWARD = "callForward"
    CALL_FORWARD_IMMEDIATE = "callForwardImmediate"
    CALL_FORWARD_BUSY = "callForwardBusy"
    CALL_FORWARD_NO_ANSWER = "callForwardNoAnswer"
    CALL_INTERCEPTION = "callInterception"
    CALL_INTERCEPTION_BUSY = "callInterceptionBusy"
    CALL_INTERCEPTION_FORWARDED = "callInterceptionForwarded"
    CALL_INTERCEPTION_NO_ANSWER = "callInterceptionNoAnswer"
    CALL_INTERCEPTION_RESOURCES_NOT_AVAILABLE = "callInterceptionResourcesNotAvailable"
    CALL_NOT_ANSWERED = "callNotAnswered"
    CALL_PICKUP = "callPickup"
    CAMP_ON = "campOn"
    CAMP_ON_TRUNKS = "campOnTrunks"
    CAPACITY_OVERFLOW = "capacityOverflow"
    CHARACTER_COUNT_REACHED = "characterCountReached"
    CONFERENCE = "conference"
    CONSULTATION = "consultation"
    DEST_DETECTED = "destDetected"
    DEST_NOT_OBTAINABLE = "destNotObtainable"
    DEST_OUT_OF_ORDER = "destOutOfOrder"
    DISTRIBUTED = "distributed"
    DISTRIBUTION_DELAY = "distributionDelay"
    DO_NOT_DISTURB = "doNotDisturb"
    DTMF_DIGIT_DETECTED = "dTMFDigitDetected"
    DUPLICATE_DTMF = "duplicateDTMF"
    DURATION_EXCEEDED = "durationExceeded"
    EARLY_STOP = "earlyStop"
    EMPTY_QUEUE = "emptyQueue"
    END_OF_MESSAGE_DETECTED = "endOfMessageDetected"
    ENTERING_DISTRIBUTION = "enteringDistribution"
    FORCED_PAUSE = "forcedPause"
    FORCED_TRANSITION = "forcedTransition"
    INCOMPATIBLE_DESTINATION = "incompatibleDestination"
    INTER_DIGIT_TIMEOUT = "interDigitTimeout"
    INTRUDE = "intrude"
    INVALID_ACCOUNT_CODE = "invalidAccountCode"
    INVALID_CONNECTION = "invalidConnection"
    INVALID_CONNECTION_STATE = "invalidConnectionState"
    INVALID_NUMBER_FORMAT = "invalidNumberFormat"
    JOIN_CALL = "joinCall"
    KEY_OPERATION = "keyOperation"
    KEY_OPERATION_IN_USE = "keyOperationInUse"
    LAWFUL_INTERCEPTION = "lawfulInterception"
    LOCKOUT = "lockout"
    MAINTENANCE = "maintenance"
    MAKE_CALL = "makeCall"
    MAKE_CONNECTION = "makeConnection"
    MAKE_PREDICTIVE_CALL = "makePredictiveCall"
    MAX_TIMEOUT = "maxTimeout"
    MESSAGE_DURATION_EXCEEDED = "messageDurationExceeded"
    MESSAGE_SIZE_EXCEEDED = "messageSizeExceeded"
    MULTIPLE_ALERTING = "multipleAlerting"
    MULTIPLE_QUEUING = "multipleQueuing"
    NETWORK_CONGESTION = "networkCongestion"
    NETWORK_DIALLING = "networkDialling"
    NETWORK_NOT_OBTAINABLE = "networkNotObtainable"
    NETWORK_OUT_OF_ORDER = "networkOutOfOrder"
    NETWORK_SIGNAL = "networkSignal"
    NEW_CALL = "newCall"
    NEXT_MESSAGE = "nextMessage"
    NO_AUDIO_SAVED = "noAudioSaved"
    NO_AVAILABLE_AGENTS = "noAvailableAgents"
    NO_QUEUE = "noQueue"
    NORMAL = "normal"
    NORMAL_CLEARING = "normalClearing"
    NO_RULE = "noRule"
    NO_SPEECH_DETECTED = "noSpeechDetected"
    NOT_AVALIABLE_BEARER_SERVICE = "notAvaliableBearerService"
    NOT_SUPPORTED_BEARER_SERVICE = "notSupportedBearerService"
    NUMBER_CHANGED = "numberChanged"
    NUMBER_UNALLOCATED = "numberUnallocated"
    OUT_OF_GRAMMAR = "outOfGrammar"
    OVERFLOW = "overflow"
    OVERRIDE = "override"
    PARK = "park"
    PATH_REPLACEMENT = "pathReplacement"
    QUEUE_CLEARED = "queueCleared"
    QUEUE_TIME_OVERFLOW = "queueTimeOverflow"
    RECALL = "recall"
    RECALL_BUSY = "recallBusy"
    RECALL_FORWARDED = "recallForwarded"
    RECALL_NO_ANSWER = "recallNoAnswer"
    RECALL_RESOURCES_NOT_AVAILABLE = "recallResourcesNotAvailable"
    REDIRECTED = "redirected"
    REMAINS_IN_QUEUE = "remainsInQueue"
    REORDER_TONE = "reorderTone"
    RESERVED = "reserved"
    RESOURCES_NOT_AVAILABLE = "resourcesNotAvailable"
    SELECTED_TRUNK_BUSY = "selectedTrunkBusy"
    SILENT_PARTICIPATION = "silentParticipation"
    SINGLE_STEP_CONFERENCE = "singleStepConference"
    SINGLE_STEP_TRANSFER = "singleStepTransfer"
    SPEECH_DETECTED = "speechDetected"
    SUSPEND = "suspend"
    SWITCHING_FUNCTION_TERMINATED = "switchingFunctionTerminated"
    TERMINATION_CHARACTER_RECEIVED = "terminationCharacterReceived"
    TIMEOUT = "timeout"
    TRANSFER = "transfer"
    TRUNKS_BUSY = "trunksBusy"
    UNAUTHORISED_BEARER_SERVICE = "unauthorisedBearerService"
    UNKNOWN_OVERFLOW = "unknownOverflow"


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
    """ECMA-285 ``DeviceCategory`` (CSTA-capability-exchange)."""

    ACD = "acd"
    GROUP = "group"
    NETWORK_INTERFACE = "networkInterface"
    PARK = "park"
    ROUTEING_DEVICE = "routeingDevice"
    STATION = "station"
    VOICE_UNIT = "voiceUnit"
    GENERIC_INTERACTIVE_VOICE = "genericInteractiveVoice"
    LISTENER_INTERACTIVE_VOICE = "listenerInteractiveVoice"
    DTMF_INTERACTIVE_VOICE = "dtmfInteractiveVoice"
    PROMPT_INTERACTIVE_VOICE = "promptInteractiveVoice"
    PROMPT_QUEUE_INTERACTIVE_VOICE = "promptQueueInteractiveVoice"
    MESSAGE_INTERACTIVE_VOICE = "messageInteractiveVoice"
    CONFERENCE = "conference"
    OTHER = "other"


class ReqDeviceCategory(PassThroughEnum):
    """ECMA-285 ``ReqDeviceCategory`` (GetSwitchingFunctionDevices)."""

    ACD = "acd"
    CONFERENCE = "conference"
    DTMF_IV = "dtmfIV"
    GENERIC_IV = "genericIV"
    GROUP_ACD = "groupACD"
    GROUP_HUNT = "groupHunt"
    GROUP_PICK = "groupPick"
    GROUP_OTHER = "groupOther"
    GROUP_USER = "groupUser"
    LISTENER_IV = "listenerIV"
    MESSAGE_IV = "messageIV"
    NETWORK_INTERFACE = "networkInterface"
    PARK = "park"
    PROMPT_IV = "promptIV"
    PROMPT_QUEUE = "promptQueue"
    ROUTEING_DEVICE = "routeingDevice"
    STATION = "station"
    VOICE_UNIT = "voiceUnit"
    OTHER = "other"


class ProgressLocation(PassThroughEnum):
    USER = "user"
    PRIVATE_NET_SERVING_LOCAL = "privateNetServingLocal"
    PUBLIC_NET_SERVING_LOCAL = "publicNetServingLocal"
    TRANSIT_NETWORK = "transitNetwork"
    PUBLIC_NET_SERVING_REMOTE = "publicNetServingRemote"
    PRIVATE_NET_SERVING_REMOTE = "privateNetServingRemote"
    LOCAL_INTERFACE = "localInterface"
    INTERNATIONAL_NETWORK = "internationalNetwork"
    NETWORK_BEYOND_INTERWK = "networkBeyondInterwk"
    OTHER = "other"


class ProgressDescription(PassThroughEnum):
    ISDN_PROGRESS_DESC = "iSDNProgressDesc"
    QSIG_PROGRESS_DESC = "qSIGProgressDesc"
    OTHER = "other"


class AppearanceType(PassThroughEnum):
    SELECTED_STANDARD = "selectedStandard"
    BASIC_STANDARD = "basicStandard"
    BASIC_BRIDGED = "basicBridged"
    EXCLUSIVE_BRIDGED = "exclusiveBridged"
    INDEPENDENT_SHARED_BRIDGED = "independentSharedBridged"
    INTERDEPENDENT_SHARED_BRIDGED = "interdependentSharedBridged"


class AutoOriginate(PassThroughEnum):
    PROMPT = "prompt"
    DO_NOT_PROMPT = "doNotPrompt"


class ForwardDefault(PassThroughEnum):
    FORWARDING_TYPE_AND_FORWARD_DN = "forwardingTypeAndForwardDN"
    FORWARDING_TYPE = "forwardingType"
    FORWARD_DN = "forwardDN"


class ParticipationType(PassThroughEnum):
    SILENT = "silent"
    ACTIVE = "active"
    NONE = "none"


class MonitorType(PassThroughEnum):
    CALL = "call"
    DEVICE = "device"


class DigitMode(PassThroughEnum):
    ROTARY_PULSE = "rotaryPulse"
    DTMF = "dTMF"


class SimpleCallState(PassThroughEnum):
    """ECMA-285 ``SimpleCallState`` (CSTA-status-reporting)."""

    CALL_NULL = "callNull"
    CALL_PENDING = "callPending"
    CALL_ORIGINATED = "callOriginated"
    CALL_DELIVERED = "callDelivered"
    CALL_DELIVERED_HELD = "callDeliveredHeld"
    CALL_RECEIVED = "callReceived"
    CALL_ESTABLISHED = "callEstablished"
    CALL_ESTABLISHED_HELD = "callEstablishedHeld"
    CALL_RECEIVED_ON_HOLD = "callReceivedOnHold"
    CALL_ESTABLISHED_ON_HOLD = "callEstablishedOnHold"
    CALL_QUEUED = "callQueued"
    CALL_QUEUED_HELD = "callQueuedHeld"
    CALL_FAILED = "callFailed"
    CALL_FAILED_HELD = "callFailedHeld"
    CALL_BLOCKED = "callBlocked"


# Spellings deployed peers (and earlier uacsta) send for standard values.
accept_aliases(EventCause, {"acdBusy": "aCDBusy", "acdForward": "aCDForward"})
accept_aliases(DeviceCategory, {"routingDevice": "routeingDevice"})
accept_aliases(ReqDeviceCategory, {"routingDevice": "routeingDevice"})


# --- nested structures -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ForwardListItem:
    """One ``forwardListItem`` of GetForwardingResponse (ECMA-285 ``ForwardList``)."""

    forwarding_type: ForwardingType | str | None = None
    forward_status: bool | None = None
    forward_dn: str | None = None
    forward_default: ForwardDefault | str | None = None
    ring_duration: int | None = None
    ring_count: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceEntry:
    """One entry of SwitchingFunctionDevices' ``deviceList`` (a line/identity of the phone).

    Written as ``<deviceEntry>``; Yealink firmware sends ``<device>``, accepted as well.
    """

    device_id: str | None = None
    device_category: DeviceCategory | str | None = None
    device_model_name: str | None = field(default=None, metadata=xml_meta(aliases=("deviceModel",)))


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotDeviceResponseInfo:
    """One call at the device: its connection and the device's call state.

    ``localCallState`` is a CHOICE: ``compoundCallState`` (written when
    ``local_connection_state`` is set) or ``simpleCallState``.
    """

    connection_identifier: ConnectionID | None = None
    endpoint_device: DeviceIdentifier | None = None
    local_connection_state: LocalConnectionState | str | None = field(
        default=None, metadata=xml_meta(path=("localCallState", "compoundCallState"))
    )
    simple_call_state: SimpleCallState | str | None = field(
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
    """One ``connectionListItem`` of a ConnectionList: old/new connection pair after a transfer
    or conference, the far end (``endpoint``: ``deviceID`` or ``notKnown``/``restricted``) and
    the network interface device (``associatedNID``)."""

    new_connection: ConnectionID | None = None
    old_connection: ConnectionID | None = None
    endpoint: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta(choice=ENDPOINT_DEVICE)
    )
    associated_nid: DeviceIdentifier | None = field(
        default=None, metadata=xml_meta("associatedNID", choice=ASSOCIATED_NID)
    )
