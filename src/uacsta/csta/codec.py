"""ECMA-323 XML <-> :mod:`uacsta.csta.messages` (ECMA-323 §8 encoding rules, editions 2-6).

Owns the wire form of CSTA messages. One generic encoder and one generic decoder walk specs
compiled once at import time from the dataclass fields (their annotations and
:func:`~uacsta.csta.types.xml_meta` metadata), so adding a message is declaring a dataclass.
What is written follows the ECMA-285 ASN.1: element names are its field names, SEQUENCE order
is element order, a CHOICE is its chosen alternative's element (device identifiers per the
field's CHOICE, ``crossRefIDorSnapshotData``, ``localCallState``, ``monitorObject``), capability
and filter sets are its BIT STRING / list element names.

Decoding rules (tolerant in what it accepts):

- any namespace, matched by local name: ed2-ed6, none, misspelled hosts, ``/privN`` suffixes,
  every element prefixed; :func:`decode_with_edition` reports the edition it recognised;
- unknown roots become :class:`~uacsta.csta.messages.UnknownMessage`; unknown child elements
  are ignored; absent elements leave the field ``None`` (or empty); so do empty optional
  integers, booleans and enumerations (``<ringCount></ringCount>``, BroadWorks);
- the spellings deployed peers use: misspelled roots (``TransferedEvent``), earlier element
  names (``charToSend``), list items (``deviceList/device``), enumerated values (``acdBusy``),
  a DeviceID as a child (``newDestination/device``), ``privateData`` under the root (kept as
  ``extensions``), a utf-16 declaration on UTF-8 bytes;
- text is trimmed of XML whitespace; a present but unreadable boolean or integer raises
  :class:`~uacsta.csta.errors.CstaDecodeError`, the only exception :func:`decode` raises for
  any input; hostile XML is refused by :func:`~uacsta.csta.xmlparse.parse_document`.

Encoding writes the standard form in one edition's namespace, or a vendor's form where a
:class:`Dialect` is asked for; ``decode(encode(m, e)) == m`` for values the standard can carry.
Strings that XML cannot carry (control characters, lone surrogates) raise ``ValueError``: that
is a local bug, not a peer's.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable
from copy import deepcopy
from typing import Any, Final, get_args, get_origin

from lxml import etree

from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.messages import (
    MESSAGE_CLASSES,
    CSTAErrorCode,
    CstaMessage,
    DeflectCall,
    MonitorEndedEvent,
    MonitorStop,
    UnknownMessage,
    response_class_for,
)
from uacsta.csta.types import (
    SUBJECT_DEVICE,
    ConnectionID,
    DeviceChoice,
    DeviceIdentifier,
    PassThroughEnum,
    aliases_of,
)
from uacsta.csta.xmlparse import parse_document

__all__ = [
    "FEATURE_EVENTS",
    "FEATURE_SERVICES",
    "MESSAGE_CLASSES",
    "MONITOR_FILTER_EVENTS",
    "Dialect",
    "Edition",
    "decode",
    "decode_with_edition",
    "edition_for_namespace",
    "encode",
    "rcc_line",
    "response_class_for",
]

_NS_BASE: Final = "http://www.ecma-international.org/standards/ecma-323/csta/ed"


class Edition(enum.Enum):
    """ECMA-323 edition, identified by its XML namespace (``NONE``: no namespace at all)."""

    ED2 = _NS_BASE + "2"
    ED3 = _NS_BASE + "3"
    ED4 = _NS_BASE + "4"
    ED5 = _NS_BASE + "5"
    ED6 = _NS_BASE + "6"
    NONE = ""

    @property
    def namespace(self) -> str | None:
        return self.value or None


_EDITION_BY_NUMBER: Final = {
    "2": Edition.ED2,
    "3": Edition.ED3,
    "4": Edition.ED4,
    "5": Edition.ED5,
    "6": Edition.ED6,
}
_ED_RE: Final = re.compile(r".*ed(\d+)")
_edition_cache: dict[str, Edition] = {}


def edition_for_namespace(namespace: str | None) -> Edition:
    """Best guess of the edition behind a namespace: its last ``edN``, else ED3 (NONE if absent)."""
    if not namespace:
        return Edition.NONE
    found = _edition_cache.get(namespace)
    if found is None:
        match = _ED_RE.match(namespace)
        found = _EDITION_BY_NUMBER.get(match.group(1), Edition.ED3) if match else Edition.ED3
        if len(_edition_cache) < 256:  # bounded: namespaces come from peers
            _edition_cache[namespace] = found
    return found


# --- text conversions ------------------------------------------------------------------------

_XML_WS: Final = " \t\r\n"
# Characters needing an escape, or not allowed in XML 1.0 at all.
_SPECIAL_RE: Final = re.compile("[&<>\r]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INVALID_RE: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INT_RE: Final = re.compile(r"[+-]?[0-9]{1,18}")
_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})


class _Absent:
    """What a converter returns for an empty optional element: the field stays unset."""


_ABSENT: Final = _Absent()


def _escape(text: str) -> str:
    if _SPECIAL_RE.search(text) is None:
        return text
    bad = _INVALID_RE.search(text)
    if bad is not None:
        raise ValueError(f"character {bad.group()!r} cannot be carried in XML")
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _local(tag: str) -> str:
    return tag[tag.find("}") + 1 :]


def _text(el: etree._Element) -> str:
    text = el.text
    return "" if text is None else text.strip(_XML_WS)


# Empty elements: <ringCount></ringCount> (BroadWorks' SetForwarding, phones) means "absent".
def _dec_bool(el: etree._Element) -> bool | _Absent:
    text = _text(el)
    if not text and not len(el):
        return _ABSENT
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CstaDecodeError(f"<{_local(el.tag)}> is not a boolean: {text[:40]!r}")


def _dec_int(el: etree._Element) -> int | _Absent:
    text = _text(el)
    if not text and not len(el):
        return _ABSENT
    if _INT_RE.fullmatch(text) is None:
        raise CstaDecodeError(f"<{_local(el.tag)}> is not an integer: {text[:40]!r}")
    return int(text)


def _dec_conn(el: etree._Element) -> ConnectionID:
    call_id: str | None = None
    device_id: str | None = None
    for child in el:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        name = tag[tag.find("}") + 1 :]
        if name == "callID":
            call_id = _text(child)
        elif name == "deviceID":
            device_id = _text(child)
    return ConnectionID(call_id, device_id)


_DEVICE_ID_CHILDREN: Final = frozenset({"device", "deviceIdentifier", "deviceID"})


def _dec_device_id(el: etree._Element) -> str:
    """A DeviceID: the element's text, or the text of a ``device``/``deviceIdentifier`` child
    (Yealink writes DeflectCall's target as ``<newDestination><device>X</device>``)."""
    text = _text(el)
    if text or not len(el):
        return text
    for child in el:
        tag = child.tag
        if tag.__class__ is str and tag[tag.find("}") + 1 :] in _DEVICE_ID_CHILDREN:
            return _text(child)
    return text


_DEVICE_KINDS: Final[dict[str, Any]] = {
    "notKnown": "notKnown",
    "notRequired": "notRequired",
    "notSpecified": "notSpecified",
    "restricted": "restricted",
}


def _device_decoder(choice: DeviceChoice) -> Callable[[etree._Element], DeviceIdentifier]:
    value_names = frozenset((choice.value_tag, *choice.value_aliases))

    def decode_device(el: etree._Element) -> DeviceIdentifier:
        for child in el:
            tag = child.tag
            if tag.__class__ is not str:
                continue
            name = tag[tag.find("}") + 1 :]
            if name in value_names:
                return DeviceIdentifier(_text(child))
            kind = _DEVICE_KINDS.get(name)
            if kind is not None:
                return DeviceIdentifier(None, kind)
        # Some phones send the identifier as plain text: <device>sip:...</device>.
        return DeviceIdentifier(_text(el) or None)

    return decode_device


def _dec_extensions(el: etree._Element) -> bytes:
    # Keep vendor data verbatim but make CSTA-namespace elements unqualified, so the bytes are
    # the same whatever edition carried them and can be re-emitted inside any edition.
    tag = el.tag
    copy = deepcopy(el)
    copy.tail = None
    if tag.startswith("{"):
        prefix = tag[: tag.find("}") + 1]
        cut = len(prefix)
        for node in copy.iter():
            node_tag = node.tag
            if node_tag.__class__ is str and node_tag.startswith(prefix):
                node.tag = node_tag[cut:]
        etree.cleanup_namespaces(copy)
    return etree.tostring(copy, encoding="UTF-8", xml_declaration=False)


def _enc_text(value: str) -> str:
    return _escape(value)


def _enc_bool(value: bool) -> str:
    return "true" if value else "false"


def _enc_int(value: int) -> str:
    return str(int(value))


def _enc_conn(value: ConnectionID) -> str:
    out = ""
    if value.call_id is not None:
        out = "<callID>" + _escape(value.call_id) + "</callID>" if value.call_id else "<callID/>"
    if value.device_id is not None:
        out += (
            "<deviceID>" + _escape(value.device_id) + "</deviceID>"
            if value.device_id
            else "<deviceID/>"
        )
    return out


def _device_encoder(choice: DeviceChoice) -> Callable[[DeviceIdentifier], str]:
    tag = choice.value_tag
    open_tag, close_tag, empty_tag = f"<{tag}>", f"</{tag}>", f"<{tag}/>"
    empties = {kind: f"<{kind}/>" for kind in choice.empty}

    def encode_device(value: DeviceIdentifier) -> str:
        if value.kind != "deviceIdentifier":
            # An alternative this CHOICE lacks (notRequired in a SubjectDeviceID) is not known.
            return empties.get(value.kind, "<notKnown/>")
        if value.value is None:
            return ""
        if not value.value:
            return empty_tag
        return open_tag + _escape(value.value) + close_tag

    return encode_device


# --- capability and filter flags ---------------------------------------------------------------
#
# The tables below are the ECMA-285 ASN.1, in its order: GetCSTAFeatureResult's category lists
# (CSTA-get-csta-features-service, each list a SEQUENCE of per-service BIT STRINGs in
# CSTA-capability-exchange) and MonitorFilter's wrappers (CSTA-status-reporting, each a BIT
# STRING of CSTA-application-context-information-csta3).

_FEATURE_SERVICE_LISTS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "capExchangeServList",
        (
            "getCSTAFeatures",
            "getLogicalDeviceInformation",
            "getPhysicalDeviceInformation",
            "getSwitchingFunctionCaps",
            "getSwitchingFunctionDevices",
            "switchingFunctionDevices",
        ),
    ),
    (
        "systemStatServList",
        (
            "changeSystemStatusFilter",
            "systemRegister",
            "systemStatusRegisterAbort",
            "systemStatusRegisterCancel",
            "requestSystemStatus",
            "systemStatus",
            "swFunctionCapsChanged",
            "swFunctionDevicesChanged",
            "getRegistrations",
            "registrationInfo",
        ),
    ),
    (
        "monitoringServList",
        (
            "changeMonitorFilter",
            "monitorStart",
            "monitorStop",
            "getMonitors",
            "monitorInfo",
        ),
    ),
    (
        "snapshotServList",
        (
            "snapshotCall",
            "snapshotDevice",
            "snapshotCallData",
            "snapshotDeviceData",
        ),
    ),
    (
        "callControlServList",
        (
            "acceptCall",
            "alternateCall",
            "answerCall",
            "callBack",
            "callBackMessage",
            "campOnCall",
            "clearCall",
            "clearConnection",
            "conferenceCall",
            "consultationCall",
            "deflectCall",
            "dialDigits",
            "directedPickupCall",
            "groupPickupCall",
            "holdCall",
            "intrudeCall",
            "joinCall",
            "makeCall",
            "makeConnection",
            "makePredictiveCall",
            "parkCall",
            "reconnectCall",
            "retrieveCall",
            "sendMessage",
            "singleStepConference",
            "singleStepTransfer",
            "transferCall",
        ),
    ),
    (
        "callAssociatedServList",
        (
            "associateData",
            "cancelTelephonyTones",
            "changeConnectionInformation",
            "generateDigits",
            "generateTelephonyTones",
            "sendUserInformation",
        ),
    ),
    (
        "mediaServList",
        (
            "attachMediaService",
            "detachMediaService",
        ),
    ),
    (
        "routeingServList",
        (
            "routeRegister",
            "routeRegisterCancel",
            "routeRegisterAbort",
            "reRoute",
            "routeEnd",
            "routeReject",
            "routeRequest",
            "routeSelect",
            "routeUsed",
        ),
    ),
    (
        "physDevServList",
        (
            "buttonPress",
            "getAuditoryApparatusInfo",
            "getButtonInformation",
            "getDisplay",
            "getHookSwitchStatus",
            "getLampInfo",
            "getLampMode",
            "getMessageWaitingIndicator",
            "getMicrophoneGain",
            "getMicrophoneMute",
            "getRingerStatus",
            "getSpeakerMute",
            "getSpeakerVolume",
            "setButtonInformation",
            "setDisplay",
            "setHookSwitchStatus",
            "setLampMode",
            "setMessageWaitingIndicator",
            "setMicrophoneGain",
            "setMicrophoneMute",
            "setRingerStatus",
            "setSpeakerMute",
            "setSpeakerVolume",
        ),
    ),
    (
        "logicalServList",
        (
            "callBackNonCallRel",
            "callBackMsgNonCallRel",
            "cancelCallBack",
            "cancelCallBackMsg",
            "getAgentState",
            "getAutoAnswer",
            "getAutoWorkMode",
            "getCallerIDStatus",
            "getCallBack",
            "getDoNotDisturb",
            "getForwarding",
            "getLastNumberDialed",
            "getPresenceState",
            "getRouteingMode",
            "setAgentState",
            "setAutoAnswer",
            "setAutoWorkMode",
            "setCallerIDStatus",
            "setDoNotDisturb",
            "setForwarding",
            "setPresenceState",
            "setRouteingMode",
        ),
    ),
    (
        "iOServicesServList",
        (
            "ioRegister",
            "ioRegisterAbort",
            "ioRegisterCancel",
            "dataPathResumed",
            "dataPathSuspended",
            "fastData",
            "resumeDataPath",
            "sendBroadcastData",
            "sendData",
            "sendMulticastData",
            "startDataPath",
            "stopDataPath",
            "suspendDataPath",
        ),
    ),
    (
        "dataCollectionServList",
        (
            "dataCollected",
            "dataCollectionResumed",
            "dataCollectionSuspended",
            "resumeDataCollection",
            "startDataCollection",
            "stopDataCollection",
            "suspendDataCollection",
        ),
    ),
    (
        "voiceServList",
        (
            "activate",
            "clear",
            "deactivate",
            "concatenateMsg",
            "deleteMsg",
            "queue",
            "playMsg",
            "queryVoiceAttrib",
            "recordMsg",
            "reposition",
            "resume",
            "review",
            "start",
            "setVoiceAttrib",
            "stop",
            "suspend",
            "synthesizeMsg",
        ),
    ),
    (
        "cDRServList",
        (
            "cdrNotification",
            "cdrReport",
            "sendStoredCDRs",
            "startCDRTransmission",
            "stopCDRTransmission",
        ),
    ),
    (
        "vendorSpecificServList",
        (
            "escapeRegister",
            "escapeRegisterCancel",
            "escapeRegisterAbort",
            "escape",
            "privateDataVersionSelection",
        ),
    ),
    (
        "locationServicesServList",
        (
            "getLocationInformation",
            "setLocationInformation",
            "locationTrackingSessionResumed",
            "locationTrackingSessionSuspended",
            "resumeLocationTrackingSession",
            "locationInformationReport",
            "startLocationTrackingSession",
            "stopLocationTrackingSession",
            "suspendLocationTrackingSession",
            "getLocationTrackingCapabilities",
            "getLocationTrackingSessions",
            "locationSessionInfo",
        ),
    ),
)
_FEATURE_EVENT_LISTS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "callControlEvtsList",
        (
            "bridged",
            "callCleared",
            "conferenced",
            "connectionCleared",
            "delivered",
            "digitsDialed",
            "diverted",
            "established",
            "failed",
            "held",
            "netwCapsChanged",
            "netwReached",
            "offered",
            "originated",
            "queued",
            "retrieved",
            "serviceInitiated",
            "transferred",
        ),
    ),
    (
        "callAssociatedEvtsList",
        (
            "callInformation",
            "charging",
            "digitsGenerated",
            "telephonyTonesGenerated",
            "serviceCompletionFailure",
        ),
    ),
    (
        "mediaEvtsList",
        (
            "mediaAttached",
            "mediaDetached",
        ),
    ),
    (
        "physDevEvtsList",
        (
            "buttonInformation",
            "buttonPress",
            "displayUpdated",
            "hookswitch",
            "lampMode",
            "messageWaiting",
            "microphoneGain",
            "microphoneMute",
            "ringerStatus",
            "speakerMute",
            "speakerVolume",
        ),
    ),
    (
        "logicalEvtsList",
        (
            "agentBusy",
            "agentLoggedOff",
            "agentLoggedOn",
            "agentNotReady",
            "agentReady",
            "agentWorkingAfterCall",
            "autoAnswer",
            "autoWorkMode",
            "callBack",
            "callBackMessage",
            "callerIDStatus",
            "doNotDisturb",
            "forwarding",
            "presenceState",
            "routeingMode",
        ),
    ),
    (
        "deviceMaintEvtsList",
        (
            "backInService",
            "deviceCapsChanged",
            "outOfService",
            "partiallyInService",
        ),
    ),
    (
        "voiceEvtsList",
        (
            "bookmarkReached",
            "completed",
            "dtmfDetected",
            "emptied",
            "interruptionDetected",
            "notRecognized",
            "play",
            "record",
            "recognized",
            "review",
            "started",
            "silenceTimeoutExpired",
            "speechDetected",
            "stop",
            "suspendPlay",
            "suspendRecord",
            "voiceAttribChanged",
            "voiceErrorOccured",
        ),
    ),
    ("vendorSpecificEvtsList", ("privateEvent",)),
)
_MONITOR_FILTER: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "callControl",
        (
            "bridged",
            "callCleared",
            "conferenced",
            "connectionCleared",
            "delivered",
            "digitsDialed",
            "diverted",
            "established",
            "failed",
            "held",
            "networkCapabilitiesChanged",
            "networkReached",
            "offered",
            "originated",
            "queued",
            "retrieved",
            "serviceInitiated",
            "transferred",
        ),
    ),
    (
        "callAssociated",
        (
            "callInformation",
            "charging",
            "dTMFDigitsDetected",
            "telephonyTonesDetected",
            "serviceCompletionFailure",
        ),
    ),
    (
        "mediaAttachment",
        (
            "mediaAttached",
            "mediaDetached",
        ),
    ),
    (
        "physicalDeviceFeature",
        (
            "buttonInformation",
            "buttonPress",
            "displayUpdated",
            "hookswitch",
            "lampMode",
            "messageWaiting",
            "microphoneGain",
            "microphoneMute",
            "ringerStatus",
            "speakerMute",
            "speakerVolume",
        ),
    ),
    (
        "logicalDeviceFeature",
        (
            "agentBusy",
            "agentLoggedOn",
            "agentLoggedOff",
            "agentNotReady",
            "agentReady",
            "agentWorkingAfterCall",
            "autoAnswer",
            "autoWorkMode",
            "callBack",
            "callBackMessage",
            "callerIDStatus",
            "doNotDisturb",
            "forwarding",
            "presenceState",
            "routeingMode",
        ),
    ),
    (
        "maintenance",
        (
            "backInService",
            "deviceCapabilityChanged",
            "outOfService",
            "partiallyInService",
        ),
    ),
    (
        "voiceUnit",
        (
            "bookmarkReached",
            "completed",
            "dtmfDetected",
            "emptied",
            "interruptionDetected",
            "notRecognized",
            "play",
            "recognized",
            "record",
            "review",
            "started",
            "silenceTimeoutExpired",
            "speechDetected",
            "stop",
            "suspendPlay",
            "suspendRecord",
            "voiceAttributesChange",
            "voiceErrorOccured",
        ),
    ),
    ("private", ("privateEvent",)),
)

