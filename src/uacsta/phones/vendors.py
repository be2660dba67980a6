"""Vendor profiles: detection from User-Agent (or MAC OUI), CSTA edition, services, quirks.

Where a profile comes from:

- **Yealink**: the firmware's own CSTA processor (``yealink-uacsta-behaviour.md``), which is
  newer and more direct evidence than the estos table: it handles AlternateCall, ReconnectCall,
  SystemRegister and GetMessageWaitingIndicator natively, answers ``<unspecified/>`` to every
  other service, never sends an error over SIP (it stays silent), answers positively *before*
  acting and reads DeflectCall's target as ``newDestination/device``.
- **snom, Mitel, Auerswald**: the estos uaCSTA server manual §2.4 tables. A service a table
  marks "Not supported" is refused; one that appeared in a later firmware is refused for older
  firmware; AlternateCall is emulated with HoldCall + RetrieveCall, as the manual says.
- **Fanvil** and any **unrecognised** phone: no published service table, so every service is
  offered and the phone's answers decide.

Services a table does not mention at all (MWI, ReconnectCall, ...) are not refused: the phone's
answer decides. A refusal always carries its reason, which reaches the client (JSON ``detail``,
the CSTA error value ``serviceNotSupported``) instead of only the log.

:meth:`VendorProfile.predict_silence` names requests a phone is known to leave unanswered (a
Yealink with a missing element): the server answers those at once with a clear CSTA error
instead of letting the client wait for the phone's timeout.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from uacsta.csta import messages as m
from uacsta.csta.services import PHONE_SERVICES
from uacsta.csta.types import ConnectionID

#: Every CSTA service a phone may be asked for (a profile narrows it); from the registry.
ALL_SERVICES: tuple[str, ...] = PHONE_SERVICES


class WriteForm(enum.Enum):
    """How a phone needs some elements written (passed to the codec as its dialect)."""

    STANDARD = "standard"
    #: DeflectCall's target as ``<newDestination><device>X</device></newDestination>``.
    YEALINK = "yealink"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is answered by the server instead of the phone."""

    category: str
    value: str
    reason: str

    def error(self) -> m.CSTAErrorCode:
        return m.CSTAErrorCode.of(self.category, self.value)


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


_ESTOS = "not supported by this phone (estos uaCSTA manual §2.4)"
_YEALINK_UNSPECIFIED = "not implemented by the Yealink firmware (it answers <unspecified/> to it)"


