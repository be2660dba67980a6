"""Per-vendor personalities of simulated uaCSTA phones.

Owns what makes a simulated Yealink look like a Yealink and a snom like a snom: the
User-Agent string (one that :func:`uacsta.phones.vendors.detect` recognises), the MAC OUI,
the style of line device IDs, monitor cross-reference IDs and call IDs, the CSTA edition of
replies (snom answers ed5 even to ed3), the services the phone implements (from
:data:`uacsta.phones.vendors.PROFILES`: the estos uaCSTA manual §2.4 tables, the Yealink
firmware) and the documented quirks. A Yealink is the firmware's CSTA processor itself
(:mod:`uacsta.simulator.yealink`), which reads and writes the wire without the codec.

ID styles are plausible, not captured: the protocol notes only say that IDs are opaque
strings and that snom has sent callID ``-12``; the simulator uses a different style per
vendor so that consumers cannot get away with assuming numbers or shared counters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from uacsta.csta.codec import Edition
from uacsta.phones.vendors import GENERIC, PROFILES, VendorProfile

__all__ = ["PERSONALITIES", "Personality", "personality", "single_quoted"]

#: Not in the per-phone estos tables, but listed by estos §4.2.1 as services the server relays;
#: every simulated phone implements them so that clients can be tested against them.
_MWI = frozenset({"GetMessageWaitingIndicator", "SetMessageWaitingIndicator"})


@dataclass(frozen=True, slots=True)
class Personality:
    """How one vendor's phone behaves on the CSTA link."""

    key: str
    profile: VendorProfile
    user_agent: str
    #: First six hex digits of the MAC (the vendor's IEEE OUI).
    mac_oui: str
    #: ``str.format`` pattern of a line's device ID; fields ``number`` and ``domain``.
    device_id_style: str = "sip:{number}@{domain}"
    #: ``str.format`` pattern of a monitor cross-ref ID / SystemRegister ID; field ``n``.
    xref_style: str = "{n}"
    #: ``str.format`` pattern of a call ID; field ``n`` (a per-phone counter from 1).
    call_id_style: str = "{n}"
    #: Edition the phone answers in; ``None``: the edition of the request.
    reply_edition_fixed: Edition | None = None
    #: Edition of the phone's own events and requests.
    event_edition: Edition = Edition.ED3
    #: Services implemented beyond ``profile.services``.
    extra_services: frozenset[str] = _MWI
    #: Requests the phone leaves unanswered while an incoming call rings at it.
    silent_while_ringing: frozenset[str] = field(default_factory=frozenset)
    #: Error value (category ``operation``) for a device the phone does not own.
    unknown_device_error: str = "invalidDeviceID"
    #: A firmware model that reads and writes the wire itself (``"yealink"``: the firmware's
    #: CSTA processor, :mod:`uacsta.simulator.yealink`); None: the generic call model.
    firmware: str | None = None
    #: Attributes written with single quotes (snom: ``<X xmlns='...'>``).
    single_quoted_attributes: bool = False

    def supports(self, service: str) -> bool:
        """Whether the phone itself implements ``service`` (no server-side emulation)."""
        if service == "AlternateCall":
            # The estos tables: AlternateCall is emulated by the server, not in the phone.
            return not self.profile.emulate_alternate_call
        if service in self.extra_services:
            return True
        # A service no table mentions (MWI, ReconnectCall...) is not refused by the server;
        # the simulated phones implement what the call model has.
        return self.profile.supports(service)

    def reply_edition(self, request_edition: Edition) -> Edition:
        """The edition of the phone's answer to a request sent in ``request_edition``."""
        return self.reply_edition_fixed or request_edition

    def device_id(self, number: str, domain: str) -> str:
        return self.device_id_style.format(number=number, domain=domain)

    def xref(self, n: int) -> str:
        return self.xref_style.format(n=n)

    def call_id(self, n: int) -> str:
        return self.call_id_style.format(n=n)


PERSONALITIES: dict[str, Personality] = {
    # The firmware's own behaviour (yealink-uacsta-behaviour.md): its own reader and writer.
    "yealink": Personality(
        key="yealink",
        profile=PROFILES["yealink"],
        user_agent="Yealink SIP-T46G 28.83.0.35",
        mac_oui="805EC0",
        reply_edition_fixed=Edition.ED5,
        event_edition=Edition.ED5,
        silent_while_ringing=frozenset({"MakeCall"}),
        firmware="yealink",
    ),
    "snom": Personality(
        key="snom",
        profile=PROFILES["snom"],
        user_agent="snomD785/10.1.54.13",
        mac_oui="000413",
        xref_style="{n}",
        # snom has been seen sending negative call IDs (callID -12).
        call_id_style="-{n}",
        reply_edition_fixed=Edition.ED5,
        event_edition=Edition.ED5,
        single_quoted_attributes=True,
    ),
    "mitel": Personality(
        key="mitel",
        profile=PROFILES["mitel"],
        user_agent="Aastra 6869i/5.1.0.2024",
        mac_oui="00085D",
        device_id_style="sip:{number}@{domain};user=phone",
        xref_style="mon{n}",
        call_id_style="{n:08X}",
    ),
    "auerswald": Personality(
        key="auerswald",
        profile=PROFILES["auerswald"],
        user_agent="COMfortel 2600 IP / 2.8A",
        mac_oui="000952",
        device_id_style="{number}",
        xref_style="X{n}",
        call_id_style="C{n}",
    ),
    "fanvil": Personality(
        key="fanvil",
        profile=PROFILES["fanvil"],
        user_agent="Fanvil X6U 2.12.1",
        mac_oui="0C383E",
        call_id_style="call-{n}",
    ),
    "generic": Personality(
        key="generic",
        profile=GENERIC,
        user_agent="uacsta-sim/1.0",
        mac_oui="02005E",
        # A full ECMA-269 phone: everything of GENERIC plus ClearCall.
        extra_services=_MWI | {"ClearCall"},
    ),
}


_ATTRIBUTE = re.compile(rb'(\s[\w:.-]+)="([^"<]*)"')


def single_quoted(document: bytes) -> bytes:
    """``document`` with the attributes of its declaration and root start tag in single
    quotes, as snom writes them (the codec writes double quotes)."""
    decl_end = document.find(b"?>") + 2 if document.startswith(b"<?xml") else 0
    root_end = document.find(b">", decl_end)
    if root_end < 0:
        return document
    head = _ATTRIBUTE.sub(rb"\1='\2'", document[: root_end + 1])
    return head + document[root_end + 1 :]


def personality(key: str) -> Personality:
    """The personality of vendor ``key`` (``generic`` if unknown)."""
    return PERSONALITIES.get(key, PERSONALITIES["generic"])