# uacsta names services and events by their message (``singleStepTransferCall``,
# ``networkReached``); where a capability list's flag is spelled otherwise, this maps the flag.
_FEATURE_FLAG_ALIASES: Final[dict[str, str]] = {
    "singleStepConference": "singleStepConferenceCall",
    "singleStepTransfer": "singleStepTransferCall",
    "systemStatusRegisterAbort": "systemRegisterAbort",
    "systemStatusRegisterCancel": "systemRegisterCancel",
    "getSwitchingFunctionCaps": "getSwitchingFunctionCapabilities",
    "netwCapsChanged": "networkCapabilitiesChanged",
    "netwReached": "networkReached",
    "deviceCapsChanged": "deviceCapabilitiesChanged",
}

_Lists = tuple[tuple[str, tuple[str, ...]], ...]

# SnapshotServList is the one list whose components are not OPTIONAL: written whole.
_MANDATORY_LISTS: Final = frozenset({"snapshotServList"})


def _list_names(lists: _Lists, aliases: dict[str, str]) -> frozenset[str]:
    return frozenset(aliases.get(flag, flag) for _, flags in lists for flag in flags)


#: Every service name GetCSTAFeaturesResponse can carry (uacsta's names, see above).
FEATURE_SERVICES: Final = _list_names(_FEATURE_SERVICE_LISTS, _FEATURE_FLAG_ALIASES)
#: Every event name GetCSTAFeaturesResponse can carry.
FEATURE_EVENTS: Final = _list_names(_FEATURE_EVENT_LISTS, _FEATURE_FLAG_ALIASES)
#: Every event flag a MonitorFilter can carry.
MONITOR_FILTER_EVENTS: Final = _list_names(_MONITOR_FILTER, {})