def _estos_not_supported(*services: str) -> dict[str, str]:
    return {s: f"{s} is {_ESTOS}" for s in services}


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity (cached per profile)
class VendorProfile:
    key: str
    name: str
    #: service → why the phone cannot do it (absent: offered, the phone's answer decides).
    refused: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Services that appeared in a later firmware: service → first version.
    since: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: CSTA namespace edition to send ("ed3", "ed5"...). The phone may answer in another.
    edition: str = "ed3"
    emulate_alternate_call: bool = True
    #: The phone never sends a CSTA error: a request it cannot carry out gets no answer.
    silent_errors: bool = False
    #: The phone answers positively before it acts, so a positive answer is no proof.
    answers_before_acting: bool = False
    write_form: WriteForm = WriteForm.STANDARD
    #: ConnectionCleared's releasingDevice says who ended the call. False: the phone names
    #: itself whoever hung up, so an unanswered incoming call it reports cleared is taken for
    #: missed, not declined (the call journal, ``call.missed``).
    names_releasing_device: bool = True
    #: Remarks per service for clients (GetCSTAFeatures detail, the JSON API).
    notes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def refusal(self, service: str, firmware: str | None = None) -> Refusal | None:
        """Why ``service`` is refused for this phone (None: it is offered)."""
        if service == "AlternateCall" and self.emulate_alternate_call:
            return None  # HoldCall + RetrieveCall
        reason = self.refused.get(service)
        if reason is not None:
            return Refusal("operation", "serviceNotSupported", reason)
        first = self.since.get(service)
        if first is not None and firmware and _version_key(firmware) < _version_key(first):
            return Refusal(
                "operation",
                "serviceNotSupported",
                f"{service} needs {self.name} firmware {first} or later"
                f" (this phone runs {firmware})",
            )
        return None

    def supports(self, service: str, firmware: str | None = None) -> bool:
        return self.refusal(service, firmware) is None

    def services(self, firmware: str | None = None) -> frozenset[str]:
        return frozenset(s for s in ALL_SERVICES if self.supports(s, firmware))

    def features(self, firmware: str | None = None) -> dict[str, dict[str, object]]:
        """Per service: offered or not, why not, and what to know about the phone's answer."""
        general = self.notes.get("*")
        out: dict[str, dict[str, object]] = {}
        for service in sorted(ALL_SERVICES):
            found = self.refusal(service, firmware)
            emulated = service == "AlternateCall" and self.emulate_alternate_call
            out[service] = {
                "supported": found is None,
                "reason": found.reason if found else None,
                "error": f"{found.category}/{found.value}" if found else None,
                "note": "done as HoldCall + RetrieveCall"
                if emulated
                else self.notes.get(service) or general,
            }
        return out

    def refuse(
        self, request: m.CstaRequest, firmware: str | None, mac: str
    ) -> tuple[m.CSTAErrorCode, str] | None:
        """The error and its reason when ``request`` must not (or need not) go to phone
        ``mac``: a service it lacks, or a request it is known to leave unanswered. One rule
        for the phone's link and for its mirror on another node."""
        found = self.refusal(type(request).__name__, firmware)
        if found is None:
            found = self.predict_silence(request)
        if found is None:
            return None
        return found.error(), f"{self.name} phone {mac}: {found.reason}"

    def predict_silence(self, request: m.CstaRequest) -> Refusal | None:
        """A request this phone would leave unanswered, known from the request alone."""
        if not self.silent_errors:
            return None
        check = _YEALINK_SILENT.get(type(request).__name__)
        return check(request) if check is not None else None


# --- Yealink: requests the firmware leaves unanswered (yealink-uacsta-behaviour.md) ----------

_CALL_ID_RE = re.compile(r"-?[0-9]+(?:\|-?[0-9]+)*")


def _silent(value: str, reason: str, category: str = "operation") -> Refusal:
    return Refusal(category, value, f"{reason}; the Yealink firmware would leave it unanswered")


def _call_id(conn: Any, role: str) -> Refusal | None:
    """The firmware reads a call ID with atoi: absent or not a number names no call. (Its
    fallback to the element's own text never applies to what we write: a ConnectionID
    element holds child elements, no text.)"""
    call_id = conn.call_id if isinstance(conn, ConnectionID) else None
    if call_id is None:
        return _silent("invalidCallID", f"the request names no {role} call ID")
    if not _CALL_ID_RE.fullmatch(call_id.strip()):
        return _silent("invalidCallID", f"{role} call ID {call_id!r} is not a Yealink call ID")
    return None


def _field(request: object, *names: str) -> Any:
    """The first of ``names`` the message has (field names follow the codec's spelling)."""
    for name in names:
        if hasattr(request, name):
            return getattr(request, name)
    return None


def _destination(value: Any) -> str | None:
    if value is None:
        return None
    text = getattr(value, "value", value)
    return str(text) if text else None


def _make_call(r: Any) -> Refusal | None:
    if not _field(r, "called_directory_number"):
        return _silent("invalidCalledDeviceID", "MakeCall without calledDirectoryNumber")
    return None


def _conn(name: str, role: str) -> Any:
    def check(r: Any) -> Refusal | None:
        return _call_id(getattr(r, name, None), role)

    return check


def _generate_digits(r: Any) -> Refusal | None:
    found = _call_id(_field(r, "connection_to_send_digits"), "connectionToSendDigits")
    if found is not None:
        return found
    if not _field(r, "characters_to_send", "char_to_send"):
        return _silent("invalidParameterValue", "GenerateDigits without charactersToSend")
    return None


def _deflect(r: Any) -> Refusal | None:
    if _destination(_field(r, "new_destination")) is None:
        return _silent("invalidDestination", "DeflectCall without newDestination")
    return _call_id(_field(r, "call_to_be_diverted"), "callToBeDiverted")


