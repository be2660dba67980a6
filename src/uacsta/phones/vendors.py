"""Vendor profiles: detection from User-Agent (or MAC OUI), CSTA edition and supported services.

The service tables are those of the estos uaCSTA Server manual §2.4 (Auerswald, Mitel, snom,
Yealink); Fanvil follows the vendor's uaCSTA guide, which lists the same call-control set as
Yealink. A service a phone lacks is refused by the server with a CSTA error that says so,
instead of a request the phone ignores until it times out. AlternateCall is emulated with
HoldCall + RetrieveCall on every listed phone (as the manual says).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Services every listed phone implements (estos §2.4, first firmware with uaCSTA).
_CORE = frozenset(
    {
        "MakeCall",
        "AnswerCall",
        "ClearConnection",
        "HoldCall",
        "RetrieveCall",
        "ConferenceCall",
        "TransferCall",
        "GenerateDigits",
        "ConsultationCall",
        "SingleStepTransferCall",
        "DeflectCall",
        "GetDoNotDisturb",
        "SetDoNotDisturb",
        "GetForwarding",
        "SetForwarding",
        "MonitorStart",
        "MonitorStop",
        "GetSwitchingFunctionDevices",
        "SnapshotDevice",
        "RequestSystemStatus",
    }
)
_SYSTEM_REGISTER = frozenset({"SystemRegister", "SystemRegisterCancel"})


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


@dataclass(frozen=True, slots=True)
class VendorProfile:
    key: str
    name: str
    services: frozenset[str]
    #: Services that appeared in a later firmware: service → first version.
    since: dict[str, str] = field(default_factory=dict)
    #: CSTA namespace edition to send ("ed3", "ed5"...). The phone may answer in another.
    edition: str = "ed3"
    emulate_alternate_call: bool = True
    #: The phone may leave some requests unanswered in some states (MakeCall while ringing).
    silent_requests: frozenset[str] = frozenset({"MakeCall"})

    def supports(self, service: str, firmware: str | None = None) -> bool:
        if service == "AlternateCall" and self.emulate_alternate_call:
            return True
        if service not in self.services:
            return False
        first = self.since.get(service)
        if first is None or not firmware:
            return True
        return _version_key(firmware) >= _version_key(first)


PROFILES: dict[str, VendorProfile] = {
    "yealink": VendorProfile(key="yealink", name="Yealink", services=_CORE),
    "fanvil": VendorProfile(key="fanvil", name="Fanvil", services=_CORE),
    "snom": VendorProfile(
        key="snom",
        name="snom",
        services=_CORE | _SYSTEM_REGISTER,
        since={
            s: "8.7.4"
            for s in (
                "ConsultationCall",
                "SingleStepTransferCall",
                "DeflectCall",
                "GetDoNotDisturb",
                "SetDoNotDisturb",
                "GetForwarding",
                "SetForwarding",
                "MonitorStop",
                "SystemRegister",
                "SystemRegisterCancel",
            )
        },
        edition="ed5",
    ),
    "mitel": VendorProfile(key="mitel", name="Mitel", services=_CORE | {"SnapshotCall"}),
    "auerswald": VendorProfile(
        key="auerswald", name="Auerswald", services=_CORE | _SYSTEM_REGISTER
    ),
}

#: A phone we do not recognise gets every service; its answers decide.
GENERIC = VendorProfile(
    key="generic",
    name="Generic uaCSTA",
    services=_CORE | _SYSTEM_REGISTER | {"SnapshotCall", "AlternateCall", "DialDigits"},
    emulate_alternate_call=False,
)

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