def _lists_encoder(lists: _Lists, aliases: dict[str, str], *, bits: bool) -> Callable[[Any], str]:
    """Writes a name set as ``<list><flag/>...`` (a capability list: each service or event is a
    BIT STRING of its options, present when supported) or, with ``bits``, as
    ``<wrapper><flag>true</flag>...`` (a BIT STRING). Lists and flags in ASN.1 order; names
    without a flag in the standard are left out (the standard has no place for them)."""

    def flag_xml(flag: str) -> str:
        return f"<{flag}>true</{flag}>" if bits else f"<{flag}/>"

    compiled = [
        (
            f"<{name}>",
            f"</{name}>",
            [(aliases.get(flag, flag), flag_xml(flag)) for flag in flags],
            name in _MANDATORY_LISTS,
        )
        for name, flags in lists
    ]

    def encode_lists(value: frozenset[str]) -> str:
        parts: list[str] = []
        for open_tag, close_tag, flags, mandatory in compiled:
            inner = [text for name, text in flags if name in value]
            if inner:
                if mandatory:  # every component is mandatory once the list is there
                    inner = [text for _, text in flags]
                parts.append(open_tag + "".join(inner) + close_tag)
        return "".join(parts)

    return encode_lists


def _lists_decoder(aliases: dict[str, str]) -> Callable[[etree._Element], frozenset[str]]:
    """Reads ``<list><flag/>...`` (each element present is a supported service or event,
    unless it says ``false``) and the older ``<name>true</name>`` leaves at any depth."""

    def decode_lists(el: etree._Element) -> frozenset[str]:
        names: set[str] = set()
        for category in el:
            if category.tag.__class__ is not str:
                continue
            if not len(category):
                if _text(category) in _TRUE:
                    names.add(_local(category.tag))
                continue
            for flag in category:
                if flag.tag.__class__ is not str or _text(flag) in _FALSE:
                    continue
                name = _local(flag.tag)
                names.add(aliases.get(name, name))
        return frozenset(names)

    return decode_lists