def _two_calls(*, held_device: bool) -> Any:
    def check(r: Any) -> Refusal | None:
        for name, role in (("held_call", "heldCall"), ("active_call", "activeCall")):
            found = _call_id(getattr(r, name, None), role)
            if found is not None:
                return found
        held = getattr(r, "held_call", None)
        if held_device and not (isinstance(held, ConnectionID) and held.device_id):
            return _silent("invalidHeldDeviceID", "heldCall has no deviceID")
        return None

    return check


def _consultation(r: Any) -> Refusal | None:
    existing = _field(r, "existing_call")
    if not (isinstance(existing, ConnectionID) and existing.device_id):
        return _silent("invalidDeviceID", "existingCall has no deviceID")
    if not _field(r, "consulted_device"):
        return _silent("invalidCalledDeviceID", "ConsultationCall without consultedDevice")
    return None


def _single_step(r: Any) -> Refusal | None:
    found = _call_id(_field(r, "active_call"), "activeCall")
    if found is not None:
        return found
    if not _field(r, "transferred_to"):
        return _silent("invalidDestination", "SingleStepTransferCall without transferredTo")
    return None


_FORWARDING_TYPES = frozenset({"forwardImmediate", "forwardBusy", "forwardNoAns"})


def _set_forwarding(r: Any) -> Refusal | None:
    kind = _field(r, "forwarding_type")
    if kind is None or str(getattr(kind, "value", kind)) not in _FORWARDING_TYPES:
        return _silent(
            "invalidForwardingType",
            f"forwarding type {kind!s} (the phone has forwardImmediate, forwardBusy, forwardNoAns)",
        )
    return None


def _monitor_stop(r: Any) -> Refusal | None:
    if not _field(r, "monitor_cross_ref_id"):
        return _silent("invalidMonitorCrossRefID", "MonitorStop without monitorCrossRefID")
    return None


_YEALINK_SILENT: dict[str, Any] = {
    "MakeCall": _make_call,
    "AnswerCall": _conn("call_to_be_answered", "callToBeAnswered"),
    "ClearConnection": _conn("connection_to_be_cleared", "connectionToBeCleared"),
    "HoldCall": _conn("call_to_be_held", "callToBeHeld"),
    "RetrieveCall": _conn("call_to_be_retrieved", "callToBeRetrieved"),
    "SingleStepTransferCall": _single_step,
    "GenerateDigits": _generate_digits,
    "DeflectCall": _deflect,
    "AlternateCall": _two_calls(held_device=False),
    "ReconnectCall": _two_calls(held_device=False),
    "TransferCall": _two_calls(held_device=True),
    "ConferenceCall": _two_calls(held_device=True),
    "ConsultationCall": _consultation,
    "SetForwarding": _set_forwarding,
    "MonitorStop": _monitor_stop,
}

#: What the Yealink firmware's CSTA processor handles (the rest: ``<unspecified/>``).
YEALINK_SERVICES = frozenset(
    {
        "MakeCall", "AnswerCall", "ClearConnection", "HoldCall", "RetrieveCall",
        "SingleStepTransferCall", "TransferCall", "ConsultationCall", "DeflectCall",
        "AlternateCall", "ReconnectCall", "ConferenceCall", "GenerateDigits",
        "RequestSystemStatus", "GetSwitchingFunctionDevices", "SystemRegister", "MonitorStart",
        "MonitorStop", "GetForwarding", "GetDoNotDisturb", "SetForwarding", "SetDoNotDisturb",
        "SnapshotDevice", "GetMessageWaitingIndicator",
    }
)  # fmt: skip

_SNOM_874 = (
    "ConsultationCall", "SingleStepTransferCall", "DeflectCall", "GetDoNotDisturb",
    "SetDoNotDisturb", "GetForwarding", "SetForwarding", "MonitorStop", "SystemRegister",
    "SystemRegisterCancel",
)  # fmt: skip

PROFILES: dict[str, VendorProfile] = {
    "yealink": VendorProfile(
        key="yealink",
        name="Yealink",
        refused=MappingProxyType(
            {s: f"{s} is {_YEALINK_UNSPECIFIED}" for s in ALL_SERVICES if s not in YEALINK_SERVICES}
        ),
        edition="ed5",
        emulate_alternate_call=False,
        silent_errors=True,
        answers_before_acting=True,
        write_form=WriteForm.YEALINK,
        # The firmware writes the local account as releasingDevice for every call end
        # (reference: yealink-uacsta-behaviour.md, events table).
        names_releasing_device=False,
        notes=MappingProxyType(
            {
                "GetMessageWaitingIndicator": (
                    "the Yealink firmware answers whether the account's MWI subscription is "
                    "on, not whether messages wait"
                ),
                "SnapshotDevice": "the Yealink firmware reports only the focused call",
                "*": (
                    "the Yealink firmware answers positively before it acts: a positive "
                    "answer does not prove the action succeeded; events do"
                ),
            }
        ),
    ),
    "fanvil": VendorProfile(key="fanvil", name="Fanvil", emulate_alternate_call=False),
    "snom": VendorProfile(
        key="snom",
        name="snom",
        refused=MappingProxyType(
            _estos_not_supported("DialDigits", "DirectedPickupCall", "SnapshotCall")
        ),
        since=MappingProxyType(dict.fromkeys(_SNOM_874, "8.7.4")),
        edition="ed5",
    ),
    "mitel": VendorProfile(
        key="mitel",
        name="Mitel",
        refused=MappingProxyType(
            _estos_not_supported(
                "DialDigits", "DirectedPickupCall", "SystemRegister", "SystemRegisterCancel"
            )
        ),
    ),
    "auerswald": VendorProfile(
        key="auerswald",
        name="Auerswald",
        refused=MappingProxyType(
            _estos_not_supported("DialDigits", "DirectedPickupCall", "SnapshotCall")
        ),
    ),
}

#: A phone we do not recognise gets every service; its answers decide.
GENERIC = VendorProfile(key="generic", name="Generic uaCSTA", emulate_alternate_call=False)


def vendor_name(key: str | None) -> str:
    """The vendor's display name (its profile's: ``Yealink``, ``snom``...), else ``key``."""
    if not key:
        return ""
    profile = PROFILES.get(key.lower())
    return profile.name if profile is not None else key


_OUI = {
    "001565": "yealink",
    "805EC0": "yealink",
    "249AD8": "yealink",
    "44DBD2": "yealink",
    "000413": "snom",
    "00085D": "mitel",
    "000952": "auerswald",
    "0C383E": "fanvil",
}

_UA_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"yealink\s+(?:sip[- ])?(?P<model>[\w-]+)\s+(?P<fw>[\d.]+)", re.I), "yealink"),
    (re.compile(r"snom(?P<model>[\w-]*)/(?P<fw>[\d.]+)", re.I), "snom"),
    (re.compile(r"(?:mitel|aastra)\s*(?P<model>[\w-]+)/(?P<fw>[\d.]+)", re.I), "mitel"),
    (re.compile(r"(?P<model>comfortel[\w ]*?)\s*/\s*(?P<fw>[\w.]+)", re.I), "auerswald"),
    (re.compile(r"fanvil\s+(?P<model>[\w-]+)\s+(?P<fw>[\d.]+)", re.I), "fanvil"),
]


@dataclass(frozen=True, slots=True)
class PhoneIdentity:
    vendor: str
    model: str | None
    firmware: str | None

    @property
    def profile(self) -> VendorProfile:
        return PROFILES.get(self.vendor, GENERIC)


def detect(user_agent: str | None, mac: str | None = None) -> PhoneIdentity:
    """Vendor, model and firmware from a User-Agent such as ``Yealink SIP-T46G 28.81.0.15``."""
    if user_agent:
        for pattern, vendor in _UA_PATTERNS:
            match = pattern.search(user_agent)
            if match:
                model = match.group("model").strip() or None
                return PhoneIdentity(vendor, model, match.group("fw"))
        lowered = user_agent.lower()
        for vendor in PROFILES:
            if vendor in lowered:
                return PhoneIdentity(vendor, None, None)
    if mac and mac[:6].upper() in _OUI:
        return PhoneIdentity(_OUI[mac[:6].upper()], None, None)
    return PhoneIdentity("generic", None, None)