def _true_leaves(el: etree._Element) -> list[etree._Element]:
    return [
        leaf
        for leaf in el.iter()
        if leaf is not el and leaf.tag.__class__ is str and not len(leaf) and _text(leaf) in _TRUE
    ]


def _dec_flags(el: etree._Element) -> frozenset[str]:
    """A MonitorFilter (or any BIT STRING): the names of its true leaves, at any depth."""
    return frozenset(_local(leaf.tag) for leaf in _true_leaves(el))


_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _is_xml_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None


# --- compiled specs --------------------------------------------------------------------------

# Decode plan: local element name -> (mode, target, conv).
#   _SET:    target = attribute name, conv(element) -> value
#   _APPEND: same, value appended to a list (turned into a tuple at the end)
#   _WRAP:   target = nested plan for a wrapper element, conv unused
_SET: Final = 0
_APPEND: Final = 1
_WRAP: Final = 2
_Plan = dict[str, tuple[int, Any, Any]]

# Encode ops (tuples, first item the kind):
#   (_LEAF, attr, enc, "<t>", "</t>", "<t/>")
#   (_LIST, attr, enc_item, "<t>", "</t>", "<i>", "</i>", "<i/>", "<t/>" or "")
#   (_GROUP, None, sub_ops, "<t>", "</t>", is_choice)
#   (_FLAGS, attr, enc, "<t>", "</t>", "<t/>" or "")
# The last item of _LIST / _FLAGS is what an empty value writes: the empty element where the
# ASN.1 component is mandatory (``xml_meta(required=True)``), else nothing.
_LEAF: Final = 0
_LIST: Final = 1
_GROUP: Final = 2
_FLAGS: Final = 3  # like _LEAF, but an empty set is left out unless required
_Ops = list[tuple[Any, ...]]


def _camel(name: str) -> str:
    words = name.split("_")
    special = {"id": "ID", "dn": "DN", "csta": "CSTA"}
    return words[0] + "".join(special.get(w, w.capitalize()) for w in words[1:])


def _enum_decoder(enum_cls: type[PassThroughEnum]) -> Callable[[etree._Element], Any]:
    members: dict[str, str] = {m.value: m for m in enum_cls}
    members.update({old: enum_cls(new) for old, new in aliases_of(enum_cls).items()})

    def decode_enum(el: etree._Element) -> str | _Absent:
        text = _text(el)
        if not text and not len(el):
            return _ABSENT
        return members.get(text, text)

    return decode_enum


def _field_kind(hint: Any) -> tuple[str, Any]:
    origin = get_origin(hint)
    if origin is tuple:
        return "list", get_args(hint)[0]
    if origin is frozenset:
        return "flags", None
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, PassThroughEnum):
                return "enum", arg
        (hint,) = args
    if hint is bool:
        return "bool", None
    if hint is int:
        return "int", None
    if hint is str:
        return "text", None
    if hint is ConnectionID:
        return "conn", None
    if hint is DeviceIdentifier:
        return "device", None
    if dataclasses.is_dataclass(hint):
        return "struct", hint
    raise TypeError(f"no XML mapping for field type {hint!r}")


_SIMPLE: Final[dict[str, tuple[Callable[[etree._Element], Any], Callable[[Any], str]]]] = {
    "text": (_dec_device_id, _enc_text),
    "bool": (_dec_bool, _enc_bool),
    "int": (_dec_int, _enc_int),
    "conn": (_dec_conn, _enc_conn),
}

# Wrappers that are an ASN.1 CHOICE: only the first of their fields that has a value is written.
_CHOICE_WRAPPERS: Final = frozenset({"crossRefIDorSnapshotData", "localCallState", "monitorObject"})

_FEATURES_ENCODERS: Final = {
    "supported_services": _lists_encoder(_FEATURE_SERVICE_LISTS, _FEATURE_FLAG_ALIASES, bits=False),
    "supported_events": _lists_encoder(_FEATURE_EVENT_LISTS, _FEATURE_FLAG_ALIASES, bits=False),
}
_FILTER_ENCODER: Final = _lists_encoder(_MONITOR_FILTER, {}, bits=True)


class _Spec:
    """Compiled decode plan and encode ops of one dataclass (message or nested structure)."""

    __slots__ = ("cls", "list_attrs", "ops", "plan")

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.plan: _Plan = {}
        self.ops: _Ops = []
        self.list_attrs: tuple[str, ...] = ()
        hints = typing.get_type_hints(cls)
        list_attrs: list[str] = []
        for f in dataclasses.fields(cls):
            if f.name == "extensions":
                continue  # handled by the message level, always last
            meta: dict[str, Any] = dict(f.metadata.get("xml", {}))
            tag: str = meta.get("tag") or _camel(f.name)
            kind, arg = _field_kind(hints[f.name])
            plan, ops = self._descend(meta.get("path", ()))
            names = (tag, *meta.get("aliases", ()))
            when_empty = f"<{tag}/>" if meta.get("required") else ""
            if kind == "list":
                item = meta.get("item")
                if not item:
                    raise TypeError(f"{cls.__name__}.{f.name}: list fields need an item name")
                sub = _spec_for(arg)
                list_attrs.append(f.name)
                item_plan: _Plan = {
                    name: (_APPEND, f.name, sub.decode_struct)
                    for name in (item, *meta.get("item_aliases", ()))
                }
                for name in names:
                    plan[name] = (_WRAP, item_plan, None)
                item_tags = (f"<{item}>", f"</{item}>", f"<{item}/>")
                ops.append(
                    (
                        _LIST,
                        f.name,
                        sub.encode_inner,
                        f"<{tag}>",
                        f"</{tag}>",
                        *item_tags,
                        when_empty,
                    )
                )
                continue
            dec: Callable[[etree._Element], Any]
            enc: Callable[[Any], str]
            if kind == "struct":
                sub = _spec_for(arg)
                dec, enc = sub.decode_struct, sub.encode_inner
            elif kind == "enum":
                dec, enc = _enum_decoder(arg), _enc_text
            elif kind == "flags":
                if f.name in _FEATURES_ENCODERS:
                    dec, enc = _lists_decoder(_FEATURE_FLAG_ALIASES), _FEATURES_ENCODERS[f.name]
                else:
                    dec, enc = _dec_flags, _FILTER_ENCODER
            elif kind == "device":
                choice = meta.get("choice") or SUBJECT_DEVICE
                dec, enc = _device_decoder(choice), _device_encoder(choice)
            else:
                dec, enc = _SIMPLE[kind]
            for name in names:
                plan[name] = (_SET, f.name, dec)
            if kind == "flags":
                ops.append((_FLAGS, f.name, enc, f"<{tag}>", f"</{tag}>", when_empty))
            else:
                ops.append((_LEAF, f.name, enc, f"<{tag}>", f"</{tag}>", f"<{tag}/>"))
        self.list_attrs = tuple(list_attrs)

    def _descend(self, path: tuple[str, ...]) -> tuple[_Plan, _Ops]:
        plan, ops = self.plan, self.ops
        for wrapper in path:
            node = plan.get(wrapper)
            if node is None:
                node = (_WRAP, {}, None)
                plan[wrapper] = node
            plan = node[1]
            group = next((op for op in ops if op[0] == _GROUP and op[3] == f"<{wrapper}>"), None)
            if group is None:
                is_choice = wrapper in _CHOICE_WRAPPERS
                group = (_GROUP, None, [], f"<{wrapper}>", f"</{wrapper}>", is_choice)
                ops.append(group)
            ops = group[2]
        return plan, ops

    def collect(self, el: etree._Element) -> dict[str, Any]:
        values: dict[str, Any] = {}
        _fill(el, self.plan, values)
        for attr in self.list_attrs:
            found = values.get(attr)
            if found is not None:
                values[attr] = tuple(found)
        return values

    def decode_struct(self, el: etree._Element) -> Any:
        return self.cls(**self.collect(el))

    def encode_inner(self, obj: Any) -> str:
        parts: list[str] = []
        _emit(obj, self.ops, parts)
        return "".join(parts)


def _fill(el: etree._Element, plan: _Plan, values: dict[str, Any]) -> None:
    for child in el:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        node = plan.get(tag[tag.find("}") + 1 :])
        if node is None:
            continue  # unknown elements are ignored (tolerant decoding)
        mode, target, conv = node
        if mode == _SET:
            value = conv(child)
            if value is not _ABSENT:
                values[target] = value
        elif mode == _APPEND:
            found = values.get(target)
            if found is None:
                values[target] = [conv(child)]
            else:
                found.append(conv(child))
        else:
            _fill(child, target, values)


def _emit(obj: Any, ops: _Ops, parts: list[str]) -> None:
    for op in ops:
        kind = op[0]
        if kind == _LEAF:
            value = getattr(obj, op[1])
            if value is None:
                continue
            inner = op[2](value)
            if inner:
                parts.append(op[3])
                parts.append(inner)
                parts.append(op[4])
            else:
                parts.append(op[5])
        elif kind == _LIST:
            items = getattr(obj, op[1])
            if not items:
                if op[8]:
                    parts.append(op[8])
                continue
            parts.append(op[3])
            enc = op[2]
            for item in items:
                inner = enc(item)
                if inner:
                    parts.append(op[5])
                    parts.append(inner)
                    parts.append(op[6])
                else:
                    parts.append(op[7])
            parts.append(op[4])
        elif kind == _FLAGS:
            value = getattr(obj, op[1])
            inner = op[2](value) if value else ""
            if inner:
                parts.append(op[3])
                parts.append(inner)
                parts.append(op[4])
            elif op[5]:
                parts.append(op[5])
        else:
            sub: list[str] = []
            if op[5]:  # a CHOICE: the first alternative with a value
                for alternative in op[2]:
                    _emit(obj, [alternative], sub)
                    if sub:
                        break
            else:
                _emit(obj, op[2], sub)
            if sub:
                parts.append(op[3])
                parts.extend(sub)
                parts.append(op[4])


_SPECS: dict[type[Any], _Spec] = {}


def _spec_for(cls: type[Any]) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _Spec(cls)
    return spec


# --- CSTAErrorCode: a choice of category elements, value as text or as an empty element -----


def _decode_error(root: etree._Element) -> CSTAErrorCode:
    extensions: bytes | None = None
    category: str | None = None
    value: str | None = None
    for child in root:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        name = _local(tag)
        if name == "extensions":
            extensions = _dec_extensions(child)
        elif category is None:
            category = name
            value = _text(child) or None
            if value is None:
                # snom: <operation><invalidDeviceID/></operation>
                for grandchild in child:
                    if grandchild.tag.__class__ is str:
                        value = _local(grandchild.tag)
                        break
    if category is None:
        return CSTAErrorCode(category="unspecified", value=None, extensions=extensions)
    error = CSTAErrorCode.of(category, value)
    return error if extensions is None else dataclasses.replace(error, extensions=extensions)


def _encode_error(message: CSTAErrorCode) -> str:
    category = str(message.category)
    if not _is_xml_name(category):
        raise ValueError(f"{category!r} is not an XML element name")
    # UnspecifiedErrors is NULL: whatever value a peer put there, the element is empty.
    if message.value is None or message.value == "" or category == "unspecified":
        return f"<{category}/>"
    return f"<{category}>{_escape(message.value)}</{category}>"


# --- public API ------------------------------------------------------------------------------

_Decoder = Callable[[etree._Element], CstaMessage]
_DECODERS: dict[str, _Decoder] = {}
_ENCODERS: dict[type[CstaMessage], tuple[str, Callable[[Any], str]]] = {}


def _merge_private_data(extensions: bytes | None, private_data: list[bytes]) -> bytes:
    """``privateData`` found directly under the root (a hosted PBX API puts it there) moved
    into ``extensions``, where ECMA-323 has it, so relays keep it and write it in place."""
    if extensions is None:
        return b"<extensions>" + b"".join(private_data) + b"</extensions>"
    wrapper = etree.fromstring(extensions, _PARSER_FOR_OWN_BYTES)
    for item in private_data:
        wrapper.append(etree.fromstring(item, _PARSER_FOR_OWN_BYTES))
    return etree.tostring(wrapper, encoding="UTF-8", xml_declaration=False)


# Re-reads bytes this module produced from an already parsed, bounded document.
_PARSER_FOR_OWN_BYTES: Final = etree.XMLParser(resolve_entities=False, no_network=True)


def _message_decoder(spec: _Spec) -> _Decoder:
    cls = spec.cls
    plan = dict(spec.plan)
    plan["extensions"] = (_SET, "extensions", _dec_extensions)
    plan.setdefault("privateData", (_APPEND, "\0privateData", _dec_extensions))
    list_attrs = spec.list_attrs

    def decode_message(root: etree._Element) -> CstaMessage:
        values: dict[str, Any] = {}
        _fill(root, plan, values)
        for attr in list_attrs:
            found = values.get(attr)
            if found is not None:
                values[attr] = tuple(found)
        private_data = values.pop("\0privateData", None)
        if private_data is not None:
            values["extensions"] = _merge_private_data(values.get("extensions"), private_data)
        message: CstaMessage = cls(**values)
        return message

    return decode_message


def _register() -> None:
    for name, cls in MESSAGE_CLASSES.items():
        if cls is CSTAErrorCode:
            decoder: _Decoder = _decode_error
            encoder: Callable[[Any], str] = _encode_error
        else:
            spec = _spec_for(cls)
            decoder, encoder = _message_decoder(spec), spec.encode_inner
        for root_name in (name, *cls.XML_ALIASES):
            _DECODERS[root_name] = decoder
        _ENCODERS[cls] = (name, encoder)
    # uacsta's monitor-ended notice goes out as the switching function's MonitorStop request
    # (ECMA-269 Phase III); a Phase II MonitorEndedEvent from a peer is still read.
    _DECODERS["MonitorEndedEvent"] = _message_decoder(_spec_for(MonitorEndedEvent))
    _ENCODERS[MonitorEndedEvent] = ("MonitorStop", _spec_for(MonitorStop).encode_inner)


_register()


class Dialect(enum.Enum):
    """A vendor's form of a message, for devices that read only that form.

    The standard form is written when no dialect is given (or the dialect has no form of its
    own for the message); decoding always accepts every known form.
    """

    #: Yealink firmware reads DeflectCall's target as ``<newDestination><device>X</device>``.
    YEALINK = "yealink"


def _with_leaf_form(
    cls: type[CstaMessage], attr: str, head: str, tail: str
) -> Callable[[Any], str]:
    """``cls``'s standard encoder, but ``attr`` written as ``head`` + value + ``tail``."""
    spec = _spec_for(cls)
    ops = [
        (op[0], op[1], op[2], head, tail, head + tail) if op[0] == _LEAF and op[1] == attr else op
        for op in spec.ops
    ]
    if ops == spec.ops:
        raise TypeError(f"{cls.__name__} has no leaf field {attr!r}")

    def encode_inner(obj: Any) -> str:
        parts: list[str] = []
        _emit(obj, ops, parts)
        return "".join(parts)

    return encode_inner


_DIALECT_ENCODERS: Final[dict[tuple[Dialect, type[CstaMessage]], Callable[[Any], str]]] = {
    (Dialect.YEALINK, DeflectCall): _with_leaf_form(
        DeflectCall, "new_destination", "<newDestination><device>", "</device></newDestination>"
    ),
}


def decode_with_edition(data: bytes | bytearray | memoryview) -> tuple[CstaMessage, Edition]:
    """Decode one CSTA document and report the edition its namespace names.

    Raises :class:`CstaDecodeError` (and nothing else) for input that is not acceptable XML.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    return decode_element(parse(data), data)


def parse(data: bytes) -> etree._Element:
    """The document's root element, parsed as :func:`decode` does (hardened, size-limited).

    Raises :class:`CstaDecodeError` (and nothing else) for input that is not acceptable XML.
    """
    try:
        return parse_document(data)
    except CstaDecodeError:
        raise
    except (etree.LxmlError, LookupError, UnicodeError) as exc:
        raise CstaDecodeError(f"unreadable XML: {exc}") from exc


def decode_element(root: etree._Element, data: bytes) -> tuple[CstaMessage, Edition]:
    """Decode a document already parsed by ``parse_document`` (``data`` its bytes, kept by an
    :class:`UnknownMessage`): a gateway that looks at the root first parses each frame once."""
    tag = root.tag
    if tag.__class__ is not str:
        raise CstaDecodeError("document has no root element")
    brace = tag.find("}")
    name = tag[brace + 1 :]
    edition = edition_for_namespace(tag[1:brace] if brace > 0 else None)
    decoder = _DECODERS.get(name)
    if decoder is None:
        return UnknownMessage(name=name, xml=data), edition
    return decoder(root), edition


def decode(data: bytes | bytearray | memoryview) -> CstaMessage:
    """Decode one CSTA document (any edition); see :func:`decode_with_edition`."""
    return decode_with_edition(data)[0]


_XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8"?>'


def encode(
    message: CstaMessage, edition: Edition = Edition.ED3, *, dialect: Dialect | None = None
) -> bytes:
    """Encode a message as a UTF-8 document in ``edition``'s namespace.

    ``dialect`` asks for a vendor's form where the vendor's devices need one (see
    :class:`Dialect`); otherwise the ECMA-323 form is written. :class:`UnknownMessage` is
    returned as the bytes it was decoded from.
    """
    if isinstance(message, UnknownMessage):
        return message.xml
    try:
        name, encode_inner = _ENCODERS[type(message)]
    except KeyError:
        raise TypeError(f"{type(message).__name__} is not a registered CSTA message") from None
    if dialect is not None:
        encode_inner = _DIALECT_ENCODERS.get((dialect, type(message)), encode_inner)
    body = encode_inner(message)
    extensions = message.extensions
    if extensions is not None:
        if not extensions.startswith(b"<extensions"):
            raise ValueError("extensions must be a whole <extensions> element")
        body += extensions.decode("utf-8")
    namespace = edition.value
    head = f'{_XML_DECL}<{name} xmlns="{namespace}"' if namespace else f"{_XML_DECL}<{name}"
    if body:
        return f"{head}>{body}</{name}>".encode()
    return f"{head}/>".encode()


#: Microsoft-style remote call control (TR/87 clients of OCS/Lync) names its line here.
RCC_NAMESPACE: Final = "http://schemas.microsoft.com/Lcs/2005/04/RCCExtension"
_EXTENSIONS_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True)
_RCC_LINE: Final = etree.XPath(
    "/extensions/privateData/private/rcc:line/text()", namespaces={"rcc": RCC_NAMESPACE}
)


def rcc_line(message: CstaMessage) -> str | None:
    """The line a Microsoft-style TR/87 client controls: ``extensions/privateData/private/
    lcs:line`` of its RequestSystemStatus (the session learns it; ECMA-323 has no field)."""
    if not message.extensions:
        return None
    try:
        lines = _RCC_LINE(etree.fromstring(message.extensions, parser=_EXTENSIONS_PARSER))
    except etree.XMLSyntaxError:
        return None
    if not isinstance(lines, list) or not lines:
        return None
    line = str(lines[0]).strip()
    return line or None
